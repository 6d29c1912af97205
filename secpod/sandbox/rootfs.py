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
_DIR_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC


class _Missing(Exception):
    """A component of the path does not exist (or is no directory) in the image."""

    def __init__(self, names: list[str], rest: list[str]) -> None:
        super().__init__()
        self.names = names      # the directories found, from the root
        self.rest = rest        # what is left, from the missing component on


class _Walk:
    """A container path walked inside ``root`` by file descriptor, as
    ``openat2(RESOLVE_IN_ROOT)`` resolves it.

    Each directory is opened ``O_PATH|O_NOFOLLOW`` relative to the one before,
    ``..`` goes back to the directory the walk came from (never above the root),
    and a symlink's target is walked again from the root (absolute) or from
    where the link is (relative), at most :data:`_MAX_LINKS` times. Nothing is
    looked up by a host path string after the root is opened, so a directory
    swapped for a symlink during the walk fails the open instead of leading out.
    With ``create``, missing directories on the way are made with ``mkdirat``.
    The last component, if not a symlink (or with ``follow_last=False``, whatever it
    is), is left to the caller: :attr:`dirfd` and :attr:`name` (``"."`` when the path
    is a directory itself).
    """

    def __init__(self, root: Path, path: str, *, create: bool = False,
                 follow_last: bool = True) -> None:
        self.path = path
        self.follow_last = follow_last  # False: a symlink as the last component is the name
        # The root itself is secpod's choice, and may be a running container's
        # /proc/PID/root (a magic link): followed; nothing below it is.
        self.fds = [os.open(root, _DIR_FLAGS & ~os.O_NOFOLLOW)]
        self.names: list[str] = []
        try:
            self.name = self._walk([p for p in path.split("/") if p not in ("", ".")], create)
        except BaseException:
            self.close()
            raise

    @property
    def dirfd(self) -> int:
        return self.fds[-1]

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []

    def __enter__(self) -> _Walk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _up(self) -> None:
        if len(self.fds) > 1:
            os.close(self.fds.pop())
            self.names.pop()

    def _walk(self, parts: list[str], create: bool) -> str:
        links = 0
        while parts:
            part = parts.pop(0)
            if part == "..":
                self._up()
                continue
            last = not parts
            try:
                st = os.stat(part, dir_fd=self.dirfd, follow_symlinks=False)
            except FileNotFoundError:
                if last:
                    return part
                if not create:
                    raise _Missing(list(self.names), [part, *parts]) from None
                try:
                    os.mkdir(part, 0o755, dir_fd=self.dirfd)
                except FileExistsError:
                    pass            # made meanwhile: look again
                parts.insert(0, part)
                continue
            if stat.S_ISLNK(st.st_mode) and not (last and not self.follow_last):
                links += 1
                if links > _MAX_LINKS:
                    raise MalformedInput(f"too many levels of symbolic links in {self.path}")
                target = os.readlink(part, dir_fd=self.dirfd)
                if target.startswith("/"):
                    while len(self.fds) > 1:
                        self._up()
                parts[:0] = [p for p in target.split("/") if p not in ("", ".")]
                continue
            if last:
                return part
            if not stat.S_ISDIR(st.st_mode):
                if create:
                    raise MalformedInput(
                        f"cannot create {self.path} in the image: "
                        f"/{'/'.join([*self.names, part])} is not a directory")
                raise _Missing(list(self.names), [part, *parts])
            self.fds.append(os.open(part, _DIR_FLAGS, dir_fd=self.dirfd))
            self.names.append(part)
        return "."


def resolve(root: Path, path: str) -> Path:
    """Host path of container ``path`` under ``root``, following symlinks inside the root.

    The result may not exist (a missing part is kept as written, ``..`` clamped
    to the root). It is for looking, not for writing: what creates or reads
    files does so through the walk itself. Raises MalformedInput for a symlink loop.
    """
    try:
        with _Walk(root, path) as w:
            names = [*w.names, w.name] if w.name != "." else list(w.names)
    except (_Missing, PermissionError) as m:
        # A folder the user cannot search from the host (it belongs to a subordinate id):
        # the rest is kept as written, and what is looked at there reads as hidden.
        names, rest = (m.names, m.rest) if isinstance(m, _Missing) else (
            [], [p for p in path.split("/") if p not in ("", ".")])
        for part in rest:
            if part == "..":
                if names:
                    names.pop()
            else:
                names.append(part)
    return root.joinpath(*names)


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
        if _exists(host) and (_hidden(host) or host.is_file()):
            return host, candidate
    return None, name


def _hidden(path: Path) -> bool:
    """True when a folder on the way is one the user cannot search from the host (it
    belongs to a subordinate id of the image): the runtime then decides."""
    try:
        path.stat()
    except PermissionError:
        return True
    except OSError:
        return False
    return False


def _exists(path: Path) -> bool:
    try:
        path.stat()
    except PermissionError:
        return True  # cannot tell from out here: left to the runtime (see _hidden)
    except OSError:
        return False
    return True


def is_executable(host_path: Path) -> bool:
    try:
        st = host_path.stat()
    except PermissionError:
        return True  # see _hidden
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
    try:
        with _Walk(root, name) as w:
            fd = os.open(w.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                         dir_fd=w.dirfd)
    except (_Missing, OSError):
        return []
    with open(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return []           # a FIFO or device in the image is no database
        text = f.read(1 << 20).decode("utf-8", errors="replace")
    return [line.split(":") for line in text.splitlines()]


def ensure_mountpoint(root: Path, dest: str, *, directory: bool, create: bool = True) -> None:
    """Create an empty mount point for ``dest`` inside ``root`` when it is missing.

    crun would otherwise create it itself; doing it here keeps the creation
    inside the root: directories are made by ``mkdirat`` relative to a
    descriptor of their parent, found by :class:`_Walk`, never through a host
    path. A parent folder that belongs to a subordinate id of the image (a 0700 home
    of uid 1000) is not the user's to write on the host: the mount point is then made
    as root of the containers' user namespace. Raises MalformedInput when the path, or
    a directory on the way, exists with the wrong type. Without ``create`` it only
    checks that: what is missing, or in a folder the host cannot search, is left to the
    runtime (an overlay root, where crun writes to the upper folder).
    """
    try:
        _ensure_mountpoint(root, dest, directory, create)
    except PermissionError:
        if not create:
            return
        from secpod.sandbox import userns

        userns.call_mapped("secpod.sandbox.rootfs:_ensure_mountpoint", root, dest, directory)


def _ensure_mountpoint(root: Path | str, dest: str, directory: bool,
                       create: bool = True) -> None:
    root = Path(root)
    try:
        w = _Walk(root, dest, create=create)
    except _Missing as e:  # only without create
        blocker = Path(root, *e.names, e.rest[0])
        if blocker.is_symlink() or blocker.exists():
            raise MalformedInput(f"cannot mount on {dest} in the image: "
                                 f"/{'/'.join([*e.names, e.rest[0]])} is not a directory"
                                 ) from None
        return      # missing: the runtime makes it
    with w:
        try:
            st = os.stat(w.name, dir_fd=w.dirfd, follow_symlinks=False)
        except FileNotFoundError:
            if not create:
                return
            if directory:
                os.mkdir(w.name, 0o755, dir_fd=w.dirfd)
            else:
                os.close(os.open(w.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                                 | os.O_CLOEXEC, 0o644, dir_fd=w.dirfd))
            return
        if directory and not stat.S_ISDIR(st.st_mode):
            raise MalformedInput(f"cannot mount a directory on {dest}: it is a file in the image")
