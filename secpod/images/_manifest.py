"""OCI (and Docker schema 2) indexes, manifests and configs: validated at the boundary.

Everything here is a pure function over bytes: JSON from an archive or a
registry is untrusted until it passes these checks.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable

from secpod._record import record
from secpod.errors import MalformedInput

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"

INDEX_TYPES = {OCI_INDEX, DOCKER_LIST}
MANIFEST_TYPES = {OCI_MANIFEST, DOCKER_MANIFEST}
CONFIG_TYPES = {OCI_CONFIG, DOCKER_CONFIG}
LAYER_TYPES = {
    OCI_LAYER, OCI_LAYER + "+gzip", OCI_LAYER + "+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
}
REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"

MAX_MANIFEST = 4 << 20
MAX_CONFIG = 8 << 20
_DIGEST = re.compile(r"(sha256):([0-9a-f]{64})|(sha512):([0-9a-f]{128})")


def check_digest(value: object, what: str) -> str:
    """``value`` if it is a well-formed sha256/sha512 digest. Raises MalformedInput."""
    if not isinstance(value, str) or not _DIGEST.fullmatch(value):
        raise MalformedInput(f"{what}: invalid digest {str(value)[:80]!r}",
                             hint="digests are sha256:<64 hex> or sha512:<128 hex>")
    return value


@record(frozen=True)
class Descriptor:
    """A validated content descriptor."""

    media_type: str
    digest: str
    size: int
    raw: dict[str, Any]

    @property
    def annotations(self) -> dict[str, str]:
        a = self.raw.get("annotations")
        return {k: v for k, v in a.items() if isinstance(v, str)} if isinstance(a, dict) else {}

    @property
    def platform(self) -> dict[str, Any] | None:
        p = self.raw.get("platform")
        return p if isinstance(p, dict) else None


def descriptor(obj: object, what: str, *, default_type: str | None = None) -> Descriptor:
    """Validate one descriptor. Raises MalformedInput naming ``what``."""
    if not isinstance(obj, dict):
        raise MalformedInput(f"{what}: descriptor is not a JSON object")
    media_type = obj.get("mediaType", default_type)
    if not isinstance(media_type, str) or not media_type:
        raise MalformedInput(f"{what}: descriptor has no mediaType")
    digest = check_digest(obj.get("digest"), what)
    size = obj.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise MalformedInput(f"{what}: descriptor {digest} has no valid size")
    return Descriptor(media_type=media_type, digest=digest, size=size, raw=dict(obj))


def load_json(data: bytes, what: str) -> dict[str, Any]:
    """Parse a JSON object. Raises MalformedInput."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise MalformedInput(f"{what} is not valid JSON ({e})",
                             hint="the image is corrupt: get a fresh copy") from e
    if not isinstance(obj, dict):
        raise MalformedInput(f"{what} is not a JSON object",
                             hint="the image is corrupt: get a fresh copy")
    return obj


@record(frozen=True)
class Manifest:
    """An image manifest: one config, ordered layers."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


def parse_manifest(data: bytes, what: str = "manifest") -> Manifest:
    """Validate an image manifest (OCI or Docker schema 2). Raises MalformedInput."""
    if len(data) > MAX_MANIFEST:
        raise MalformedInput(f"{what} is larger than {MAX_MANIFEST} bytes")
    obj = load_json(data, what)
    if obj.get("schemaVersion") != 2:
        raise MalformedInput(f"{what}: schemaVersion is {obj.get('schemaVersion')!r}, not 2",
                             hint="only OCI and Docker schema 2 images are supported")
    media_type = obj.get("mediaType", OCI_MANIFEST)
    if media_type in INDEX_TYPES or "manifests" in obj:
        raise MalformedInput(f"{what} is an index, not an image manifest")
    if media_type not in MANIFEST_TYPES:
        raise MalformedInput(f"{what}: unsupported mediaType {media_type!r}")
    config = descriptor(obj.get("config"), f"{what} config")
    if config.media_type not in CONFIG_TYPES:
        raise MalformedInput(f"{what}: config type {config.media_type!r} is not a container "
                             "image config (an artifact, not an image?)")
    layers_raw = obj.get("layers")
    if not isinstance(layers_raw, list):
        raise MalformedInput(f"{what} has no layers list")
    layers = tuple(descriptor(d, f"{what} layer {i + 1}") for i, d in enumerate(layers_raw))
    for i, layer in enumerate(layers):
        if layer.media_type not in LAYER_TYPES:
            raise MalformedInput(f"{what} layer {i + 1}: unsupported mediaType "
                                 f"{layer.media_type!r}")
    return Manifest(media_type=media_type, config=config, layers=layers)


def parse_config(data: bytes, layer_count: int, what: str = "image config") -> dict[str, Any]:
    """Validate an image config against its manifest's layer count. Raises MalformedInput."""
    if len(data) > MAX_CONFIG:
        raise MalformedInput(f"{what} is larger than {MAX_CONFIG} bytes")
    obj = load_json(data, what)
    rootfs = obj.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list):
        raise MalformedInput(f"{what} has no rootfs.diff_ids")
    for d in diff_ids:
        check_digest(d, f"{what} diff_id")
    if len(diff_ids) != layer_count:
        raise MalformedInput(f"{what} lists {len(diff_ids)} diff_ids for {layer_count} layers")
    cfg = obj.get("config")
    if cfg is not None and not isinstance(cfg, dict):
        raise MalformedInput(f"{what}: config is not an object")
    return obj


