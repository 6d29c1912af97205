"""What a container changed in its root: ``secpod diff`` and the layer of ``secpod
commit`` (docs/storage-cp-diff-commit.md).

Both read the container's ``upper/`` folder (docs/adr/0006-overlay-root.md) beside the
image's tree, as root of a user namespace mapped as the containers are (files there
belong to container ids), never through a mount: a running container's files are read
as they are on disk. The folder is walked by descriptor (``os.fwalk``), so a container
that swaps a folder for a symbolic link meanwhile cannot lead the walk out.

- a path in ``upper/`` that the image lacks is added (A); one the image has, changed (C);
- a whiteout (the kernel writes a character device 0/0; ``user.overlay.whiteout`` on a
  file is read too) is a deletion (D), and an opaque folder (``user.overlay.opaque``)
  hides everything the image had below it (its entries the container lacks are D);
- what the runtime made only to mount something on (an empty ``/etc/hostname``, a
  volume's mount point, the folders on the way to one) is no change of the container's.

The layer is a tar of those entries, with OCI whiteouts (``.wh.NAME`` for a deletion,
``.wh..wh..opq`` in an opaque folder) and the files' container owners; setuid and
setgid bits are stripped (and counted), as an imported layer's are, and a device other
than a whiteout is refused.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import PurePosixPath

from secpod.errors import Conflict, HostError, Refused

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

    from secpod.sandbox.state import Container

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PATH_DIR = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
KINDS = {"A": "added", "C": "changed", "D": "deleted"}


def _mount_points(ctr: Container, audited: bool) -> list[str]:
    """The container's mount destinations, from its checked bundle (BundleChanged if it
    changed, audited as a refused ``container.diff`` when ``audited``)."""
    from secpod.sandbox import bundle, operations

    if audited:
        config = operations.checked_bundle(ctr, "container.diff")
    else:
        config = bundle.checked_config(ctr.bundle, ctr.config_digest, ctr.name)
    return sorted({os.path.normpath(str(m.get("destination", "/")))
                   for m in config.get("mounts") or []} - {"/"})


def changes(ctr: Container) -> list[tuple[str, str]]:
    """(kind, path) of every change, sorted by path: A, C or D, as ``docker diff``. A
    container with a read-only root changes nothing there: an empty list. Raises
    HostError when the upper folder cannot be read."""
    if not ctr.root_lower:
        return []
    from secpod.sandbox import userns

    found: list[list[str]] = userns.call_mapped(
        "secpod.sandbox.changes:child_changes", str(ctr.dir / "upper"), ctr.root_lower,
        json.dumps(_mount_points(ctr, True)), timeout=3600)
    return [(k, p) for k, p in found]


def write_layer(ctr: Container, target: str) -> dict[str, Any]:
    """Write the container's changes as a gzip tar layer at ``target`` (a new file in a
    folder of the user's); its ``digest``, ``diff_id``, ``size``, and what was stripped.
    Raises Conflict for a read-only root, Refused for a device, BundleChanged, HostError
    (the caller audits)."""
    if not ctr.root_lower:
        raise Conflict(f"container {ctr.name} has a read-only root (profile {ctr.profile}): "
                       "it changed nothing to commit",
                       hint="commit a container run with a writable root (--profile default)")
    from secpod.sandbox import userns

    out: dict[str, Any] = userns.call_mapped(
        "secpod.sandbox.changes:child_layer", str(ctr.dir / "upper"), ctr.root_lower,
        json.dumps(_mount_points(ctr, False)), target, timeout=3600)
    return out


# --- the child: root of a mapped user namespace -------------------------------------


class _Entry:
    __slots__ = ("rel", "st", "kind", "whiteout", "opaque", "lower", "hidden")

    def __init__(self, rel: str, st: os.stat_result) -> None:
        self.rel = rel                      # "/etc/passwd"
        self.st = st
        self.kind = ""                      # "A", "C", "D" once judged, "" if no change
        self.whiteout = False
        self.opaque = False
        self.lower: os.stat_result | None = None
        self.hidden: list[str] = []         # an opaque folder's image entries now gone


def _xattr(dirfd: int, name: str, attr: str) -> bytes | None:
    try:
        return os.getxattr(f"/proc/self/fd/{dirfd}/{name}", attr, follow_symlinks=False)
    except OSError:
        return None


def _lower_stat(lower: int, rel: str) -> os.stat_result | None:
    """The image's entry at ``rel``, looked up by descriptor without following a link
    on the way (a link in the image is no folder of the overlay's)."""
    parts = [p for p in rel.split("/") if p]
    fds: list[int] = []
    try:
        fd = lower
        for part in parts[:-1]:
            try:
                fd = os.open(part, _PATH_DIR, dir_fd=fd)
            except OSError:
                return None
            fds.append(fd)
        try:
            return os.stat(parts[-1], dir_fd=fd, follow_symlinks=False) if parts else None
        except OSError:
            return None
    finally:
        for f in fds:
            os.close(f)


def _lower_names(lower: int, rel: str) -> list[str]:
    parts = [p for p in rel.split("/") if p]
    fds: list[int] = []
    try:
        fd = lower
        for part in parts:
            try:
                fd = os.open(part, _PATH_DIR, dir_fd=fd)
            except OSError:
                return []
            fds.append(fd)
        listing = os.open(".", _DIR, dir_fd=fd)
        try:
            return sorted(os.listdir(listing))
        finally:
            os.close(listing)
    finally:
        for f in fds:
            os.close(f)


def _scan(upper: str, lower: str, mounts_json: str) -> list[_Entry]:
    """Every change in ``upper`` over ``lower``, judged; sorted by path."""
    mounts = json.loads(mounts_json)
    ancestors = {str(p) for m in mounts for p in PurePosixPath(m).parents} - {"/"}
    lfd = os.open(lower, _DIR)
    ufd = os.open(upper, _DIR)
    entries: dict[str, _Entry] = {}
    try:
        for dirpath, dirnames, filenames, dirfd in os.fwalk(".", dir_fd=ufd,
                                                            follow_symlinks=False):
            base = "/" + dirpath[2:] if dirpath != "." else "/"
            for name in sorted(dirnames + filenames):
                rel = f"{base.rstrip('/')}/{name}"
                if rel in mounts:
                    if name in dirnames:
                        dirnames.remove(name)   # the runtime's mount point: not walked
                    continue
                try:
                    st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
                except FileNotFoundError:
                    continue  # removed meanwhile by a running container
                e = _Entry(rel, st)
                e.lower = _lower_stat(lfd, rel)
                mode = st.st_mode
                if (stat.S_ISCHR(mode) and st.st_rdev == 0) or (
                        stat.S_ISREG(mode) and st.st_size == 0
                        and _xattr(dirfd, name, "user.overlay.whiteout") is not None):
                    e.whiteout = True
                    if e.lower is None:
                        continue    # a whiteout of nothing the image has
                elif stat.S_ISDIR(mode) and _xattr(dirfd, name, "user.overlay.opaque") == b"y":
                    e.opaque = True
                    if e.lower is not None and stat.S_ISDIR(e.lower.st_mode):
                        have = set(_names_in(dirfd, name))
                        e.hidden = [n for n in _lower_names(lfd, rel) if n not in have]
                entries[rel] = e
    finally:
        os.close(lfd)
        os.close(ufd)
    reported: set[str] = set()
    for rel in sorted(entries, key=lambda r: r.count("/"), reverse=True):  # children first
        e = entries[rel]
        if e.whiteout:
            e.kind = "D"
        elif (stat.S_ISDIR(e.st.st_mode) and rel in ancestors and not e.hidden
              and rel not in reported and not _meta_differs(e)):
            e.kind = ""     # only on the way to a mount point
        else:
            e.kind = "A" if e.lower is None else "C"
        if e.kind:
            for p in PurePosixPath(rel).parents:
                reported.add(str(p))
    return sorted((e for e in entries.values() if e.kind), key=lambda e: e.rel)


def _names_in(dirfd: int, name: str) -> list[str]:
    fd = os.open(name, _DIR, dir_fd=dirfd)
    try:
        return os.listdir(fd)
    finally:
        os.close(fd)


def _meta_differs(e: _Entry) -> bool:
    lo = e.lower
    if lo is None:
        return False
    return (stat.S_IMODE(lo.st_mode) != stat.S_IMODE(e.st.st_mode) or lo.st_uid != e.st.st_uid
            or lo.st_gid != e.st.st_gid or stat.S_IFMT(lo.st_mode) != stat.S_IFMT(e.st.st_mode))


def child_changes(upper: str, lower: str, mounts_json: str) -> list[list[str]]:
    """(kind, path) of every change (the parent's :func:`changes`)."""
    try:
        out: list[list[str]] = []
        for e in _scan(upper, lower, mounts_json):
            out.append([e.kind, e.rel])
            out += [["D", f"{e.rel}/{n}"] for n in e.hidden]
        return sorted(out, key=lambda kp: kp[1])
    except OSError as ex:
        raise HostError(f"cannot read the container's changes: {ex.strerror or ex}",
                        hint="secpod doctor checks the subordinate id ranges") from ex


def child_layer(upper: str, lower: str, mounts_json: str, target: str) -> dict[str, Any]:
    """Write the layer (the parent's :func:`write_layer`); removed again on failure."""
    try:
        return _layer(upper, lower, mounts_json, target)
    except BaseException as ex:
        try:
            os.unlink(target)
        except OSError:
            pass
        if isinstance(ex, OSError):
            raise HostError(f"cannot write the layer: {ex.strerror or ex}",
                            hint="check free space in the image store; no image was made"
                            ) from ex
        raise


def _layer(upper: str, lower: str, mounts_json: str, target: str) -> dict[str, Any]:
    import gzip
    import tarfile

    from secpod.images.build import _Hashing

    entries = _scan(upper, lower, mounts_json)
    stripped = 0
    ufd = os.open(upper, _DIR)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)
    try:
        with os.fdopen(fd, "wb") as raw:
            compressed = _Hashing(raw)
            with gzip.GzipFile(fileobj=compressed, mode="wb", compresslevel=6, mtime=0) as gz:
                plain = _Hashing(gz)  # type: ignore[arg-type]
                with tarfile.open(fileobj=plain, mode="w|",  # type: ignore[call-overload]
                                  format=tarfile.PAX_FORMAT) as tar:
                    for e in entries:
                        stripped += _add(tar, ufd, e)
            os.fsync(raw.fileno())
    finally:
        os.close(ufd)
    return {"digest": "sha256:" + compressed.hash.hexdigest(),
            "diff_id": "sha256:" + plain.hash.hexdigest(), "size": compressed.size,
            "entries": len(entries), "setuid_stripped": stripped}


