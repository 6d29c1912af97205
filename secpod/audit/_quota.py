"""Per-user quotas of the host collector: what one uid may add to the host log.

Each uid has two token buckets, records and bytes, that refill continuously; a
submission that finds either empty is refused. The refusals are recorded, but as one
``audit.quota`` event per uid per REPORT_EVERY seconds (with how many were refused),
so that a flood becomes one line, not a flood of its own. Checkpoints asked for by a
uid are signed at most once per CHECKPOINT_EVERY seconds; beyond that the record is
kept without one (the collector signs its own every N records anyway).
"""

from __future__ import annotations

import threading

from secpod._record import record

RECORDS_BURST = 500
RECORDS_PER_SECOND = 10.0
BYTES_BURST = 4 << 20
BYTES_PER_SECOND = 64 << 10
CHECKPOINT_EVERY = 1.0  # seconds
REPORT_EVERY = 60.0  # seconds


@record
class _Account:
    records: float
    bytes: float
    at: float
    last_checkpoint: float = -1e9
    refused: int = 0  # since the last report
    last_report: float = -1e9


@record
class Refusal:
    """A refused submission: the answer to give, and the event to record if one is due."""

    answer: str
    report: dict[str, object] | None


class Quotas:
    """The budgets of every uid that has submitted; safe to share between threads."""

    def __init__(self, *, records_burst: int = RECORDS_BURST,
                 records_per_second: float = RECORDS_PER_SECOND,
                 bytes_burst: int = BYTES_BURST,
                 bytes_per_second: float = BYTES_PER_SECOND) -> None:
        self.records_burst = records_burst
        self.records_per_second = records_per_second
        self.bytes_burst = bytes_burst
        self.bytes_per_second = bytes_per_second
        self._accounts: dict[int, _Account] = {}
        self._lock = threading.Lock()

    def charge(self, uid: int, size: int, now: float) -> Refusal | None:
        """Take one record of ``size`` bytes from uid's budget; a Refusal if it is spent."""
        with self._lock:
            acc = self._refilled(uid, now)
            if acc.records >= 1 and acc.bytes >= size:
                acc.records -= 1
                acc.bytes -= size
                return None
            acc.refused += 1
            report: dict[str, object] | None = None
            if now - acc.last_report >= REPORT_EVERY:
                report = {"refused": acc.refused,
                          "records_per_second": self.records_per_second,
                          "records_burst": self.records_burst,
                          "bytes_per_second": self.bytes_per_second,
                          "bytes_burst": self.bytes_burst}
                acc.refused = 0
                acc.last_report = now
            wait = max((1 - acc.records) / self.records_per_second,
                       (size - acc.bytes) / self.bytes_per_second, 0.0)
            return Refusal(
                answer=(f"quota exceeded: the host log takes at most "
                        f"{self.records_per_second:g} records and "
                        f"{self.bytes_per_second / 1024:g} KiB a second from one user "
                        f"(bursts of {self.records_burst} and "
                        f"{self.bytes_burst >> 20} MiB); try again in {wait:.0f} s"),
                report=report)

    def checkpoint_due(self, uid: int, now: float) -> bool:
        """Whether uid's request for a checkpoint is honoured now."""
        with self._lock:
            acc = self._refilled(uid, now)
            if now - acc.last_checkpoint < CHECKPOINT_EVERY:
                return False
            acc.last_checkpoint = now
            return True

    def _refilled(self, uid: int, now: float) -> _Account:
        acc = self._accounts.get(uid)
        if acc is None:
            acc = self._accounts[uid] = _Account(float(self.records_burst),
                                                 float(self.bytes_burst), now)
            return acc
        elapsed = max(now - acc.at, 0.0)
        acc.records = min(self.records_burst, acc.records + elapsed * self.records_per_second)
        acc.bytes = min(self.bytes_burst, acc.bytes + elapsed * self.bytes_per_second)
        acc.at = now
        return acc
