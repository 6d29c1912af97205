"""Paths inside a container's root filesystem, resolved from the host side.

Symlinks in an image are the image's, not the host's: every lookup here
follows them as the container would see them, clamped to the root, so a link
to ``/etc/shadow`` or ``../../..`` never leads out of the image.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

from secpod.errors import MalformedInput

_MAX_LINKS = 40


def resolve(root: Path, path: str) -> Path:
    """Host path of container ``path`` under ``root``, following symlinks inside the root.

    The result may not exist. Raises MalformedInput for a symlink loop.
    """
    parts = list(PurePosixPath("/", path).parts[1:])
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root.joinpath(*resolved, part)
        try:
            st = candidate.lstat()
        except FileNotFoundError:
            resolved.append(part)
            resolved.extend(p for p in parts if p not in ("", "."))
            break
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > _MAX_LINKS:
                raise MalformedInput(f"too many levels of symbolic links in {path}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = list(PurePosixPath(target).parts[1 if target.startswith("/") else 0 :]) + parts
            continue
        resolved.append(part)
    return root.joinpath(*resolved)


def find_executable(
    root: Path, name: str, search_path: str, cwd: str = "/"
) -> tuple[Path | None, str]:
    """Find ``name`` as the container would exec it: ``(host path or None, container path)``."""
    if "/" in name:
        container_path = name if name.startswith("/") else str(PurePosixPath(cwd, name))
        return (
            resolve(root, container_path) if _exists(resolve(root, container_path)) else None,
            container_path,
        )
    for directory in search_path.split(":"):
        if not directory:
            continue
        candidate = str(PurePosixPath("/", directory, name))
        host = resolve(root, candidate)
        if _exists(host) and host.is_file():
            return host, candidate
    return None, name


def _exists(path: Path) -> bool:
    try:
        path.stat()
    except OSError:
        return False
    return True


def is_executable(host_path: Path) -> bool:
    try:
        st = host_path.stat()
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and bool(st.st_mode & 0o111)


def lookup_user(root: Path, spec: str) -> tuple[int, int, str | None]:
    """``USER[:GROUP]`` (names or numbers) -> (uid, gid, home) from the image's passwd/group.

    Raises MalformedInput naming the user or group the image does not have.
    """
    user, _, group = spec.partition(":")
    passwd = _read_db(root, "/etc/passwd")
    uid: int | None = None
    gid: int | None = None
    home = None
    for fields in passwd:
        if len(fields) >= 6 and (fields[0] == user or fields[2] == user):
            uid, gid, home = _int(fields[2]), _int(fields[3]), fields[5]
            break
    if uid is None:
        if not user.isdigit():
            raise MalformedInput(
                f"user {user!r} is not in the image's /etc/passwd",
                hint="give a numeric --user UID[:GID]",
            )
        uid, gid = int(user), int(user) if not group else None
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            gid = next(
                (_int(f[2]) for f in _read_db(root, "/etc/group") if len(f) >= 3 and f[0] == group),
                None,
            )
            if gid is None:
                raise MalformedInput(
                    f"group {group!r} is not in the image's /etc/group",
                    hint="give a numeric --user UID:GID",
                )
    return uid, gid if gid is not None else 0, home


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0


def _read_db(root: Path, name: str) -> list[list[str]]:
    path = resolve(root, name)
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return [line.rstrip("\n").split(":") for line in f.read(1 << 20).splitlines()]
    except OSError:
        return []


def ensure_mountpoint(root: Path, dest: str, *, directory: bool) -> None:
    """Create an empty mount point for ``dest`` inside ``root`` when it is missing.

    crun would otherwise create it itself; doing it here keeps the creation
    clamped to the root (through :func:`resolve`). Raises MalformedInput when
    the path exists with the wrong type.
    """
    host = resolve(root, dest)
    if host.exists():
        if directory and not host.is_dir():
            raise MalformedInput(f"cannot mount a directory on {dest}: it is a file in the image")
        return
    host.parent.mkdir(parents=True, exist_ok=True)
    if directory:
        host.mkdir(exist_ok=True)
    else:
        host.touch(exist_ok=True)
