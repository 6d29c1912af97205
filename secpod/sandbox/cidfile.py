"""``--cidfile FILE``: the new container's id in a file, as Docker writes it.

Docker refuses a file that exists (another container may be using it), so does
secpod, before anything is made. The id is written to a temp file beside FILE and
linked into place: FILE appears whole or not at all, and never replaces a file that
appeared meanwhile. A container whose id cannot be written is removed again.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from secpod.errors import Conflict, Error, UsageError


def check(path: str) -> Path:
    """``path`` as the file to write; raises Conflict if it exists, UsageError if its
    folder does not."""
    file = Path(path).expanduser().absolute()
    if os.path.lexists(file):
        raise Conflict(f"the container id file {file} exists: another container may be "
                       "using it", hint=f"remove {file}, or give another --cidfile")
    if not file.parent.is_dir():
        raise UsageError(f"--cidfile {path}: the folder {file.parent} does not exist",
                         hint="create it first, or give another --cidfile")
    return file


def write(file: Path, cid: str) -> None:
    """Write ``cid`` into ``file``, which must still not exist. Raises Error."""
    tmp = file.with_name(f".{file.name}.tmp-{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, cid.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(tmp, file)  # fails, rather than replaces, if FILE appeared meanwhile
    except FileExistsError as e:
        raise Conflict(f"the container id file {file} appeared meanwhile",
                       hint="give another --cidfile") from e
    except OSError as e:
        raise Error(f"cannot write the container id file {file}: {e.strerror or e}",
                    hint="give a --cidfile in a folder you can write") from e
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
