"""Signatures in registries, as cosign and containers/image lay them out.

**Tag scheme** (cosign 1 and 2, containers/image): the signatures of manifest
``sha256:<hex>`` are the layers of an OCI manifest tagged ``sha256-<hex>.sig``
in the same repository. Each layer's blob is a simple-signing payload, its
media type ``application/vnd.dev.cosign.simplesigning.v1+json``, its
annotations the signature (``dev.cosignproject.cosign/signature``) and
optionally ``dev.sigstore.cosign/certificate``, ``/chain`` and ``/bundle``.
A layer converts losslessly to and from the ``\\x00sigstore-json\\n``
attachment secpod.signing stores (containers/image's
``SigstoreFromComponents``: MIME type = media type, payload = blob,
annotations = layer annotations).

**Referrers** (OCI 1.1): cosign 3 attaches a Sigstore bundle (v0.3) as a
manifest whose ``subject`` is the image, found by the referrers API or the
fallback tag ``sha256-<hex>``. cosign 2's OCI 1.1 mode attaches the same
simple-signing layers there; those convert as above.
"""

from __future__ import annotations

import json

from secpod._record import record
from secpod.errors import MalformedInput
from secpod.images._manifest import OCI_CONFIG, OCI_MANIFEST, Descriptor, descriptor, load_json

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

SIGNATURE_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
BUNDLE_MEDIA_TYPES = (
    "application/vnd.dev.sigstore.bundle.v0.3+json",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
)
MAX_LAYERS = 1000


def sig_tag(manifest_digest: str) -> str:
    """``sha256:<hex>`` -> ``sha256-<hex>.sig``."""
    return manifest_digest.replace(":", "-", 1) + ".sig"


def is_sigstore_artifact(artifact_type: str) -> bool:
    """Referrer artifact types worth reading, as containers/image filters them."""
    return artifact_type == "" or artifact_type.startswith(
        ("application/vnd.dev.cosign.", "application/vnd.dev.sigstore."))


@record(frozen=True)
class SigLayer:
    """One ``.sig`` manifest layer: media type, payload blob, annotations."""

    media_type: str
    payload: bytes
    annotations: dict[str, str]


def to_attachment(layer: SigLayer) -> bytes:
    """The ``\\x00sigstore-json\\n`` bytes secpod.signing stores for ``layer``."""
    from secpod.signing import SigstoreAttachment
    from secpod.signing.sigstore import serialize_attachment

    return serialize_attachment(SigstoreAttachment(
        mime_type=layer.media_type, payload=layer.payload, annotations=dict(layer.annotations)))


def from_attachment(blob: bytes) -> SigLayer | None:
    """The ``.sig`` layer of a stored signature; None for a GPG signature (not a sigstore
    attachment), which registries' tag scheme cannot carry. Raises SignatureRejected
    for a malformed attachment."""
    from secpod.signing import parse_attachment
    from secpod.signing.store import is_sigstore_blob

    if not is_sigstore_blob(blob):
        return None
    att = parse_attachment(blob)
    return SigLayer(att.mime_type, att.payload, dict(att.annotations))


@record(frozen=True)
class ArtifactManifest:
    """An OCI manifest read as an artifact: config, layers, artifactType, subject."""

    config: Descriptor
    layers: tuple[Descriptor, ...]
    artifact_type: str
    subject: str | None
    raw: dict[str, Any]


def parse_artifact(data: bytes, what: str) -> ArtifactManifest:
    """Validate an OCI manifest without requiring an image config. Raises MalformedInput."""
    doc = load_json(data, what)
    if doc.get("schemaVersion") != 2:
        raise MalformedInput(f"{what}: schemaVersion is not 2")
    media_type = doc.get("mediaType", OCI_MANIFEST)
    if media_type != OCI_MANIFEST:
        raise MalformedInput(f"{what}: media type {media_type!r} is not an OCI manifest")
    config = descriptor(doc.get("config"), f"{what} config")
    layers_raw = doc.get("layers")
    if not isinstance(layers_raw, list):
        raise MalformedInput(f"{what} has no layers list")
    if len(layers_raw) > MAX_LAYERS:
        raise MalformedInput(f"{what} has more than {MAX_LAYERS} layers")
    layers = tuple(descriptor(d, f"{what} layer {i + 1}") for i, d in enumerate(layers_raw))
    artifact_type = doc.get("artifactType")
    if not isinstance(artifact_type, str):
        artifact_type = config.media_type if config.media_type != OCI_CONFIG else ""
    subject = doc.get("subject")
    subject_digest = subject.get("digest") if isinstance(subject, dict) else None
    return ArtifactManifest(config=config, layers=layers, artifact_type=artifact_type,
                            subject=subject_digest if isinstance(subject_digest, str) else None,
                            raw=doc)


