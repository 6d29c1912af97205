"""What a verified image is, recorded when it enters the store and checked before a run.

Signatures cover the manifest; the config blob, the layer blobs and the unpacked
root filesystem live in the user's own store, where the user can change them. So
when an image is committed, secpod records (``unpacked/<hex>/``):

    content.json   the blobs' stat (size, inode, mtime, ctime) taken once they were
                   hashed, the tree record's digest, the filesystem's device
    tree           the tree record: for every path under rootfs/, in a fixed order,
                   ``path NUL mode size ctime_ns inode LF``

and before a run (``check``):

1. the config blob is hashed again (it is small) and must be the manifest's;
2. every layer blob's stat must be the recorded one, else it is hashed again;
3. one walk of the tree (``os.scandir`` and ``lstat``) must give the recorded tree
   record, byte for byte: a write, chmod, chown, xattr, rename, link or unlink
   changes a ctime, and nobody but root can set a ctime; an entry on another device
   (a FUSE or bind mount over part of the tree) is refused.

The digest of content.json is the image's *content digest*: ``image.import``,
``image.pull`` and ``image.verify`` records carry it to the user's log and, where
the administrator runs the collector, to the host log; every run's trust record
carries the digest it checked. ``deep`` re-hashes every blob and unpacks the layers
again to compare the tree file by file, then records the tree afresh.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat

from secpod.errors import ContentChanged, MalformedInput

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from pathlib import Path
    from typing import Any

    from secpod.images._manifest import Manifest

RECORD = "content.json"
TREE = "tree"
VERSION = 1
_SHOW = 5  # changes named in one message
_HINT_RECORD = ("`secpod image verify --deep {ref}` re-checks the image against its "
                "layers and records it again; or `secpod image rm -f {ref}` and import "
                "or pull it again")


class _Foreign(Exception):
    """An entry of the tree is on another device than the tree's root."""

    def __init__(self, rel: bytes) -> None:
        super().__init__(rel)
        self.rel = rel


# The runtime mounts over these (a tmpfs on /dev, the container's own hosts, hostname
# and resolv.conf) and crun creates its mountpoints there in the shared tree: what the
# image holds at these paths never runs, so only their type and mode are recorded.
_RUNTIME = (b"etc/hosts", b"etc/hostname", b"etc/resolv.conf")


def _line(rel: bytes, st: os.stat_result) -> bytes:
    if stat.S_ISDIR(st.st_mode) or rel in _RUNTIME:
        # A folder's entries are each recorded; its size and ctime change with them.
        return rel + b"\0%o 0 0 %d\n" % (st.st_mode, st.st_ino)
    return rel + b"\0%o %d %d %d\n" % (st.st_mode, st.st_size, st.st_ctime_ns, st.st_ino)


def walk(root: Path) -> tuple[bytes, int]:
    """(the tree record of ``root``, its device). Raises _Foreign, OSError.

    Directories are entered in name order, depth first. A directory its owner
    cannot list is recorded as such (its ctime still guards it: a chmod shows).
    """
    top = os.fsencode(root)
    st = os.lstat(top)
    dev = st.st_dev
    out = [_line(b".", st)]
    stack: list[tuple[bytes, bytes]] = [(top, b"")]
    while stack:
        path, rel = stack.pop()
        try:
            with os.scandir(path) as it:
                entries = sorted(it, key=lambda e: e.name)
        except PermissionError:
            out.append(rel + b"\0unreadable\n")
            continue
        subdirs = []
        for e in entries:
            est = e.stat(follow_symlinks=False)
            r = rel + e.name
            if est.st_dev != dev:
                raise _Foreign(r)
            out.append(_line(r, est))
            if stat.S_ISDIR(est.st_mode) and r != b"dev":
                subdirs.append((e.path, r + b"/"))
        stack.extend(reversed(subdirs))
    return b"".join(out), dev


def _blob_stat(path: Path) -> list[int]:
    st = os.lstat(path)
    return [st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns]


def _hash_file(path: Path, alg: str = "sha256") -> str:
    h = hashlib.new(alg)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return f"{alg}:{h.hexdigest()}"


def _names(manifest: Manifest) -> list[tuple[str, str]]:
    """(what, digest) of the config and each layer, as messages name them."""
    n = len(manifest.layers)
    return [("config", manifest.config.digest)] + [
        (f"layer {i + 1}/{n}", d.digest) for i, d in enumerate(manifest.layers)]


