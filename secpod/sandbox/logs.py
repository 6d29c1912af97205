"""Container log files: the k8s-file format, its size bound and rotation, reading it back.

The format is conmon's (CRI's): one record a line, ``TIME STREAM TAG TEXT``, where
TAG ``F`` ends a line of output and ``P`` is a piece of a longer line (or the output's
last bytes without a newline). Both monitors write it: secpod's own
(:class:`LogWriter`, foreground runs) and conmon (detached).

Size: a container's log takes at most ``size_max`` bytes on disk, in at most two
files of ``size_max / 2`` each, ``ctr.log`` and the rotated ``ctr.log.1``
(see docs/runner.md, "Logs"):

- secpod's writer: when the next record would take ``ctr.log`` past half the limit,
  ``ctr.log`` becomes ``ctr.log.1`` (replacing the older one) and a new ``ctr.log``
  starts.
- conmon (``--log-size-max``): conmon 2.1 starts ``ctr.log`` afresh at half the
  limit and keeps no rotated file; secpod rotates ``ctr.log`` to ``ctr.log.1`` before
  each (re)start, so the previous run's log stays readable.

:func:`read` reads the rotated file, then the current one; following, it goes on
across rotations until the container exits.
"""

from __future__ import annotations

import contextlib
import os
import time
from datetime import UTC, datetime
from pathlib import Path

from secpod.errors import Error, HostError

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import IO

DEFAULT_SIZE_MAX = 10 << 20       # Podman's log_size_max default is unlimited; ours is not
MIN_SIZE_MAX = 64 << 10           # each half must hold conmon's records (8 KiB reads) with room
RECORD_MAX = 16 << 10             # text bytes per record, as containerd's max line size
_LINE_MAX = RECORD_MAX + 128      # a record read back: text plus timestamp, stream and tag
_READ = 64 << 10


def rotated(path: Path) -> Path:
    """The rotated file beside ``path``."""
    return path.with_name(path.name + ".1")


def file_max(size_max: int) -> int:
    """The most one of the two files may hold."""
    return size_max // 2


def _stamp() -> bytes:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode()


def _open_append(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)


class LogWriter:
    """Container output into a k8s-file log, streamed, bounded and rotated.

    At most :data:`RECORD_MAX` bytes of an unfinished line are held per stream; a
    longer line goes out as ``P`` records of that size and ends with an ``F`` one,
    so what is held, and the work per byte, do not grow with the line.
    """

    def __init__(self, path: Path, size_max: int = DEFAULT_SIZE_MAX) -> None:
        self._path = path
        self._file_max = file_max(size_max)
        self._fd = _open_append(path)
        self._size = os.fstat(self._fd).st_size
        self._held: dict[bytes, bytes] = {}

    def held(self) -> int:
        """Bytes of unfinished lines held back (at most RECORD_MAX per stream)."""
        return sum(len(v) for v in self._held.values())

    def write(self, stream: bytes, data: bytes) -> None:
        head = _stamp() + b" " + stream
        out: list[bytes] = []
        held = self._held.pop(stream, b"")
        pos, end = 0, len(data)
        while True:
            room = RECORD_MAX - len(held)
            nl = data.find(b"\n", pos, pos + room + 1)
            if nl >= 0:
                self._add(out, head + b" F " + held + data[pos:nl] + b"\n")
                held, pos = b"", nl + 1
            elif end - pos <= room:
                held += data[pos:]
                break
            else:
                self._add(out, head + b" P " + held + data[pos:pos + room] + b"\n")
                held, pos = b"", pos + room
        if held:
            self._held[stream] = held
        self._flush(out)

    def _add(self, out: list[bytes], record: bytes) -> None:
        if self._size and self._size + len(record) > self._file_max:
            self._flush(out)
            self._rotate()
        out.append(record)
        self._size += len(record)

    def _flush(self, out: list[bytes]) -> None:
        if out:
            data = b"".join(out)
            out.clear()
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]

    def _rotate(self) -> None:
        os.close(self._fd)
        with contextlib.suppress(FileNotFoundError):    # removed under us: start it again
            os.replace(self._path, rotated(self._path))
        self._fd = _open_append(self._path)
        self._size = 0

    def close(self) -> None:
        out: list[bytes] = []
        for stream, rest in self._held.items():
            self._add(out, _stamp() + b" " + stream + b" P " + rest + b"\n")
        self._held.clear()
        self._flush(out)
        os.close(self._fd)


JOURNAL_SOCKET = Path("/run/systemd/journal/socket")


