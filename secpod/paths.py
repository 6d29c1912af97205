"""Where secpod keeps things, per user (XDG) and per host (administrator).

- data: ``$XDG_DATA_HOME/secpod`` (image store, containers, the user's audit log)
- runtime: ``$XDG_RUNTIME_DIR/secpod`` (crun state root, exit files, locks);
  without ``XDG_RUNTIME_DIR``, ``/tmp/secpod-run-UID`` owned by the user, mode 0700
- config: ``$XDG_CONFIG_HOME/secpod`` (the user's profiles, trust policy, keys)
- admin: ``/etc/secpod`` (the administrator's floor and profiles); never
  relocatable by the user: nothing in the environment moves it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from secpod.errors import HostError

ADMIN_DIR = Path("/etc/secpod")


def _xdg(var: str, default: str) -> Path:
    value = os.environ.get(var, "")
    base = Path(value) if value and os.path.isabs(value) else Path.home() / default
    return base / "secpod"


def data_dir() -> Path:
    return _xdg("XDG_DATA_HOME", ".local/share")


def config_dir() -> Path:
    return _xdg("XDG_CONFIG_HOME", ".config")


def runtime_dir() -> Path:
    value = os.environ.get("XDG_RUNTIME_DIR", "")
    if value and os.path.isabs(value):
        return Path(value) / "secpod"
    return Path(f"/tmp/secpod-run-{os.getuid()}")  # noqa: S108 - checked for ownership below


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (mode 0700) if missing and check that the user owns it.

    Raises HostError if it exists but belongs to someone else or others can write it.
    """
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise HostError(
            f"{path} is not a directory owned by you",
            hint="remove it or set XDG_RUNTIME_DIR/XDG_DATA_HOME to a directory you own",
        )
    if st.st_mode & 0o022:
        raise HostError(
            f"{path} is writable by other users",
            hint=f"chmod go-w {path}",
        )
    return path
