"""An image's root filesystem as a hard-link farm of its layers' trees (docs/adr/0010).

Each layer is unpacked once, alone, into ``layers/<diff_id hex>/tree``
(:class:`~secpod.images._unpack.Unpacker`). The image's ``rootfs`` is then built by
:class:`Farm`, walking its layers bottom first, as the OCI layer spec applies a
changeset:

1. the layer's opaque directories are emptied of what lower layers put there, and
   its whiteouts remove the lower paths they name;
2. its hardlinks to files of lower layers are made where those files now are;
3. its tree is walked: a directory is made (or kept) in the rootfs, with the mode,
   owner and extended attributes the layer gives it when the layer lists it (the
   last layer that lists it wins); every other entry (file, symlink, FIFO) is
   hard-linked from the layer's tree, replacing what lower layers had there.

A path through a symlink a lower layer placed is refused, as when layers were applied
over one another. Then the mount points are made (docs/images.md) and the directories
get their modes and times, deepest first. Every file of the rootfs is the layer's
inode itself: what two images share is stored once. The farm runs where the unpack
runs (as root of the containers' user namespace, secpod.images._mapped): linking a
file of a subordinate owner needs CAP_FOWNER over it (``fs.protected_hardlinks``).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any

from secpod.errors import MalformedInput
from secpod.images._unpack import (
    _DIR_FLAGS,
    _HINT,
    MOUNTPOINT_DIRS,
    MOUNTPOINT_FILES,
    Limits,
    SafeTree,
    Unpacker,
    _Budget,
    _kind_name,
)

_KEPT_XATTR = ("user.", "security.capability")


class Farm(SafeTree):
    """Builds ``root`` (an empty directory) from layer trees, :meth:`add` bottom first,
    then :meth:`finish`. Raises HostileArchive, MalformedInput; the caller removes
    ``root`` on any error. ``owners``: give directories their layer's owners."""

    def __init__(self, root: Path, owners: bool) -> None:
        super().__init__(root)
        self._owners = owners
        self.created: list[str] = []
        self.symlinked: dict[str, str] = {}
        self.conflicting: dict[str, str] = {}

    def add(self, tree: Path, meta: dict[str, Any], what: str) -> None:
        """Apply one layer: its tree and what :meth:`Unpacker.finish` recorded of it."""
        self._what = what
        self._drop_cache()
        for rel in meta.get("opaque", ()):
            fd = self._walk(rel.split("/") if rel else [], rel or ".", create=False)
            if fd is not None:
                try:
                    for child in os.listdir(fd):
                        self._remove(fd, child, f"{rel}/{child}" if rel else child)
                finally:
                    os.close(fd)
        for rel in meta.get("whiteouts", ()):
            parts = rel.split("/")
            fd = self._parent(parts[:-1], rel, create=False)
            if fd is not None:
                self._remove(fd, parts[-1], rel)
        for name, target in meta.get("links", ()):
            if not self._link_to(name.split("/"), name, target.split("/"), target):
                raise MalformedInput(f"{what}: hardlink {name!r} -> {target!r}: target "
                                     "missing", hint=_HINT)
        self._drop_cache()
        tfd = os.open(tree, _DIR_FLAGS)
        try:
            self._merge(tfd, os.dup(self._root_fd), "", meta.get("dirs", {}))
        finally:
            os.close(tfd)

    def _merge(self, tfd: int, rfd: int, prefix: str, dirs: dict[str, Any]) -> None:
        """Link the layer directory ``tfd`` into the rootfs directory ``rfd`` (closed here)."""
        try:
            with os.scandir(tfd) as it:  # the entry's type from the directory: no stat
                entries = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
            for name, is_dir in entries:
                rel = prefix + name
                if is_dir:
                    self._merge_dir(tfd, rfd, name, rel, dirs)
                    continue
                try:
                    os.link(name, name, src_dir_fd=tfd, dst_dir_fd=rfd, follow_symlinks=False)
                except FileExistsError:
                    self._remove(rfd, name, rel)
                    os.link(name, name, src_dir_fd=tfd, dst_dir_fd=rfd, follow_symlinks=False)
        finally:
            os.close(rfd)

    def _merge_dir(self, tfd: int, rfd: int, name: str, rel: str,
                   dirs: dict[str, Any]) -> None:
        listed = dirs.get(rel)
        try:
            os.mkdir(name, 0o700, dir_fd=rfd)
            if listed is None:
                self._dirs[rel] = (0o755, None)  # made only as a parent, as an unpack does
        except FileExistsError:
            rst = os.stat(name, dir_fd=rfd, follow_symlinks=False)
            if not stat.S_ISDIR(rst.st_mode):
                if listed is None:
                    where = "/" + rel
                    entry = self._first_entry(tfd, name, rel)
                    if stat.S_ISLNK(rst.st_mode):
                        raise self._hostile(f"entry {entry!r} goes through the symlink "
                                            f"{where} (escapes the root)") from None
                    raise MalformedInput(f"{self._what}: entry {entry!r}: {where} is a "
                                         f"{_kind_name(rst.st_mode)}, not a directory",
                                         hint=_HINT) from None
                os.unlink(name, dir_fd=rfd)
                os.mkdir(name, 0o700, dir_fd=rfd)
        sub_t = os.open(name, _DIR_FLAGS, dir_fd=tfd)
        try:
            sub_r = os.open(name, _DIR_FLAGS, dir_fd=rfd)
            if listed is not None:
                try:
                    if self._owners:
                        st = os.fstat(sub_t)
                        os.fchown(sub_r, st.st_uid, st.st_gid)
                    self._copy_xattrs(sub_t, sub_r)
                except BaseException:
                    os.close(sub_r)
                    raise
                self._dirs[rel] = (int(listed[0]), listed[1])
            self._merge(sub_t, sub_r, rel + "/", dirs)
        finally:
            os.close(sub_t)

    @staticmethod
    def _first_entry(tfd: int, name: str, rel: str) -> str:
        """The first path under the layer's directory ``name``, to name in an error."""
        fd = os.open(name, _DIR_FLAGS, dir_fd=tfd)
        try:
            children = sorted(os.listdir(fd))
        finally:
            os.close(fd)
        return f"{rel}/{children[0]}" if children else rel

    @staticmethod
    def _copy_xattrs(src: int, dst: int) -> None:
        try:
            names = os.listxattr(src)
        except OSError as e:
            if e.errno in (errno.ENOTSUP, errno.EPERM):
                return
            raise
        for n in names:
            if n.startswith(_KEPT_XATTR):
                os.setxattr(dst, n, os.getxattr(src, n))

    # --- sealing ---------------------------------------------------------------

    def finish(self) -> dict[str, Any]:
        """Make the missing mount points, give the directories their modes and times;
        return the report's mount point keys."""
        self._drop_cache()
        self._what = "rootfs"
        self._mountpoints()
        for rel in sorted(self._dirs, key=lambda r: r.count("/"), reverse=True):
            mode, mtime = self._dirs[rel]
            fd = self._walk(rel.split("/"), rel, create=False)
            if fd is None:
                continue
            try:
                os.fchmod(fd, mode)
                if mtime is not None:
                    ns = int(mtime * 1e9)
                    os.utime(fd, ns=(ns, ns))
            finally:
                os.close(fd)
        return {"created_mountpoints": list(self.created),
                "symlinked_mountpoints": dict(self.symlinked),
                "conflicting_mountpoints": dict(self.conflicting)}

    def _mountpoints(self) -> None:
        root = self._root_fd
        for d in MOUNTPOINT_DIRS:
            try:
                st = os.stat(d, dir_fd=root, follow_symlinks=False)
            except FileNotFoundError:
                os.mkdir(d, 0o700, dir_fd=root)
                os.chmod(d, 0o1777 if d == "tmp" else 0o755, dir_fd=root)
                self.created.append("/" + d)
                continue
            if stat.S_ISLNK(st.st_mode):
                self.symlinked["/" + d] = os.readlink(d, dir_fd=root)
            elif not stat.S_ISDIR(st.st_mode):
                self.conflicting["/" + d] = _kind_name(st.st_mode)
        if "/etc" in self.symlinked or "/etc" in self.conflicting:
            return
        etc = os.open("etc", _DIR_FLAGS, dir_fd=root)
        try:
            for f in MOUNTPOINT_FILES:
                path = "/etc/" + f
                try:
                    st = os.stat(f, dir_fd=etc, follow_symlinks=False)
                except FileNotFoundError:
                    fd = os.open(f, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                                 | os.O_CLOEXEC, 0o600, dir_fd=etc)
                    os.fchmod(fd, 0o644)
                    os.close(fd)
                    self.created.append(path)
                    continue
                if stat.S_ISLNK(st.st_mode):
                    self.symlinked[path] = os.readlink(f, dir_fd=etc)
                elif not stat.S_ISREG(st.st_mode):
                    self.conflicting[path] = _kind_name(st.st_mode)
        finally:
            os.close(etc)