def check_driver(driver: str, *, detach: bool) -> None:
    """Refuse a log driver this host or this kind of run cannot honour: journald only
    where journald listens (conmon's journald driver silently drops the output
    otherwise), and only detached (conmon writes to the journal; secpod's own monitor
    does not). Raises HostError or Error."""
    if driver != "journald":
        return
    if not JOURNAL_SOCKET.exists():
        raise HostError(
            f"--log-driver journald: there is no journald here ({JOURNAL_SOCKET} does not "
            "exist), and the output would be lost",
            hint="use --log-driver k8s-file (the default; secpod logs reads it)")
    if not detach:
        raise Error("--log-driver journald needs a detached container: conmon writes to the "
                    "journal, secpod's foreground monitor does not",
                    hint="secpod run -d --log-driver journald ..., then journalctl")


def check_readable(driver: str, name: str) -> None:
    """Raise Error for a container whose log ``secpod logs`` cannot read."""
    if driver == "none":
        raise Error(f"container {name} keeps no log (--log-driver none)",
                    hint="create it with --log-driver k8s-file to read its output later")
    if driver == "journald":
        raise Error(f"container {name} logs to the journal (--log-driver journald)",
                    hint=f"journalctl --user CONTAINER_NAME={name}")


def rotate_for_restart(path: Path) -> None:
    """Before conmon (re)starts: the last run's log becomes the rotated file.

    conmon counts the bytes it wrote, not the file's size, so it must start on an
    empty file for its limit to bound the file.
    """
    try:
        if path.stat().st_size == 0:
            return
    except FileNotFoundError:
        pass
    else:
        os.replace(path, rotated(path))
    os.close(_open_append(path))


class _Records:
    """k8s-file records to (stream, bytes), fed a file at a time; holds one cut record."""

    def __init__(self) -> None:
        self.tail = b""
        self.carry: str | None = None   # a record too long to be one: its stream
        self.stamp = b""                # the time of the record last read

    def feed(self, f: IO[bytes]) -> Iterator[tuple[str, bytes]]:
        while chunk := f.read(_READ):
            buf = self.tail + chunk
            start = 0
            while (nl := buf.find(b"\n", start)) >= 0:
                yield from self._line(buf[start:nl], complete=True)
                start = nl + 1
            self.tail = buf[start:]
            if len(self.tail) > _LINE_MAX:
                # Not a record either monitor writes: pass it on, bounded, as text.
                yield from self._line(self.tail, complete=False)
                self.tail = b""

    def end(self) -> Iterator[tuple[str, bytes]]:
        """The cut record at the end of a file (its writer stopped mid-record)."""
        if self.tail:
            yield from self._line(self.tail, complete=False)
        self.tail, self.carry = b"", None

    def _line(self, line: bytes, *, complete: bool) -> Iterator[tuple[str, bytes]]:
        if self.carry is not None:
            yield self.carry, line + (b"\n" if complete else b"")
            if complete:
                self.carry = None
            return
        parts = line.split(b" ", 3)
        if len(parts) < 3 or parts[2] not in (b"F", b"P"):
            return
        self.stamp = parts[0]
        stream, text = parts[1].decode(errors="replace"), parts[3] if len(parts) == 4 else b""
        if not complete:
            self.carry = stream
            yield stream, text
            return
        yield stream, text + b"\n" if parts[2] == b"F" else text


def _open(path: Path) -> IO[bytes] | None:
    try:
        return open(path, "rb")  # noqa: SIM115 - closed by read()
    except FileNotFoundError:
        return None


def _ident(f: IO[bytes]) -> tuple[int, int]:
    st = os.fstat(f.fileno())
    return st.st_ino, st.st_dev


