"""A per-user cache of pure, repeatable results, under ``$XDG_CACHE_HOME/secpod``.

Only results that are a hint, never an authority, belong here: each caller keys
an entry by everything the result depends on and validates what it reads back,
so that a lost, stale or forged entry costs time and nothing else. An entry
that cannot be read, is malformed, is not a regular file owned by the user, or
is writable by others is ignored (and rewritten); a cache folder that is not the
user's private folder (the check of :func:`secpod.paths.ensure_private_dir`) is
not used at all. Nothing here raises: a cache that cannot work is no cache.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from secpod import paths
from secpod.errors import Error, HostError

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

MAX_ENTRY = 1 << 20
_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/secpod`` (``~/.cache/secpod`` without it)."""
    value = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(value) if value and os.path.isabs(value) else Path.home() / ".cache"
    return base / "secpod"


def _folder() -> Path | None:
    try:
        return paths.ensure_private_dir(cache_dir())
    except (HostError, OSError, RuntimeError):
        return None


def _entry(folder: Path, kind: str, key: str) -> Path:
    return folder / f"{kind}-{key}.json"


def get(kind: str, key: str) -> Any:
    """The value stored under (``kind``, ``key``), or None when there is no usable entry.

    ``key`` must be a hex digest of everything the value depends on; the caller
    still validates the value (it is the user's file, as trusted as the user).
    """
    folder = _folder()
    if folder is None:
        return None
    data = read_own(_entry(folder, kind, key), MAX_ENTRY)
    if data is None:
        return None
    try:
        doc = json.loads(data)
    except ValueError:
        return None
    if not isinstance(doc, dict) or doc.get("kind") != kind or doc.get("key") != key:
        return None
    return doc.get("value")


def read_own(path: Path, limit: int) -> bytes | None:
    """The bytes of ``path`` if it is a regular file of the user's that no one else may
    write, of at most ``limit`` bytes (no symlink followed); else None."""
    try:
        fd = os.open(path, _FLAGS)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if (not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid()
                or st.st_mode & 0o022 or st.st_size > limit):
            return None
        data = os.read(fd, limit + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    return data if len(data) == st.st_size else None


def put(kind: str, key: str, value: Any) -> None:
    """Store ``value`` (JSON data) under (``kind``, ``key``): written aside, then renamed."""
    folder = _folder()
    if folder is None:
        return
    try:
        data = json.dumps({"kind": kind, "key": key, "value": value},
                          separators=(",", ":")).encode()
    except (TypeError, ValueError):
        return
    if len(data) > MAX_ENTRY:
        return
    from secpod._files import write_atomic

    try:
        write_atomic(_entry(folder, kind, key), data, mode=0o600)
    except Error:
        return