def parse_index(data: bytes, what: str = "index") -> list[Descriptor]:
    """The manifests an index lists. Raises MalformedInput."""
    if len(data) > MAX_MANIFEST:
        raise MalformedInput(f"{what} is larger than {MAX_MANIFEST} bytes")
    obj = load_json(data, what)
    if obj.get("schemaVersion") != 2:
        raise MalformedInput(f"{what}: schemaVersion is {obj.get('schemaVersion')!r}, not 2")
    manifests = obj.get("manifests")
    if not isinstance(manifests, list):
        raise MalformedInput(f"{what} has no manifests list")
    return [descriptor(d, f"{what} entry {i + 1}") for i, d in enumerate(manifests)]


def host_platform() -> tuple[str, str]:
    machine = os.uname().machine
    arch = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386",
            "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}.get(machine, machine)
    return "linux", arch


def ref_names(d: Descriptor) -> list[str]:
    a = d.annotations
    return [n for n in (a.get(CONTAINERD_NAME), a.get(REF_NAME)) if n]


def select(entries: list[Descriptor], read: Callable[[Descriptor], bytes], *, want: list[str],
           what: str, depth: int = 0) -> tuple[Descriptor, list[str]]:
    """Pick one image manifest from an index: by ref name among ``want`` if given, else the
    only one; multi-platform indexes (nested or not) resolve to the host's platform.

    Returns the manifest's descriptor and the ref names annotated on the chosen
    top-level entry. ``read`` returns a nested index's verified bytes.
    Raises MalformedInput or NotFound.
    """
    from secpod.errors import NotFound

    if depth > 4:
        raise MalformedInput(f"{what}: indexes nested too deeply")
    candidates = [d for d in entries if d.media_type in INDEX_TYPES | MANIFEST_TYPES]
    if not candidates:
        raise MalformedInput(f"{what} lists no image manifests",
                             hint="the layout is empty or holds only non-image artifacts")
    if want:
        named = [d for d in candidates if any(n in want for n in ref_names(d))]
        if named:
            candidates = named
    os_, arch = host_platform()
    with_platform = [d for d in candidates if d.platform is not None]
    if with_platform:
        matching = [d for d in candidates if d.platform is None or (
            d.platform.get("os") == os_ and d.platform.get("architecture") == arch)]
        if not matching:
            found = sorted({f"{p.get('os')}/{p.get('architecture')}"
                            for d in with_platform if (p := d.platform)})
            raise NotFound(f"{what} has no image for {os_}/{arch} (it has {', '.join(found)})",
                           hint="import an image built for this machine")
        candidates = matching
    if len(candidates) > 1:
        names = sorted({n for d in candidates for n in ref_names(d)})
        raise MalformedInput(
            f"{what} holds {len(candidates)} images"
            + (f" ({', '.join(names)})" if names else ""),
            hint="choose one with --name REF (its ref name)" if names
            else "this layout is ambiguous: keep one image in it")
    chosen = candidates[0]
    names = ref_names(chosen)
    if chosen.media_type in INDEX_TYPES:
        nested = parse_index(read(chosen), f"nested index {chosen.digest}")
        manifest, inner = select(nested, read, want=[], what=f"nested index {chosen.digest}",
                                 depth=depth + 1)
        return manifest, names or inner
    return chosen, names
