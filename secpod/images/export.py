"""``secpod save``: one stored image as a docker-archive or an oci-archive tar.

docker-archive is what ``docker save`` and ``podman save`` write by default:
``manifest.json`` (``[{Config, RepoTags, Layers}]``), the config as ``HEX.json`` and
each layer uncompressed as ``DIFFID-HEX.tar`` (the config's ``rootfs.diff_ids``).
oci-archive is an OCI image layout in a tar: ``oci-layout``, ``index.json`` naming the
image (``org.opencontainers.image.ref.name`` and ``io.containerd.image.name``) and the
stored blobs, unchanged, so that the manifest digest, and its signatures, still hold.

The archive is written to a temporary file beside the output and renamed into place
when complete: a failure (disk full, a blob gone) leaves no half archive under the
name. Every layer written is checked against its digest. Members are owned by 0:0 with
mtime 0, so the same image gives the same bytes.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from secpod.errors import DigestMismatch, HostError, MalformedInput, NotFound, UsageError

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import IO, Any

    from secpod.images._store import ImageRecord, Store

FORMATS = ("docker-archive", "oci-archive")
_CHUNK = 1 << 20


def save(store: Store, ref: str, output: Path | None, fmt: str = "docker-archive") -> str:
    """Write image ``ref`` to ``output`` (None: standard output) as ``fmt``; return the
    image's manifest digest. Raises NotFound, UsageError (a format or layer this cannot
    write), DigestMismatch (a stored blob that changed), OSError from the disk."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown archive format {fmt!r}",
                         hint="use --format docker-archive or --format oci-archive")
    from secpod import audit

    image = store.resolve(ref)
    details = {"format": fmt, "output": str(output) if output else "-"}
    try:
        try:
            _write(store, image, ref, output, fmt)
        except BrokenPipeError:
            raise  # the reader went away (`secpod save IMG | head`): exit 141
        except OSError as e:  # the disk, not the image: said as such
            raise HostError(f"cannot write {output or 'standard output'}: "
                            f"{e.strerror or e}",
                            hint="check the folder exists, is yours and has room") from e
    except Exception as e:
        from secpod.images._store import failure_reason

        audit.record("image.save", "error", image_ref=ref, image_digest=image.digest,
                     reason=failure_reason(e), details=details)
        raise
    audit.record("image.save", "ok", image_ref=ref, image_digest=image.digest,
                 details=details)
    return image.digest


def _write(store: Store, image: ImageRecord, ref: str, output: Path | None,
           fmt: str) -> None:
    write = _docker if fmt == "docker-archive" else _oci
    if output is None:
        import sys

        with tarfile.open(fileobj=sys.stdout.buffer, mode="w|",
                          format=tarfile.PAX_FORMAT) as tar:
            write(store, image, ref, tar)
        return
    folder = output.resolve().parent
    fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            with tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tar:
                write(store, image, ref, tar)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644 & ~_umask())
        os.replace(tmp, output)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _names(image: ImageRecord, ref: str) -> list[str]:
    """The names the archive carries: the one asked for if it is a name, else all."""
    from secpod.images import reference

    with contextlib.suppress(Exception):
        asked = str(reference.parse(ref))
        if asked in image.names:
            return [asked]
    return list(image.names)


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime, info.uid, info.gid = size, 0o644, 0, 0, 0
    info.uname = info.gname = ""
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_info(name, len(data)), io.BytesIO(data))


class _Checked(io.RawIOBase):
    """A blob read through its digest: the last read raises DigestMismatch when the
    bytes are not the ones the manifest names."""

    def __init__(self, f: IO[bytes], digest: str, what: str) -> None:
        self.f, self.digest, self.what = f, digest, what
        self.h = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self.f.read(len(b))
        if not data:
            if "sha256:" + self.h.hexdigest() != self.digest:
                raise DigestMismatch(f"{self.what} no longer matches its digest {self.digest}",
                                     hint="secpod image verify --deep tells what changed")
            return 0
        self.h.update(data)
        b[:len(data)] = data
        return len(data)


def _blob(store: Store, digest: str, what: str) -> Path:
    path = store.blob_path(digest)
    if not path.is_file():
        raise NotFound(f"{what} {digest} is missing from the store",
                       hint="pull or import the image again")
    return path


def _add_blob(tar: tarfile.TarFile, store: Store, name: str, digest: str, what: str) -> None:
    path = _blob(store, digest, what)
    with open(path, "rb") as f:
        checked = _Checked(f, digest, what)
        tar.addfile(_info(name, os.fstat(f.fileno()).st_size), checked)
        checked.read()  # tarfile reads the size it was told, not to the end: check here


