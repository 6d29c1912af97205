"""Writing a file whole or not at all: beside the target, then renamed over it."""

from __future__ import annotations

import os
from pathlib import Path

from secpod.errors import Error


def write_atomic(path: Path, text: str, *, mode: int | None = None) -> None:
    """Write ``text`` to ``path`` through a temp file renamed over it (``mode``: chmod first).

    Raises Error (with a hint) if it cannot; the temp file is gone then, ``path`` untouched.
    """
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text)
        if mode is not None:
            tmp.chmod(mode)
        tmp.replace(path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise Error(f"cannot write {path}: {e.strerror}",
                    hint="check that the folder exists and you may write to it") from e
