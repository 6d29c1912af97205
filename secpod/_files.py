"""Files a person hands secpod, and files secpod replaces.

:func:`read_limited` reads a regular file of bounded size, and :func:`open_regular` opens
one to be streamed: a FIFO, a device or a huge file would hang or exhaust memory.
:func:`write_atomic` is the one way secpod replaces a file a person or another command
may read (policies, profiles, reports, proofs, container state, bundles). The audit
log's own files keep their writer in secpod/audit/_store.py: they map failures to
AuditError and check for short writes on the log's durability path.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from secpod.errors import Error


class NotRegularFile(OSError):
    """A folder, FIFO, device or socket where a file was expected (errno EINVAL)."""


class TooLarge(OSError):
    """A file larger than the reader's limit (errno EFBIG)."""


def open_regular(path: Path, *, nofollow: bool = False) -> int:
    """A read-only descriptor of the regular file ``path``, for files that can be long and
    are read as a stream (audit logs). Raises OSError as ``open`` does, or NotRegularFile:
    a FIFO would hang a reader and a device (a link to /dev/zero) never end."""
    # O_NONBLOCK: a FIFO must not hang the open; fstat then refuses it.
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | (os.O_NOFOLLOW if nofollow else 0)
    fd = os.open(path, flags)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegularFile(errno.EINVAL, "not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_limited(path: Path, limit: int, *, nofollow: bool = False) -> bytes:
    """The bytes of the regular file ``path`` (with ``nofollow``, not through a symbolic
    link). Raises OSError as ``open`` does (ELOOP for a link with ``nofollow``),
    NotRegularFile, or TooLarge when it holds more than ``limit`` bytes."""
    fd = open_regular(path, nofollow=nofollow)
    try:
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > limit:
        raise TooLarge(errno.EFBIG, f"larger than {limit} bytes")
    return b"".join(chunks)


_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW


def write_atomic(path: Path, data: str | bytes, *, mode: int | None = None,
                 durable: bool = False) -> None:
    """Write ``data`` to ``path`` through a temp file renamed over it.

    ``mode``: the file's permissions (else 0o666 less the umask); ``durable``: fsync
    before the rename. Raises Error (with a hint) if it cannot; the temp file is gone
    then and ``path`` untouched.
    """
    raw = data.encode() if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        fd = os.open(tmp, _FLAGS, 0o666 if mode is None else mode)
        try:
            if mode is not None:
                os.fchmod(fd, mode)  # not narrowed by the umask
            view = memoryview(raw)
            while view:
                view = view[os.write(fd, view):]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise Error(f"cannot write {path}: {e.strerror or e}",
                    hint="check that the folder exists and you may write to it") from e


def which(name: str, path: str | None = None) -> str | None:
    """``shutil.which`` for a command name (no slash): the first executable regular file
    called ``name`` in ``path`` (default ``$PATH``). Here because shutil also imports
    bz2, lzma and fnmatch, which no `run` needs."""
    search = os.environ.get("PATH", os.defpath) if path is None else path
    for folder in search.split(os.pathsep):
        candidate = os.path.join(folder or ".", name)
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and os.access(candidate, os.X_OK):
            return candidate
    return None


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def remove_tree(path: str | Path, failed: list[str]) -> None:
    """Remove ``path`` and everything below it, never following a symbolic link (a link
    is removed, not what it points to); appends each name that cannot be removed to
    ``failed``. Like ``shutil.rmtree`` with an error callback, without importing shutil
    (and, through it, bz2 and lzma) on the way of every ``run --rm``."""
    try:
        fd = os.open(path, _DIR_FLAGS)
    except FileNotFoundError:
        return
    except OSError as e:
        if e.errno not in (errno.ENOTDIR, errno.ELOOP):
            failed.append(str(path))
            return
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError:
            failed.append(str(path))
        return
    try:
        _remove_below(fd, str(path), failed)
    finally:
        os.close(fd)
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
    except OSError:
        failed.append(str(path))


def _open_dir_to_remove(name: str, dir_fd: int) -> int:
    """Open a directory to empty it; one of the user's own without read permission (as
    overlay's ``work/work``, made 000) is given it first, by descriptor (no symlink
    followed)."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except PermissionError:
        path_fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC,
                          dir_fd=dir_fd)
        try:
            if os.fstat(path_fd).st_uid != os.getuid():
                raise
            os.chmod(f"/proc/self/fd/{path_fd}", 0o700)
        finally:
            os.close(path_fd)
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)


def _remove_below(dir_fd: int, prefix: str, failed: list[str]) -> None:
    try:
        with os.scandir(dir_fd) as it:
            entries = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
    except OSError:
        failed.append(prefix)
        return
    for name, is_dir in entries:
        full = f"{prefix}/{name}"
        if is_dir:
            try:
                child = _open_dir_to_remove(name, dir_fd)
            except FileNotFoundError:
                continue
            except OSError:
                failed.append(full)
                continue
            try:
                _remove_below(child, full, failed)
            finally:
                os.close(child)
            try:
                os.rmdir(name, dir_fd=dir_fd)
            except FileNotFoundError:
                pass
            except OSError:
                failed.append(full)
        else:
            try:
                os.unlink(name, dir_fd=dir_fd)
            except FileNotFoundError:
                pass
            except OSError:
                failed.append(full)