def take(unpacked: Path, manifest: Manifest, blob_path: Callable[[str], Path],
         hashed: Iterable[str]) -> str:
    """Record the image whose folder is ``unpacked``; return its content digest.

    ``hashed`` are the blobs hashed by this import; the others are hashed here, so
    that the stat recorded is always that of a blob known to be right. Raises
    DigestMismatch (a stored blob is not what its digest says), OSError.
    """
    from secpod.errors import DigestMismatch

    done = set(hashed)
    blobs: dict[str, list[int]] = {}
    for what, digest in _names(manifest):
        path = blob_path(digest)
        before = _blob_stat(path)
        if digest not in done:
            actual = _hash_file(path, digest.partition(":")[0])
            if actual != digest:
                raise DigestMismatch(f"the store's {what} blob {digest} is damaged: its "
                                     f"content is {actual}",
                                     hint="remove the images that use it "
                                     "(secpod image rm -f) and import them again")
            done.add(digest)
        blobs[digest] = before
    try:
        tree, dev = walk(unpacked / "rootfs")
    except _Foreign as e:
        raise MalformedInput(f"/{os.fsdecode(e.rel)} in the unpacked tree {unpacked} is on "
                             "another filesystem (something is mounted over it)",
                             hint="unmount it, then try again") from None
    _write(unpacked / TREE, tree)
    body = {"version": VERSION, "config": manifest.config.digest, "blobs": blobs,
            "tree": {"sha256": hashlib.sha256(tree).hexdigest(), "dev": dev,
                     "entries": tree.count(b"\n")}}
    data = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    _write(unpacked / RECORD, data)
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW,
                 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def recorded(unpacked: Path) -> str | None:
    """The content digest of the record in ``unpacked``, None if there is none."""
    try:
        with open(unpacked / RECORD, "rb") as f:
            data = f.read(1 << 24)
    except FileNotFoundError:
        return None
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _load(unpacked: Path, ref: str) -> tuple[dict[str, Any], str]:
    hint = _HINT_RECORD.format(ref=ref)
    try:
        with open(unpacked / RECORD, "rb") as f:
            data = f.read(1 << 24)
    except FileNotFoundError:
        raise ContentChanged(f"image {ref} has no content record: it was stored before "
                             "secpod recorded what it verified, or the record was removed",
                             hint=hint) from None
    try:
        body = json.loads(data)
        if (not isinstance(body, dict) or body.get("version") != VERSION
                or not isinstance(body.get("blobs"), dict)
                or not isinstance(body.get("tree"), dict)):
            raise ValueError("not a version 1 record")
    except ValueError as e:
        raise ContentChanged(f"the content record of image {ref} is damaged ({e})",
                             hint=hint) from e
    return body, "sha256:" + hashlib.sha256(data).hexdigest()


def check(unpacked: Path, manifest: Manifest, blob_path: Callable[[str], Path],
          ref: str) -> str:
    """Check the stored image against its record (see the module's checklist); return
    its content digest. Raises ContentChanged naming what changed."""
    body, digest = _load(unpacked, ref)
    hint = _HINT_RECORD.format(ref=ref)
    blobs = body["blobs"]
    # 1. The config blob, hashed again: it is small, and it says what runs.
    # 2. The layer blobs: the stat taken when they were hashed, else hashed again.
    for what, d in _names(manifest):
        path = blob_path(d)
        try:
            now = _blob_stat(path)
        except FileNotFoundError:
            raise ContentChanged(f"image {ref}: the {what} blob {d} is missing from the store",
                                 hint=hint) from None
        if what != "config" and blobs.get(d) == now:
            continue
        actual = _hash_file(path, d.partition(":")[0])
        if actual != d:
            raise ContentChanged(f"image {ref}: the {what} blob was changed after it was "
                                 f"verified: its content is {actual}, the manifest says {d}",
                                 hint=hint)
    if body.get("config") != manifest.config.digest:
        raise ContentChanged(f"image {ref}: the content record is not this image's",
                             hint=hint)
    # 3. The unpacked tree, walked once, against the tree record.
    tree = body["tree"]
    try:
        now_tree, dev = walk(unpacked / "rootfs")
    except _Foreign as e:
        raise ContentChanged(f"image {ref}: /{os.fsdecode(e.rel)} in the unpacked tree is on "
                             "another filesystem (something is mounted over the image)",
                             hint=hint) from None
    except OSError as e:
        raise ContentChanged(f"image {ref}: cannot walk the unpacked tree: {e}",
                             hint=hint) from e
    if dev != tree.get("dev"):
        raise ContentChanged(f"image {ref}: the unpacked tree is on another filesystem than "
                             "when it was verified (moved, restored, or mounted over)",
                             hint=hint)
    if hashlib.sha256(now_tree).hexdigest() != tree.get("sha256"):
        raise ContentChanged(f"image {ref}: the unpacked tree changed after it was verified: "
                             f"{_describe(unpacked, tree, now_tree)}", hint=hint)
    return digest