def _layers(store: Store, image: ImageRecord) -> list[dict[str, Any]]:
    from secpod.images._manifest import parse_manifest

    manifest = parse_manifest(store.manifest_bytes(image.digest))
    return [dict(d.raw) for d in manifest.layers]


def _oci(store: Store, image: ImageRecord, ref: str, tar: tarfile.TarFile) -> None:
    from secpod.images._manifest import parse_manifest

    manifest_bytes = store.manifest_bytes(image.digest)
    manifest = parse_manifest(manifest_bytes)
    names: list[str | None] = [*_names(image, ref)] or [None]
    descriptors = []
    for name in names:
        entry: dict[str, Any] = {"mediaType": manifest.media_type, "digest": image.digest,
                                 "size": len(manifest_bytes)}
        if name:
            entry["annotations"] = {"io.containerd.image.name": name,
                                    "org.opencontainers.image.ref.name": name}
        descriptors.append(entry)
    for folder in ("blobs", "blobs/sha256"):  # explicit: unpackers create them as listed
        info = _info(folder, 0)
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
    _add_bytes(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": descriptors}
    _add_bytes(tar, "index.json", json.dumps(index, separators=(",", ":")).encode())
    hexpart = image.digest.partition(":")[2]
    _add_bytes(tar, f"blobs/sha256/{hexpart}", manifest_bytes)
    _add_blob(tar, store, f"blobs/sha256/{image.config_digest.partition(':')[2]}",
              image.config_digest, "the image config")
    for i, layer in enumerate(manifest.layers, 1):
        _add_blob(tar, store, f"blobs/sha256/{layer.digest.partition(':')[2]}", layer.digest,
                  f"layer {i}")


def _docker(store: Store, image: ImageRecord, ref: str, tar: tarfile.TarFile) -> None:
    diff_ids = list((image.config.get("rootfs") or {}).get("diff_ids") or [])
    layers = _layers(store, image)
    if len(diff_ids) != len(layers):
        raise MalformedInput(f"the image config lists {len(diff_ids)} layers, the manifest "
                             f"{len(layers)}", hint="use --format oci-archive")
    config_hex = image.config_digest.partition(":")[2]
    _add_blob(tar, store, f"{config_hex}.json", image.config_digest, "the image config")
    members = []
    for i, (layer, diff_id) in enumerate(zip(layers, diff_ids, strict=True), 1):
        member = f"{diff_id.partition(':')[2]}.tar"
        _add_layer_tar(tar, store, member, layer, diff_id, i)
        members.append(member)
    tags = [n for n in _names(image, ref) if "@" not in n]
    manifest = [{"Config": f"{config_hex}.json", "RepoTags": tags, "Layers": members}]
    _add_bytes(tar, "manifest.json", json.dumps(manifest, separators=(",", ":")).encode())
    repositories: dict[str, dict[str, str]] = {}
    for tag in tags:
        repo, _, version = tag.rpartition(":")
        repositories.setdefault(repo, {})[version] = members[-1].removesuffix(".tar")
    if repositories:
        _add_bytes(tar, "repositories", json.dumps(repositories).encode())


def _add_layer_tar(tar: tarfile.TarFile, store: Store, member: str, layer: dict[str, Any],
                   diff_id: str, i: int) -> None:
    """A layer uncompressed (docker-archive holds tars), checked against its digest and
    its diff_id. The uncompressed size is needed before the member is written, so the
    tar is spooled to a temporary file first."""
    digest, media = str(layer["digest"]), str(layer.get("mediaType", ""))
    path = _blob(store, digest, f"layer {i}")
    if "zstd" in media:
        raise UsageError(f"layer {i} is zstd-compressed: docker-archive holds plain tars "
                         "and secpod does not decompress zstd", hint="use --format oci-archive")
    with open(path, "rb") as raw, tempfile.TemporaryFile() as spool:
        checked = io.BufferedReader(_Checked(raw, digest, f"layer {i}"))
        gz = "gzip" in media or _is_gzip(path)
        source: Any = gzip.GzipFile(fileobj=checked) if gz else checked
        h = hashlib.sha256()
        while chunk := source.read(_CHUNK):
            h.update(chunk)
            spool.write(chunk)
        with contextlib.suppress(OSError):
            source.read()  # the compressed stream to its end: the digest check
        checked.read()
        if "sha256:" + h.hexdigest() != diff_id:
            raise DigestMismatch(f"layer {i} does not uncompress to its diff_id {diff_id}",
                                 hint="secpod image verify --deep tells what changed")
        size = spool.tell()
        spool.seek(0)
        info = _info(member, size)
        tar.addfile(info, spool)


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def copy_stdin_to(path: Path) -> None:
    """``load`` without ``-i``: the archive from standard input, to a private file."""
    import sys

    with open(path, "wb") as f:
        shutil.copyfileobj(sys.stdin.buffer, f, _CHUNK)