def merge_reports(layers: list[dict[str, Any]], farm: dict[str, Any]) -> dict[str, Any]:
    """The image's unpack report: its layers' reports added up, and the farm's mount
    points (the keys ``image inspect`` has always shown)."""
    out: dict[str, Any] = {"layers": 0, "entries": 0, "bytes": 0, "whiteouts": 0,
                           "devices_skipped": 0, "setuid_stripped": 0, "foreign_owners": 0,
                           "xattrs_kept": 0}
    uids: set[int] = set()
    gids: set[int] = set()
    dropped: dict[str, int] = {}
    for r in layers:
        for k in out:
            out[k] += int(r.get(k, 0))
        uids.update(r.get("foreign_uids", ()))
        gids.update(r.get("foreign_gids", ()))
        for k, n in r.get("xattrs_dropped", {}).items():
            dropped[k] = dropped.get(k, 0) + n
    out.update(foreign_uids=sorted(uids)[:64], foreign_gids=sorted(gids)[:64],
               owners_kept=bool(layers) and all(r.get("owners_kept") for r in layers),
               xattrs_dropped=dropped, **farm)
    return out


class LocalUnpacker:
    """Unpacks layers and builds farms in this process (see secpod.images._mapped for
    the one in the containers' user namespace): ``owners`` as for :class:`Unpacker`.
    The layers unpacked by one LocalUnpacker share one budget (the image's limits)."""

    def __init__(self, limits: Limits, owners: tuple[int, int] | None = None) -> None:
        self._limits = limits
        self._budget = _Budget(limits)
        self._owners = owners

    def apply_layer(self, blob: Any, *, what: str, diff_id: str | None,
                    root: Path) -> dict[str, Any]:
        """Unpack one layer into the empty directory ``root``; return its record
        (:meth:`Unpacker.finish`)."""
        with Unpacker(root, self._limits, owners=self._owners, budget=self._budget) as u:
            u.apply_layer(blob, what=what, diff_id=diff_id)
            return u.finish()

    def farm(self, root: Path, layers: list[tuple[str, Path, dict[str, Any]]]) -> dict[str, Any]:
        """Build ``root`` from ``layers`` ((what, tree, record), bottom first); return the
        image's unpack report."""
        with Farm(root, self._owners is not None) as f:
            for what, tree, meta in layers:
                f.add(tree, meta, what)
            return merge_reports([m["report"] for _w, _t, m in layers], f.finish())

    def same_tree(self, a: Path, b: Path) -> list[str]:
        from secpod.images._content import same_tree

        return same_tree(a, b)

    def close(self) -> None:
        pass

    def __enter__(self) -> LocalUnpacker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