def _same(f: IO[bytes], path: Path) -> bool:
    """Whether ``path`` still names the file ``f`` reads (no rotation since it was opened)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return True     # between a rotation's rename and the new file: not yet
    return (st.st_ino, st.st_dev) == _ident(f)


def read(path: Path, *, alive: Callable[[], bool] | None = None,
         poll: float = 0.1) -> Iterator[tuple[str, bytes]]:
    """(stream, bytes) of a container's log: the rotated file, then the current one.

    With ``alive``, follow: wait for more, and across rotations, until ``alive()``
    is false, then read what the monitor wrote last, to the last byte.
    """
    return _read(path, _Records(), alive=alive, poll=poll)


def _read(path: Path, records: _Records, *, alive: Callable[[], bool] | None = None,
          poll: float = 0.1, mark_idle: bool = False) -> Iterator[tuple[str, bytes]]:
    """:func:`read`; ``mark_idle``: yield ("", b"") each time all that is written is read."""
    cur = _open(path)   # first: a rotation between the two opens shows as the same file
    old = _open(rotated(path))
    try:
        if old is not None:
            if cur is None or _ident(old) != _ident(cur):
                yield from records.feed(old)
                yield from records.end()
            old.close()
        stopping = False
        while True:
            if cur is not None:
                yield from records.feed(cur)
            if alive is None:
                break
            if cur is None or not _same(cur, path):
                # Rotated: what was written to the old file before is read above.
                if cur is not None:
                    yield from records.feed(cur)
                    yield from records.end()
                    cur.close()
                cur = _open(path)
                if cur is not None:
                    continue
            if mark_idle:
                yield "", b""
            if stopping:
                break
            if not alive():
                stopping = True     # one more pass: the monitor flushes after the exit
                continue
            time.sleep(poll)
        yield from records.end()
    finally:
        if cur is not None:
            cur.close()


def of_container(ref: str, *, follow: bool = False, since: int | None = None,
                 until: int | None = None, tail: int | None = None,
                 timestamps: bool = False) -> Iterator[tuple[str, bytes]]:
    """``secpod logs [-f] CONTAINER``: :func:`read` of its log; following, until the
    container is no longer running or created (or ``until`` has passed).

    ``since``/``until`` (nanoseconds since the epoch) keep the records written in that
    time; ``tail`` the last N lines (of those); ``timestamps`` puts each line's time
    (RFC 3339, UTC, nanoseconds, as Docker prints it) before it. Raises Error for a
    container whose log driver keeps no log secpod can read.
    """
    from secpod.sandbox import operations, state
    from secpod.sandbox.environment import Environment

    ctr = state.lookup(ref)
    check_readable(ctr.log_driver, ctr.name)
    alive = None
    if follow:
        env = Environment.load(check_host=False)

        def alive() -> bool:
            if until is not None and time.time_ns() > until:
                return False
            return operations.status(ctr.reload(), env) not in (operations.Status.STOPPED,
                                                                operations.Status.EXITED)
    if since is None and until is None and tail is None and not timestamps:
        return read(ctr.log_path, alive=alive)
    return selected(ctr.log_path, alive=alive, since=since, until=until, tail=tail,
                    timestamps=timestamps)


# -- reading with times: --since, --until, --tail, --timestamps --------------------------

_STAMP_FRACTION = 9


def stamp_nanos(stamp: bytes) -> int | None:
    """Nanoseconds since the epoch of a record's time: conmon's
    ``2026-12-03T11:00:00.123456789+00:00`` or secpod's ``...123456Z``; None when it is
    neither."""
    text = stamp.decode(errors="replace")
    head, dot, rest = text.partition(".")
    if not dot:
        return None
    digits = ""
    while rest and rest[0].isdigit():
        digits, rest = digits + rest[0], rest[1:]
    try:
        base = datetime.fromisoformat(head + (rest if rest != "Z" else "+00:00"))
    except ValueError:
        return None
    if base.tzinfo is None:
        return None
    frac = int((digits + "0" * _STAMP_FRACTION)[:_STAMP_FRACTION] or 0)
    return int(base.timestamp()) * 1_000_000_000 + frac


def docker_time(nanos: int) -> bytes:
    """RFC 3339 in UTC with nanoseconds, as ``docker logs -t`` prints it."""
    secs, frac = divmod(nanos, 1_000_000_000)
    return (datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            + f".{frac:09d}Z").encode()


def selected(path: Path, *, alive: Callable[[], bool] | None = None,
             since: int | None = None, until: int | None = None, tail: int | None = None,
             timestamps: bool = False, poll: float = 0.1) -> Iterator[tuple[str, bytes]]:
    """:func:`read` with Docker's ``--since``, ``--until``, ``--tail`` and ``--timestamps``.
    A line's time is that of its first record. ``--tail N`` holds the last N lines (whole
    lines, however long) of what is written when it is read; following, what comes after
    goes out as it comes."""
    import collections

    records = _Records()
    held: collections.deque[tuple[str, bytes]] | None = None
    if tail is not None:
        held = collections.deque(maxlen=max(tail, 0))
    building: dict[str, list[bytes]] = {}
    line_time: dict[str, int | None] = {}

    def keep(nanos: int | None) -> bool:
        if nanos is None:
            return since is None and until is None
        return (since is None or nanos >= since) and (until is None or nanos <= until)

    def release() -> Iterator[tuple[str, bytes]]:
        assert held is not None
        for stream, parts in building.items():  # unfinished lines go out as they are
            held.append((stream, b"".join(parts)))
        building.clear()
        yield from held

    for stream, data in _read(path, records, alive=alive, poll=poll, mark_idle=True):
        if not stream:  # all that is written is read: what --tail held goes out
            if held is not None:
                yield from release()
                held = None
            continue
        first = stream not in line_time
        if first:
            line_time[stream] = stamp_nanos(records.stamp)
        nanos = line_time[stream]
        if data.endswith(b"\n"):
            del line_time[stream]
        if not keep(nanos):
            continue
        if timestamps and first:
            data = docker_time(nanos or 0) + b" " + data
        if held is None:
            yield stream, data
            continue
        building.setdefault(stream, []).append(data)
        if data.endswith(b"\n"):
            held.append((stream, b"".join(building.pop(stream))))
    if held is not None:
        yield from release()

