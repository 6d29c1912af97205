"""Where an import reads from: an OCI layout folder, an oci-archive tar, a docker-archive.

Archives are read member by member straight from the tar (never extracted
to disk). Each format yields the same thing: the chosen manifest's bytes
(checked against the index's descriptor), a BlobSource for its blobs and the
names it carries.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from pathlib import Path
from typing import IO, Any, BinaryIO, Literal, Protocol

from secpod._record import field, record
from secpod.errors import DigestMismatch, Error, MalformedInput, NotFound
from secpod.images import reference
from secpod.images._manifest import (
    MAX_CONFIG,
    MAX_MANIFEST,
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
    Descriptor,
    descriptor,
    parse_config,
    parse_index,
    select,
)
from secpod.images._unpack import sniff_compression

MAX_MEMBERS = 100_000
_LAYOUT_HINT = "an image is an OCI layout folder, an oci-archive or a docker-archive tar " \
               "(use --rootfs for a plain root filesystem folder)"


class BlobSource(Protocol):
    """Something that yields a blob's bytes for a descriptor; the store verifies them."""

    def open_blob(self, descriptor: dict[str, Any]) -> BinaryIO:
        """An open stream of the blob. Raises NotFound or MalformedInput."""
        ...


class _Reader(io.RawIOBase):
    """A member stream whose read errors (truncated archive) become MalformedInput."""

    def __init__(self, inner: IO[bytes], what: str) -> None:
        self._inner = inner
        self._what = what

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        try:
            data = self._inner.read(len(b))
        except (OSError, EOFError, tarfile.TarError) as e:
            raise MalformedInput(f"cannot read {self._what}: {e}",
                                 hint="the archive is truncated or corrupt") from e
        b[:len(data)] = data
        return len(data)

    def close(self) -> None:
        self._inner.close()
        super().close()


class Tree:
    """Named files inside a folder or a tar archive."""

    def exists(self, name: str) -> bool:
        raise NotImplementedError

    def size(self, name: str) -> int:
        raise NotImplementedError

    def open(self, name: str) -> BinaryIO:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def read(self, name: str, limit: int) -> bytes:
        if not self.exists(name):
            raise MalformedInput(f"{name} is missing", hint=_LAYOUT_HINT)
        if self.size(name) > limit:
            raise MalformedInput(f"{name} is larger than {limit} bytes")
        with self.open(name) as f:
            return f.read(limit + 1)[:limit]


class DirTree(Tree):
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, name: str) -> Path:
        # Names come from the image's own manifest.json: keep them inside the folder.
        if name.startswith("/") or ".." in name.split("/"):
            raise MalformedInput(f"{name!r} points outside the image folder",
                                 hint="the image is corrupt or hostile")
        return self.root / name

    def exists(self, name: str) -> bool:
        return self._path(name).is_file()

    def size(self, name: str) -> int:
        return self._path(name).stat().st_size

    def open(self, name: str) -> BinaryIO:
        try:
            return open(self._path(name), "rb")  # noqa: SIM115 - the caller closes it
        except OSError as e:
            raise MalformedInput(f"cannot read {self._path(name)}: {e.strerror}") from e


