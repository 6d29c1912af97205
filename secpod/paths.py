"""Where secpod keeps things, per user (XDG) and per host (administrator).

- data: ``$XDG_DATA_HOME/secpod`` (image store, containers, the user's audit log)
- runtime: ``$XDG_DATA_HOME/secpod/run`` (crun state root, exit files, conmon's
  sockets, notices). It lives in the data dir, not in ``XDG_RUNTIME_DIR``: whether a
  container runs must not depend on an environment variable (a shell from ``su -`` or
  ``sudo -u`` sees the same containers), and no folder in /tmp that another user could
  pre-create is ever used.
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
    return data_dir() / "run"


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (mode 0700) if missing and check that the user owns it.

    Raises HostError if it exists but belongs to someone else or others can write it.
    """
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = path.lstat()
    except OSError as e:
        raise HostError(
            f"cannot create {path}: {e.strerror}",
            hint="set XDG_DATA_HOME (or HOME) to a directory you own",
        ) from e
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise HostError(
            f"{path} is not a directory owned by you",
            hint="remove it or set XDG_DATA_HOME to a directory you own",
        )
    if st.st_mode & 0o022:
        raise HostError(
            f"{path} is writable by other users",
            hint=f"chmod go-w {path}",
        )
    return path
