"""Write an OCI image layout from a root filesystem directory or tar.

Used by ``secpod image import --rootfs DIR|TAR`` (like ``docker import``) and by
the demo and the tests to build an image from Debian's busybox-static with
secpod's own code. From a folder the layer is a reproducible tar (gzip, or plain
for an import, which needs no compression: the blob stays in the user's store):
sorted entries, fixed mtimes, owner root. A tar (plain, gzip or zstd) is the layer
as it is, owners and all.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

from secpod.errors import MalformedInput
from secpod.images._manifest import OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, host_platform

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any, BinaryIO

_EPOCH = 0


class _Hashing:
    """A write-only stream that hashes what passes through to ``out``."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        return self.out.write(data)

    def flush(self) -> None:
        self.out.flush()


def _entries(rootfs: Path) -> Iterator[Path]:
    """Every path under ``rootfs``, sorted, never following a symlink."""
    for dirpath, dirnames, filenames in os.walk(rootfs, followlinks=False):
        dirnames.sort()
        here = Path(dirpath)
        for name in sorted(dirnames + filenames):
            yield here / name


class _HashingReader:
    """A file read through, hashed; ``seek(0)`` starts again."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.hash = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.hash.update(data)
        self.size += len(data)
        return data

    def seek(self, pos: int, whence: int = 0) -> int:
        if (pos, whence) != (0, 0):
            raise ValueError("only a seek to the start")
        self.hash, self.size = hashlib.sha256(), 0
        return self.raw.seek(0)

    def readable(self) -> bool:
        return True


def _tar_layer(tar: Path, blobs: Path) -> tuple[str, str, int, str]:
    """``tar`` (plain, gzip or zstd) as the layer blob in ``blobs``: hard-linked where it
    can be, else copied. Returns (digest, diff_id, size, media type). Raises
    MalformedInput for what is not a tar of those kinds, or corrupt compressed data."""
    import shutil

    from secpod.images._unpack import LayerStream, Limits, _Budget

    hint = "--rootfs takes a root filesystem folder or a tar of one (plain, gzip or zstd)"
    try:
        raw = open(tar, "rb")  # noqa: SIM115 - closed below
    except OSError as e:
        raise MalformedInput(f"cannot read {tar}: {e.strerror}", hint=hint) from e
    with raw:
        reader = _HashingReader(raw)
        try:
            stream = LayerStream(reader, str(tar), _Budget(Limits.from_env()))  # type: ignore[arg-type]
        except MalformedInput as e:
            raise MalformedInput(f"{tar} is not a tar archive ({e.message})", hint=hint) from None
        try:
            stream.drain()
        finally:
            stream.close()
        kind = stream.kind
        digest, size = reader.hash.hexdigest(), reader.size
    blobs.mkdir(parents=True, exist_ok=True)
    target = blobs / digest
    try:
        os.link(tar, target)
    except OSError:
        shutil.copyfile(tar, target)
    media = OCI_LAYER + {"tar": "", "gzip": "+gzip", "zstd": "+zstd"}[kind]
    return f"sha256:{digest}", stream.diff_id(), size, media


def _write_layer(rootfs: Path, blobs: Path, compress: bool = True) -> tuple[str, str, int]:
    """Stream a reproducible tar of ``rootfs`` into ``blobs`` (gzip with ``compress``);
    never held in memory.

    Returns (layer digest, diff_id, compressed size). Raises MalformedInput for an
    unreadable file.
    """
    import contextlib

    blobs.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".layer-", dir=blobs)
    try:
        with os.fdopen(fd, "wb") as raw:
            compressed = _Hashing(raw)
            with (gzip.GzipFile(fileobj=compressed, mode="wb", compresslevel=6, mtime=0)
                  if compress else contextlib.nullcontext(compressed)) as gz:
                plain = _Hashing(gz) if compress else compressed  # type: ignore[arg-type]
                with tarfile.open(fileobj=plain, mode="w|",  # type: ignore[call-overload]
                                  format=tarfile.PAX_FORMAT) as tar:
                    for p in _entries(rootfs):
                        rel = p.relative_to(rootfs).as_posix()
                        try:
                            info = tar.gettarinfo(str(p), arcname=rel)
                        except OSError as e:
                            raise MalformedInput(f"cannot read {p}: {e.strerror}") from e
                        if info is None:
                            continue  # sockets have no place in an image
                        info.uid = info.gid = 0
                        info.uname = info.gname = "root"
                        info.mtime = _EPOCH
                        if info.isreg():
                            try:
                                with open(p, "rb") as f:
                                    tar.addfile(info, f)
                            except OSError as e:
                                raise MalformedInput(f"cannot read {p}: {e.strerror}") from e
                        else:
                            tar.addfile(info)
        digest = compressed.hash.hexdigest()
        os.replace(tmp, blobs / digest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return f"sha256:{digest}", "sha256:" + plain.hash.hexdigest(), compressed.size


def _blob(layout: Path, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    target = layout / "blobs" / "sha256" / digest
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return f"sha256:{digest}"


def write_layout(
    rootfs: Path,
    layout: Path,
    *,
    tag: str = "latest",
    cmd: list[str] | None = None,
    entrypoint: list[str] | None = None,
    env: list[str] | None = None,
    workdir: str = "/",
    user: str = "",
    arch: str | None = None,
    exposed_ports: list[str] | None = None,
    compress: bool = True,
) -> str:
    """Write ``layout`` (an OCI image layout) holding one image of ``rootfs``, a folder
    or a tar of one (plain, gzip or zstd, used as the layer as it is)
    (``exposed_ports``: the config's ExposedPorts, e.g. ``["80/tcp"]``; ``compress``:
    a folder's layer is gzip, else a plain tar).

    Returns the manifest digest. The folder must not exist or be empty. The
    layer is streamed to disk, so a large root filesystem costs no memory.
    Raises MalformedInput for a file that cannot be read, or not a tar.
    """
    layout.mkdir(parents=True, exist_ok=True)
    blobs = layout / "blobs" / "sha256"
    if rootfs.is_dir():
        layer_digest, diff_id, layer_size = _write_layer(rootfs, blobs, compress)
        media = OCI_LAYER + ("+gzip" if compress else "")
    else:
        layer_digest, diff_id, layer_size, media = _tar_layer(rootfs, blobs)
    config: dict[str, Any] = {
        "architecture": arch or host_platform()[1],
        "os": "linux",
        "config": {
            "Env": env or ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": cmd if cmd is not None else ["/bin/sh"],
            "WorkingDir": workdir,
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "secpod image build from a root filesystem"}],
    }
    if entrypoint:
        config["config"]["Entrypoint"] = entrypoint
    if user:
        config["config"]["User"] = user
    if exposed_ports:
        config["config"]["ExposedPorts"] = {p: {} for p in exposed_ports}
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_digest = _blob(layout, config_bytes)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config_bytes)},
        "layers": [{"mediaType": media, "digest": layer_digest, "size": layer_size}],
    }
    manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
    manifest_digest = _blob(layout, manifest_bytes)
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{
            "mediaType": OCI_MANIFEST,
            "digest": manifest_digest,
            "size": len(manifest_bytes),
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }],
    }
    (layout / "index.json").write_text(json.dumps(index, sort_keys=True))
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return manifest_digest


def busybox_rootfs(target: Path, busybox: Path = Path("/bin/busybox")) -> Path:
    """Make a minimal root filesystem from a static busybox: applet links, /etc files."""
    if not busybox.exists():
        from secpod.errors import HostError

        raise HostError(f"{busybox} not found", hint="apt-get install busybox-static")
    (target / "bin").mkdir(parents=True, exist_ok=True)
    dest = target / "bin" / "busybox"
    dest.write_bytes(busybox.read_bytes())
    dest.chmod(0o755)
    import subprocess

    applets = subprocess.run([str(dest), "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    for applet in applets:
        link = target / "bin" / applet
        if applet != "busybox" and not link.exists():
            link.symlink_to("busybox")
    for d in ("etc", "tmp", "root", "home", "var", "usr", "proc", "sys", "dev", "run"):
        (target / d).mkdir(exist_ok=True)
    (target / "tmp").chmod(0o1777)
    (target / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
        "app:x:1000:1000:app:/home/app:/bin/sh\n")
    (target / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\napp:x:1000:\n")
    return target