def _norm(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name.lstrip("/")


class TarTree(Tree):
    def __init__(self, path: Path, mode: Literal["r:", "r:gz"]) -> None:
        self.path = path
        try:
            self._tar = tarfile.open(path, mode)  # noqa: SIM115 - closed by close()
            self._members: dict[str, tarfile.TarInfo] = {}
            for i, m in enumerate(self._tar):
                if i >= MAX_MEMBERS:
                    raise MalformedInput(f"{path} has more than {MAX_MEMBERS} members")
                if m.isfile() or m.issym() or m.islnk():
                    self._members[_norm(m.name)] = m
        except (tarfile.TarError, EOFError, OSError) as e:
            raise MalformedInput(f"{path}: not a readable tar archive ({e})",
                                 hint="the archive is truncated or corrupt") from e

    def exists(self, name: str) -> bool:
        return name in self._members

    def size(self, name: str) -> int:
        return self._members[name].size

    def open(self, name: str) -> BinaryIO:
        try:
            f = self._tar.extractfile(self._members[name])
        except (KeyError, tarfile.TarError, OSError) as e:
            raise MalformedInput(f"{self.path}: cannot read member {name}: {e}",
                                 hint="the archive is truncated or corrupt") from e
        if f is None:
            raise MalformedInput(f"{self.path}: member {name} is not a file")
        return io.BufferedReader(_Reader(f, f"{name} in {self.path}"), 1 << 20)

    def close(self) -> None:
        self._tar.close()


def _blob_name(digest: str) -> str:
    alg, _, hexpart = digest.partition(":")
    return f"blobs/{alg}/{hexpart}"


def read_verified(tree: Tree, d: Descriptor, what: str, limit: int = MAX_MANIFEST) -> bytes:
    """A small blob (index, manifest, config), checked against ``d``. Raises DigestMismatch."""
    name = _blob_name(d.digest)
    if not tree.exists(name):
        raise MalformedInput(f"{what} {d.digest} is missing (no {name})",
                             hint="the layout is incomplete: copy it again")
    if d.size > limit:
        raise MalformedInput(f"{what} {d.digest} is larger than {limit} bytes")
    data = tree.read(name, limit)
    if len(data) != d.size:
        raise DigestMismatch(f"{what} {d.digest}: {len(data)} bytes, its descriptor says {d.size}",
                             hint="the image is corrupt or was tampered with; nothing was imported")
    alg, _, want = d.digest.partition(":")
    got = hashlib.new(alg, data).hexdigest()
    if got != want:
        raise DigestMismatch(f"{what} {d.digest}: content is {alg}:{got}",
                             hint="the image is corrupt or was tampered with; nothing was imported")
    return data


class LayoutSource:
    """Blobs of an OCI layout (folder or oci-archive)."""

    def __init__(self, tree: Tree) -> None:
        self.tree = tree

    def open_blob(self, descriptor_: dict[str, Any]) -> BinaryIO:
        d = descriptor(descriptor_, "blob")
        name = _blob_name(d.digest)
        if not self.tree.exists(name):
            raise MalformedInput(f"blob {d.digest} is missing from the layout (no {name})",
                                 hint="the layout is incomplete: copy it again")
        return self.tree.open(name)


class ArchiveSource:
    """Blobs of a docker-archive, by the member names its manifest.json gives."""

    def __init__(self, tree: Tree, members: dict[str, str]) -> None:
        self.tree = tree
        self.members = members

    def open_blob(self, descriptor_: dict[str, Any]) -> BinaryIO:
        d = descriptor(descriptor_, "blob")
        name = self.members.get(d.digest)
        if name is None or not self.tree.exists(name):
            raise MalformedInput(f"blob {d.digest} is missing from the archive",
                                 hint="the archive is incomplete: save it again")
        return self.tree.open(name)


@record
class Loaded:
    """What a format yields: the manifest, its blobs, the names it carries."""

    format: str
    manifest_bytes: bytes
    source: LayoutSource | ArchiveSource
    names: list[str] = field(default_factory=list)

    def close(self) -> None:
        self.source.tree.close()


def _want(name: str | None) -> list[str]:
    if not name:
        return []
    ref = reference.parse(name)
    return [n for n in (name, str(ref), ref.familiar(), ref.tag) if n]


def _full_name(text: str) -> str | None:
    """A ref annotation that names a repository (not a bare tag), normalised."""
    if "/" not in text and ":" not in text:
        return None
    try:
        return str(reference.parse(text))
    except Error:
        return None


def load(path: Path, *, name: str | None = None) -> Loaded:
    """Detect the format of ``path`` and choose its image.

    Raises NotFound (no such path), MalformedInput (not an image, corrupt,
    ambiguous), DigestMismatch (index or manifest not matching its descriptor).
    """
    if not path.exists():
        raise NotFound(f"{path}: no such file or directory", hint=_LAYOUT_HINT)
    tree: Tree
    if path.is_dir():
        tree = DirTree(path)
        kind = "layout folder"
    elif path.is_file():
        with open(path, "rb") as f:
            head = f.read(512)
        mode: Literal["r:", "r:gz"]
        if head[:2] == b"\x1f\x8b":
            mode = "r:gz"
        else:
            try:
                sniff_compression(head)
            except MalformedInput:
                raise MalformedInput(f"{path} is not a tar archive", hint=_LAYOUT_HINT) from None
            if head[:4] == b"\x28\xb5\x2f\xfd":
                raise MalformedInput(f"{path}: zstd-compressed archives are not supported",
                                     hint="decompress it first (zstd -d)")
            mode = "r:"
        tree = TarTree(path, mode)
        kind = "archive"
    else:
        raise MalformedInput(f"{path} is neither a file nor a folder", hint=_LAYOUT_HINT)
    try:
        if tree.exists("index.json") or tree.exists("oci-layout"):
            return _load_layout(tree, name, "oci-layout" if kind == "layout folder"
                                else "oci-archive")
        if tree.exists("manifest.json"):
            return _load_docker(tree, name)
        raise MalformedInput(f"{path} is not an OCI image {kind}: no index.json or manifest.json",
                             hint=_LAYOUT_HINT)
    except BaseException:
        tree.close()
        raise


def _load_layout(tree: Tree, name: str | None, fmt: str) -> Loaded:
    if tree.exists("oci-layout"):
        marker = tree.read("oci-layout", 4096)
        try:
            version = json.loads(marker).get("imageLayoutVersion")
        except (ValueError, AttributeError):
            version = None
        if not isinstance(version, str) or not version.startswith("1."):
            raise MalformedInput("oci-layout: imageLayoutVersion is not 1.x",
                                 hint="this is not an OCI image layout secpod can read")
    if not tree.exists("index.json"):
        raise MalformedInput("not an OCI image layout: index.json is missing", hint=_LAYOUT_HINT)
    entries = parse_index(tree.read("index.json", MAX_MANIFEST), "index.json")
    if not entries:
        raise MalformedInput("index.json lists no manifests",
                             hint="the layout holds no image")
    chosen, refs = select(entries, lambda d: read_verified(tree, d, "index"),
                          want=_want(name), what="index.json")
    manifest_bytes = read_verified(tree, chosen, "manifest")
    names = [name] if name else [n for n in (_full_name(r) for r in refs) if n][:1]
    return Loaded(format=fmt, manifest_bytes=manifest_bytes, source=LayoutSource(tree),
                  names=names)


_HEX_NAME = re.compile(r"(?:.*/)?(?:blobs/sha256/)?([0-9a-f]{64})(?:\.json|\.tar|/layer\.tar)?")


def _load_docker(tree: Tree, name: str | None) -> Loaded:
    try:
        entries = json.loads(tree.read("manifest.json", MAX_MANIFEST))
    except ValueError as e:
        raise MalformedInput(f"manifest.json is not valid JSON ({e})",
                             hint="the archive is corrupt: save it again") from e
    if not isinstance(entries, list) or not entries or not all(
            isinstance(e, dict) and isinstance(e.get("Config"), str)
            and isinstance(e.get("Layers"), list)
            and all(isinstance(x, str) for x in e["Layers"])
            and isinstance(e.get("RepoTags") or [], list) for e in entries):
        raise MalformedInput("manifest.json is not a docker-archive manifest "
                             "(a list of {Config, RepoTags, Layers})",
                             hint="the archive is corrupt: save it again")
    want = _want(name)
    if len(entries) > 1:
        chosen = [e for e in entries if any(str(t) in want or _full_name(str(t)) in want
                                            for t in e.get("RepoTags") or [])]
        if len(chosen) != 1:
            tags = sorted(str(t) for e in entries for t in e.get("RepoTags") or [])
            raise MalformedInput(f"the archive holds {len(entries)} images ({', '.join(tags)})",
                                 hint="choose one with --name NAME:TAG")
        entry = chosen[0]
    else:
        entry = entries[0]
    config_name = _norm(entry["Config"])
    config_bytes = tree.read(config_name, MAX_CONFIG)
    config_digest = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
    m = _HEX_NAME.fullmatch(config_name)
    if m and f"sha256:{m.group(1)}" != config_digest:
        raise DigestMismatch(f"config {config_name}: content is {config_digest}",
                             hint="the archive is corrupt or was tampered with; nothing was "
                                  "imported")
    layer_names = [_norm(x) for x in entry["Layers"]]
    config = parse_config(config_bytes, len(layer_names))
    diff_ids = config["rootfs"]["diff_ids"]
    members = {config_digest: config_name}
    layers = []
    for i, lname in enumerate(layer_names):
        if not tree.exists(lname):
            raise MalformedInput(f"layer {i + 1} ({lname}) is missing from the archive",
                                 hint="the archive is incomplete: save it again")
        with tree.open(lname) as f:
            head = f.read(512)
        try:
            comp = sniff_compression(head)
        except MalformedInput as e:
            raise MalformedInput(f"layer {i + 1} ({lname}): {e.message}", hint=e.hint) from None
        blob = re.fullmatch(r"blobs/(sha256|sha512)/([0-9a-f]+)", lname)
        if blob:
            digest = f"{blob.group(1)}:{blob.group(2)}"
        elif comp == "tar":
            digest = diff_ids[i]  # verified while copying: uncompressed, so the same digest
        else:
            h = hashlib.sha256()
            with tree.open(lname) as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
            digest = "sha256:" + h.hexdigest()
        media = OCI_LAYER + {"tar": "", "gzip": "+gzip", "zstd": "+zstd"}[comp]
        layers.append({"mediaType": media, "digest": digest, "size": tree.size(lname)})
        members[digest] = lname
    manifest = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config_bytes)},
        "layers": layers,
    }
    manifest_bytes = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    if name:
        names = [name]
    else:
        names = [n for n in (_full_name(str(t)) for t in entry.get("RepoTags") or []) if n]
    return Loaded(format="docker-archive", manifest_bytes=manifest_bytes,
                  source=ArchiveSource(tree, members), names=names)
