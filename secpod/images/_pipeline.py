"""Unpack while fetching: layers are unpacked as their bytes reach the staging store.

The importing thread copies each blob into the staging folder (hashing it,
checking its size) and says how far it has written; one unpacking thread
reads the same files behind it, in layer order, and unpacks each layer the
store does not hold yet into a staged tree of its own (secpod.images._farm
builds the image's root filesystem from the trees at the commit). A layer that
arrives before the unpacker is ready simply waits in its file, so memory stays
bounded whatever the sizes. The bytes are read back from the page cache, not
from the disk.

Bytes are unpacked before their blob is verified, but only into the staging
folder, under every rule of the unpacker; the store commits nothing until
every blob has matched its descriptor, and a digest or size mismatch is
reported before anything the unpacker found (as if verification came first).
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, cast

from secpod._record import record
from secpod.errors import HostError
from secpod.images._unpack import Limits

# The unpacker waits for at least this much (or the blob's end) before it reads,
# so it does not wake for every small network read.
_MIN_READ = 64 << 10


class _Aborted(Exception):
    """The import stopped; the unpacking thread ends quietly."""


@record
class _Blob:
    path: Path
    written: int = 0
    done: bool = False


class Pipe:
    """Blobs handed from the importing thread to the unpacking thread, by digest."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._blobs: dict[str, _Blob] = {}
        self._aborted = False

    def complete(self, digest: str, path: Path, size: int) -> None:
        """``path`` holds all ``size`` bytes of blob ``digest`` already (in the store)."""
        with self._cond:
            self._blobs.setdefault(digest, _Blob(path, written=size, done=True))
            self._cond.notify_all()

    def start(self, digest: str, path: Path) -> _Blob:
        """Blob ``digest`` is about to be written to ``path``."""
        blob = _Blob(path)
        with self._cond:
            self._blobs[digest] = blob
            self._cond.notify_all()
        return blob

    def wrote(self, blob: _Blob, n: int) -> None:
        with self._cond:
            blob.written += n
            self._cond.notify_all()

    def finish(self, blob: _Blob) -> None:
        with self._cond:
            blob.done = True
            self._cond.notify_all()

    def abort(self) -> None:
        with self._cond:
            self._aborted = True
            self._cond.notify_all()

    def _wait(self, predicate: Callable[[], bool]) -> None:
        # Called with the condition held.
        while not self._aborted and not predicate():
            self._cond.wait()
        if self._aborted:
            raise _Aborted

    def reader(self, digest: str) -> _Tail:
        with self._cond:
            self._wait(lambda: digest in self._blobs)
            return _Tail(self, self._blobs[digest])


class _Tail:
    """A blob read while it is written: reads wait for bytes, or for its end."""

    def __init__(self, pipe: Pipe, blob: _Blob) -> None:
        self._pipe = pipe
        self._blob = blob
        self._fd = -1
        self._pos = 0

    def read(self, n: int = -1) -> bytes:
        blob = self._blob
        if n < 0:
            n = 1 << 62
        with self._pipe._cond:
            want = min(n, _MIN_READ)
            self._pipe._wait(lambda: blob.done or blob.written - self._pos >= want)
            avail = blob.written - self._pos
        if avail <= 0 or n == 0:
            return b""
        if self._fd < 0:
            self._fd = os.open(blob.path, os.O_RDONLY | os.O_CLOEXEC)
        data = os.pread(self._fd, min(n, avail), self._pos)
        self._pos += len(data)
        return data

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence != 0 or pos < 0:
            raise ValueError("only absolute seeks")
        self._pos = pos
        return pos

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


@record(frozen=True)
class LayerJob:
    """One layer of the image: ``tree`` is where to unpack it (its staged
    ``layers/<hex>/``), or None when the store has its tree already: then a blob this
    import fetches is only checked against its diff_id (``check``), else skipped."""

    what: str
    digest: str
    diff_id: str
    tree: Path | None
    check: bool = False


class UnpackThread(threading.Thread):
    """Unpacks each new layer of ``jobs`` (in order) from ``pipe`` into its own staged
    tree, writing the layer's record beside it (``layer.json``).

    After :meth:`join`, ``error`` is what stopped it (any exception, raised again by
    the importing thread), ``records`` the layers' records by diff_id, and
    ``unpacker`` the unpacker (still open, for the farm; the caller closes it) or None.
    ``hold``: see secpod.images._mapped.MappedUnpacker.
    """

    def __init__(self, pipe: Pipe, limits: Limits, jobs: list[LayerJob], say: Any,
                 hold: int | None = None) -> None:
        super().__init__(name="secpod-unpack", daemon=True)
        self._pipe = pipe
        self._limits = limits
        self._jobs = jobs
        self._say = say
        self._hold = hold
        self.error: BaseException | None = None
        self.records: dict[str, dict[str, Any]] = {}
        self.unpacker: Any = None

    def run(self) -> None:
        import json

        from secpod.images import _mapped
        from secpod.images._unpack import check_diff_id

        try:
            for job in self._jobs:
                if job.diff_id in self.records or (job.tree is None and not job.check):
                    continue
                raw = self._pipe.reader(job.digest)
                try:
                    if job.tree is None:
                        check_diff_id(cast(BinaryIO, raw), job.what, job.diff_id, self._limits)
                        continue
                    if self.unpacker is None:
                        self.unpacker = _mapped.unpacker(self._limits, self._hold)
                    (job.tree / "tree").mkdir(parents=True)
                    meta = self.unpacker.apply_layer(cast(BinaryIO, raw), what=job.what,
                                                     diff_id=job.diff_id, root=job.tree / "tree")
                finally:
                    raw.close()
                (job.tree / "layer.json").write_text(json.dumps(meta, sort_keys=True))
                self.records[job.diff_id] = meta
                self._say(f"{job.what}: unpacked")
        except _Aborted:
            pass
        except BaseException as e:  # noqa: BLE001 - handed to the importing thread
            self.error = e


class Syncer(threading.Thread):
    """Flushes staged blobs to disk (``fdatasync``) behind the importing thread, so the
    disk writes overlap the download and the unpack; :meth:`wait` before committing."""

    def __init__(self) -> None:
        super().__init__(name="secpod-sync", daemon=True)
        self._queue: queue.SimpleQueue[Path | None] = queue.SimpleQueue()
        self.error: OSError | None = None
        self.start()

    def add(self, path: Path) -> None:
        self._queue.put(path)

    def run(self) -> None:
        while (path := self._queue.get()) is not None:
            if self.error is not None:
                continue
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    os.fdatasync(fd)
                finally:
                    os.close(fd)
            except OSError as e:
                e.filename = e.filename or str(path)
                self.error = e

    def wait(self) -> None:
        """Return once every blob added is on disk. Raises HostError if one could not be."""
        self.stop()
        if self.error is not None:
            raise HostError(f"cannot write {self.error.filename or 'a blob'} to disk: "
                            f"{self.error.strerror}", hint="check the disk and free space, "
                            "then import again") from self.error

    def stop(self) -> None:
        if self.is_alive():
            self._queue.put(None)
            self.join()