def _compact(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def sig_config(diff_ids: list[str]) -> bytes:
    """The config of a ``.sig`` manifest, as containers/image writes it (mostly empty)."""
    return _compact({"architecture": "", "os": "", "config": {},
                     "rootfs": {"type": "layers", "diff_ids": diff_ids}})


def sig_manifest(config: bytes, layers: list[dict[str, Any]]) -> bytes:
    """A ``.sig`` OCI manifest over ``config`` and layer descriptors."""
    import hashlib

    return _compact({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": "sha256:" + hashlib.sha256(
            config).hexdigest(), "size": len(config)},
        "layers": layers,
    })


def layer_descriptor(layer: SigLayer) -> dict[str, Any]:
    import hashlib

    d: dict[str, Any] = {"mediaType": layer.media_type,
                         "digest": "sha256:" + hashlib.sha256(layer.payload).hexdigest(),
                         "size": len(layer.payload)}
    if layer.annotations:
        d["annotations"] = dict(sorted(layer.annotations.items()))
    return d


def same_layer(d: Descriptor, layer: SigLayer) -> bool:
    """Whether a manifest layer already carries ``layer`` (containers/image's test)."""
    want = layer_descriptor(layer)
    return (d.media_type == layer.media_type and d.size == want["size"]
            and d.digest == want["digest"] and d.annotations == layer.annotations)


@record(frozen=True)
class BundleInfo:
    """What a Sigstore bundle attached as a referrer holds (``pull`` stores the bundle)."""

    digest: str
    media_type: str
    content: str
    payload_type: str | None
    where: str

    def as_dict(self) -> dict[str, Any]:
        return {"digest": self.digest, "media_type": self.media_type, "content": self.content,
                "payload_type": self.payload_type, "found_in": self.where}


def describe_bundle(data: bytes, d: Descriptor, where: str) -> BundleInfo:
    """Classify a Sigstore bundle by its content. Raises MalformedInput."""
    doc = load_json(data, f"Sigstore bundle {d.digest}")
    media_type = doc.get("mediaType")
    if not isinstance(media_type, str) or "sigstore.bundle" not in media_type:
        raise MalformedInput(f"Sigstore bundle {d.digest} has no bundle mediaType")
    payload_type = None
    if isinstance(doc.get("dsseEnvelope"), dict):
        content = "dsse-envelope"
        pt = doc["dsseEnvelope"].get("payloadType")
        payload_type = pt if isinstance(pt, str) else None
    elif isinstance(doc.get("messageSignature"), dict):
        content = "message-signature"
    else:
        content = "unknown"
    return BundleInfo(digest=d.digest, media_type=media_type, content=content,
                      payload_type=payload_type, where=where)


EMPTY_CONFIG = b"{}"
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
BUNDLE_ARTIFACT_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"


def bundle_artifact(bundle: bytes, subject: dict[str, Any], annotations: dict[str, str]
                    ) -> bytes:
    """The OCI 1.1 artifact manifest cosign 3 pushes for an image's bundle: the empty
    config, one layer (the bundle), ``artifactType`` and ``subject`` (the image's
    descriptor)."""
    import hashlib

    return _compact({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": BUNDLE_ARTIFACT_TYPE,
        "config": {"mediaType": EMPTY_MEDIA_TYPE,
                   "digest": "sha256:" + hashlib.sha256(EMPTY_CONFIG).hexdigest(),
                   "size": len(EMPTY_CONFIG)},
        "layers": [{"mediaType": BUNDLE_ARTIFACT_TYPE,
                    "digest": "sha256:" + hashlib.sha256(bundle).hexdigest(),
                    "size": len(bundle)}],
        "subject": subject,
        "annotations": dict(sorted(annotations.items())),
    })


def referrers_index(existing: bytes | None, entries: list[dict[str, Any]], what: str) -> bytes:
    """The ``sha256-<hex>`` fallback index (distribution spec, "referrers tag schema"):
    the entries it holds, then the new ones it lacks. Raises MalformedInput when the
    existing index is not an index."""
    kept: list[dict[str, Any]] = []
    if existing is not None:
        doc = load_json(existing, what)
        manifests = doc.get("manifests")
        if not isinstance(manifests, list):
            raise MalformedInput(f"{what} has no manifests list",
                                 hint="delete the tag in the registry and push again")
        kept = [m for m in manifests if isinstance(m, dict)]
    have = {m.get("digest") for m in kept}
    kept += [e for e in entries if e["digest"] not in have]
    return _compact({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                     "manifests": kept})