def _parse(tree: bytes) -> dict[bytes, bytes]:
    out: dict[bytes, bytes] = {}
    pos = 0
    while pos < len(tree):
        nul = tree.index(b"\0", pos)
        end = tree.index(b"\n", nul)
        out[tree[pos:nul]] = tree[nul + 1:end]
        pos = end + 1
    return out


def _kind(mode: int) -> str:
    from secpod.images._unpack import _kind_name

    return _kind_name(mode)


def _change(path: str, old: bytes, new: bytes) -> tuple[str, bool]:
    """(what changed, whether only a folder's size or ctime did)."""
    if b"unreadable" in (old, new):
        return f"{path} can no longer be listed, or can be again", False
    om, osz, _oc, oino = (int(x, 8) if i == 0 else int(x) for i, x in enumerate(old.split()))
    nm, nsz, _nc, nino = (int(x, 8) if i == 0 else int(x) for i, x in enumerate(new.split()))
    if stat.S_IFMT(om) != stat.S_IFMT(nm):
        return f"{path} was replaced: {_kind(om)} -> {_kind(nm)}", False
    if stat.S_IMODE(om) != stat.S_IMODE(nm):
        return (f"{path} mode changed: {stat.S_IMODE(om):04o} -> {stat.S_IMODE(nm):04o}",
                False)
    if oino != nino:
        return f"{path} was replaced by another {_kind(nm)}", False
    folder = stat.S_ISDIR(nm)
    if osz != nsz:
        return f"{path} was modified: size {osz} -> {nsz}", folder
    return f"{path} was modified (its ctime changed: written, chown, xattr or link)", folder


def _describe(unpacked: Path, tree: dict[str, Any], now_tree: bytes) -> str:
    """The changes between the recorded tree and ``now_tree``, the first few named."""
    try:
        with open(unpacked / TREE, "rb") as f:
            old_tree = f.read()
    except FileNotFoundError:
        return "(the tree record itself is missing)"
    if hashlib.sha256(old_tree).hexdigest() != tree.get("sha256"):
        return "(the tree record itself was changed, so the change cannot be named)"
    try:
        old, new = _parse(old_tree), _parse(now_tree)
    except ValueError:
        return "(the tree record is damaged)"
    changes: list[tuple[str, str, bool]] = []  # (path, what changed, a folder's ctime only)
    for rel in sorted(old.keys() | new.keys()):
        path = "/" if rel == b"." else "/" + os.fsdecode(rel).rstrip("/")
        if rel not in new:
            changes.append((path, f"{path} was removed", False))
        elif rel not in old:
            changes.append((path, f"{path} was added", False))
        elif old[rel] != new[rel]:
            msg, minor = _change(path, old[rel], new[rel])
            changes.append((path, msg, minor))
    # Adding or removing an entry also changes its folder: name the entry, not the folder.
    named = [msg for path, msg, minor in changes
             if not minor or not any(p != path and p.startswith(path.rstrip("/") + "/")
                                     for p, _m, _x in changes)]
    shown = named[:_SHOW]
    more = len(named) - len(shown)
    return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")


# --- deep verification ------------------------------------------------------------