def _info(name: str, st: os.stat_result) -> Any:
    import tarfile

    info = tarfile.TarInfo(name)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.uname = info.gname = ""
    info.mtime = int(st.st_mtime)
    return info


def _add(tar: Any, ufd: int, e: _Entry) -> int:
    """Add one change to ``tar``; 1 when a setuid or setgid bit was stripped."""
    import tarfile

    rel = e.rel.lstrip("/")
    parent, _, leaf = rel.rpartition("/")
    if e.whiteout:
        info = _info(f"{parent}/.wh.{leaf}".lstrip("/"), e.st)
        info.mode, info.uid, info.gid = 0o600, 0, 0
        tar.addfile(info)
        return 0
    st, mode = e.st, e.st.st_mode
    info = _info(rel, st)
    stripped = 0
    if info.mode & 0o6000:
        info.mode &= ~0o6000
        stripped = 1
    dfd = _open_parent(ufd, parent)
    try:
        if stat.S_ISDIR(mode):
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
            if e.opaque:
                wh = _info(f"{rel}/.wh..wh..opq", st)
                wh.mode, wh.uid, wh.gid = 0o600, 0, 0
                tar.addfile(wh)
        elif stat.S_ISLNK(mode):
            info.type = tarfile.SYMTYPE
            info.linkname = os.readlink(leaf, dir_fd=dfd)
            tar.addfile(info)
        elif stat.S_ISFIFO(mode):
            info.type = tarfile.FIFOTYPE
            tar.addfile(info)
        elif stat.S_ISREG(mode):
            src = os.open(leaf, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                          dir_fd=dfd)
            with os.fdopen(src, "rb") as f:
                now = os.fstat(f.fileno())
                if not stat.S_ISREG(now.st_mode):
                    raise Conflict(f"{_shown(e.rel)} changed while it was committed",
                                   hint="stop the container, then commit again")
                info.size = now.st_size
                tar.addfile(info, f)
        else:
            raise Refused(f"{_shown(e.rel)} is a device or socket the container made: "
                          "a layer carries none", hint="remove it in the container first")
    finally:
        if dfd != ufd:
            os.close(dfd)
    return stripped


def _shown(path: str) -> str:
    from secpod.sandbox.cp import shown

    return shown(path)


def _open_parent(ufd: int, parent: str) -> int:
    fd = ufd
    for part in [p for p in parent.split("/") if p]:
        nxt = os.open(part, _PATH_DIR, dir_fd=fd)
        if fd != ufd:
            os.close(fd)
        fd = nxt
    return fd
