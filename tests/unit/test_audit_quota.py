"""The collector's per-uid quotas (pure: time is passed in)."""

from __future__ import annotations

from secpod.audit._quota import REPORT_EVERY, Quotas


def test_a_burst_then_the_refill_rate() -> None:
    q = Quotas(records_burst=3, records_per_second=1.0)
    assert [q.charge(7, 10, 0.0) for _ in range(3)] == [None, None, None]
    refused = q.charge(7, 10, 0.0)
    assert refused is not None and "quota exceeded" in refused.answer
    assert q.charge(8, 10, 0.0) is None  # another uid has its own budget
    assert q.charge(7, 10, 1.0) is None  # one record a second comes back
    assert q.charge(7, 10, 1.0) is not None


def test_bytes_count_as_well_as_records() -> None:
    q = Quotas(bytes_burst=1000, bytes_per_second=100.0)
    assert q.charge(1, 900, 0.0) is None
    assert q.charge(1, 200, 0.0) is not None
    assert q.charge(1, 200, 1.0) is None


def test_refusals_are_reported_once_per_period_with_their_count() -> None:
    q = Quotas(records_burst=1, records_per_second=0.001)
    q.charge(1, 1, 0.0)
    first = q.charge(1, 1, 0.0)
    assert first is not None and first.report is not None and first.report["refused"] == 1
    quiet = [q.charge(1, 1, 1.0 + i) for i in range(5)]
    assert all(r is not None and r.report is None for r in quiet)
    later = q.charge(1, 1, REPORT_EVERY + 0.5)
    assert later is not None and later.report is not None and later.report["refused"] == 6


def test_checkpoints_are_signed_at_most_once_a_second() -> None:
    q = Quotas()
    assert q.checkpoint_due(1, 10.0) is True
    assert q.checkpoint_due(1, 10.5) is False
    assert q.checkpoint_due(2, 10.5) is True
    assert q.checkpoint_due(1, 11.1) is True