def same_tree(a: Path, b: Path) -> list[str]:
    """What differs between the fresh unpack ``a`` and the stored tree ``b``: type,
    permission bits, size, mtime, link target and file content."""
    diffs: list[str] = []
    ta, tb = _listing(a), _listing(b)
    for rel in sorted(ta.keys() | tb.keys()):
        if rel.startswith(b"dev/") or rel in _RUNTIME:
            continue  # mounted over at run (see _RUNTIME)
        path = "/" + os.fsdecode(rel) if rel else "/"
        if rel not in tb:
            diffs.append(f"{path} was removed")
            continue
        if rel not in ta:
            diffs.append(f"{path} was added")
            continue
        sa, sb = ta[rel], tb[rel]
        if stat.S_IFMT(sa.st_mode) != stat.S_IFMT(sb.st_mode):
            diffs.append(f"{path} was replaced: {_kind(sa.st_mode)} -> {_kind(sb.st_mode)}")
        elif (sa.st_uid, sa.st_gid) != (sb.st_uid, sb.st_gid):
            diffs.append(f"{path} owner changed: {sa.st_uid}:{sa.st_gid} -> "
                         f"{sb.st_uid}:{sb.st_gid}")
        elif stat.S_IMODE(sa.st_mode) != stat.S_IMODE(sb.st_mode):
            diffs.append(f"{path} mode changed: {stat.S_IMODE(sa.st_mode):04o} -> "
                         f"{stat.S_IMODE(sb.st_mode):04o}")
        elif stat.S_ISLNK(sa.st_mode):
            if os.readlink(a / os.fsdecode(rel)) != os.readlink(b / os.fsdecode(rel)):
                diffs.append(f"{path}: the link target changed")
        elif sa.st_size != sb.st_size:
            diffs.append(f"{path} was modified: size {sa.st_size} -> {sb.st_size}")
        elif stat.S_ISREG(sa.st_mode) and not _same_bytes(a / os.fsdecode(rel),
                                                          b / os.fsdecode(rel)):
            diffs.append(f"{path} was modified (same size, other content)")
        elif not stat.S_ISDIR(sa.st_mode) and sa.st_mtime_ns != sb.st_mtime_ns:
            diffs.append(f"{path}: the modification time changed")
    return diffs


def _listing(root: Path) -> dict[bytes, os.stat_result]:
    out: dict[bytes, os.stat_result] = {b"": os.lstat(root)}
    top = os.fsencode(root)
    stack = [(top, b"")]
    while stack:
        path, rel = stack.pop()
        with os.scandir(path) as it:
            for e in it:
                st = e.stat(follow_symlinks=False)
                out[rel + e.name] = st
                if stat.S_ISDIR(st.st_mode):
                    stack.append((e.path, rel + e.name + b"/"))
    return out


def _same_bytes(a: Path, b: Path) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            ca, cb = fa.read(1 << 20), fb.read(1 << 20)
            if ca != cb:
                return False
            if not ca:
                return True


def deep(unpacked: Path, manifest: Manifest, diff_ids: list[str],
         blob_path: Callable[[str], Path], scratch: Path, ref: str,
         say: Callable[[str], None]) -> str:
    """Hash every blob again, unpack the layers afresh into ``scratch`` and compare the
    stored tree with it; when all is the same, record the image again and return its
    new content digest. Raises ContentChanged naming what differs, or what the
    unpack raises (HostileArchive, DigestMismatch, MalformedInput)."""
    from secpod.images import _mapped
    from secpod.images._unpack import Limits

    hint = ("remove the image (secpod image rm -f " + ref + ") and import or pull it again")
    names = _names(manifest)
    for what, d in names:
        try:
            actual = _hash_file(blob_path(d), d.partition(":")[0])
        except FileNotFoundError:
            raise ContentChanged(f"image {ref}: the {what} blob {d} is missing from the store",
                                 hint=hint) from None
        if actual != d:
            raise ContentChanged(f"image {ref}: the {what} blob was changed after it was "
                                 f"verified: its content is {actual}, the manifest says {d}",
                                 hint=hint)
        say(f"{what} {d[7:19]}: hashed, as the manifest says")
    fresh = scratch / "rootfs"
    # Unpacked and compared where the files keep their owners: files of subordinate ids
    # (a 0700 folder of _apt's) cannot be read from out here. Each layer alone, then the
    # image's rootfs linked from them, as an import does (secpod.images._farm).
    with _mapped.unpacker(Limits.from_env()) as unpacker:
        layers = []
        for i, (what, d) in enumerate(names[1:]):
            tree = scratch / "layers" / str(i)
            tree.mkdir(parents=True)
            meta = unpacker.apply_layer(blob_path(d), what=what, diff_id=diff_ids[i], root=tree)
            layers.append((what, tree, meta))
            say(f"{what}: unpacked again")
        fresh.mkdir()
        fresh.chmod(0o755)
        unpacker.farm(fresh, layers)
        diffs = unpacker.same_tree(fresh, unpacked / "rootfs")
    if diffs:
        shown = "; ".join(diffs[:_SHOW]) + (f"; and {len(diffs) - _SHOW} more"
                                            if len(diffs) > _SHOW else "")
        raise ContentChanged(f"image {ref}: the unpacked tree is not what its layers give: "
                             f"{shown}", hint=hint)
    say("the unpacked tree is what the layers give")
    return take(unpacked, manifest, blob_path, [d for _w, d in names])

