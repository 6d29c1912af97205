"""Simple-signing payloads: the JSON document a signature actually signs.

Two types share one shape (containers/image ``docs/containers-signature.5.md``)::

    {"critical": {"identity": {"docker-reference": REF},
                  "image": {"docker-manifest-digest": DIGEST},
                  "type": TYPE},
     "optional": {"creator": ..., "timestamp": ...}}

``TYPE`` is ``cosign container image signature`` for sigstore signatures and
``atomic container signature`` for GPG simple signing. Parsing is strict as
containers/image's is: exactly these fields in ``critical``, unknown fields
only inside ``optional``.
"""

from __future__ import annotations

import hashlib
import json
import re

from secpod._record import record
from secpod.errors import SignatureRejected
from secpod.signing import _json

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

SIGSTORE_PAYLOAD_TYPE = "cosign container image signature"
GPG_PAYLOAD_TYPE = "atomic container signature"

_DIGEST_HEX = {"sha256": 64, "sha384": 96, "sha512": 128}
_DIGEST_RE = re.compile(r"([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)")


@record(frozen=True)
class SignedClaims:
    """What a verified payload claims: the image's identity and manifest digest."""

    docker_reference: str
    manifest_digest: str
    creator: str | None = None
    timestamp: int | None = None


def make_payload(docker_reference: str, manifest_digest: str, *, payload_type: str,
                 creator: str | None = None, timestamp: int | None = None) -> bytes:
    """The payload bytes as containers/image writes them (Go's sorted, compact JSON)."""
    if not docker_reference or not manifest_digest:
        raise ValueError("a payload needs a reference and a digest")
    optional: dict[str, Any] = {}
    if creator is not None:
        optional["creator"] = creator
    if timestamp is not None:
        optional["timestamp"] = timestamp
    doc = {
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": manifest_digest},
            "type": payload_type,
        },
        "optional": optional,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def parse_digest(value: str) -> tuple[str, str]:
    """Split and validate ``algo:hex`` as go-digest does. Raises ValueError."""
    m = _DIGEST_RE.fullmatch(value)
    if not m:
        raise ValueError(f"invalid digest {value!r}")
    algo, hexpart = m.group(1), m.group(2)
    if algo not in _DIGEST_HEX:
        raise ValueError(f"unsupported digest algorithm {algo!r}")
    if len(hexpart) != _DIGEST_HEX[algo] or not re.fullmatch(r"[0-9a-f]+", hexpart):
        raise ValueError(f"invalid {algo} digest {value!r}")
    return algo, hexpart


def parse_payload(data: bytes, *, payload_type: str) -> SignedClaims:
    """Strictly parse a payload that a valid signature covered.

    Raises SignatureRejected naming the field that is wrong.
    """
    try:
        doc = _json.loads(data, what="signature payload")
        return _claims(doc, payload_type)
    except _json.JSONShapeError as e:
        raise SignatureRejected(f"invalid signature payload: {e}") from e


def _claims(doc: Any, payload_type: str) -> SignedClaims:
    top = _json.expect_object(doc, "$")
    _json.expect_fields(top, "$", required={"critical", "optional"})
    creator: str | None = None
    timestamp: int | None = None
    optional = top["optional"]
    # cosign writes "optional": null when there are no annotations; containers/image
    # accepts that for sigstore payloads only.
    if not (optional is None and payload_type == SIGSTORE_PAYLOAD_TYPE):
        opt = _json.expect_object(optional, "$.optional")
        if "creator" in opt:
            creator = _json.expect_str(opt["creator"], "$.optional.creator")
        if "timestamp" in opt:
            ts = opt["timestamp"]
            if isinstance(ts, bool) or not isinstance(ts, int | float):
                raise _json.JSONShapeError("$.optional.timestamp", "expected a number")
            if isinstance(ts, float) and not ts.is_integer():
                raise _json.JSONShapeError("$.optional.timestamp", "is not an integer")
            timestamp = int(ts)
    critical = _json.expect_object(top["critical"], "$.critical")
    _json.expect_fields(critical, "$.critical", required={"type", "image", "identity"})
    kind = _json.expect_str(critical["type"], "$.critical.type")
    if kind != payload_type:
        raise _json.JSONShapeError("$.critical.type", f"unrecognized signature type {kind!r}")
    image = _json.expect_object(critical["image"], "$.critical.image")
    _json.expect_fields(image, "$.critical.image", required={"docker-manifest-digest"})
    digest = _json.expect_str(image["docker-manifest-digest"],
                              "$.critical.image.docker-manifest-digest")
    try:
        parse_digest(digest)
    except ValueError as e:
        raise _json.JSONShapeError("$.critical.image.docker-manifest-digest", str(e)) from e
    identity = _json.expect_object(critical["identity"], "$.critical.identity")
    _json.expect_fields(identity, "$.critical.identity", required={"docker-reference"})
    ref = _json.expect_str(identity["docker-reference"], "$.critical.identity.docker-reference")
    return SignedClaims(docker_reference=ref, manifest_digest=digest, creator=creator,
                        timestamp=timestamp)


def manifest_digest(manifest: bytes, algorithm: str = "sha256") -> str:
    """The digest of a manifest as containers/image computes it.

    Raises SignatureRejected for schema 1 signed manifests: their digest is over
    the payload inside a JWS, which secpod does not unwrap.
    """
    if b'"schemaVersion"' in manifest[:4096]:
        try:
            doc = json.loads(manifest)
        except ValueError:
            doc = None
        if isinstance(doc, dict) and doc.get("schemaVersion") == 1 and "signatures" in doc:
            raise SignatureRejected(
                "cannot compute the digest of a Docker schema 1 signed manifest",
                hint="convert the image to an OCI or Docker schema 2 manifest",
            )
    return f"{algorithm}:{hashlib.new(algorithm, manifest).hexdigest()}"


def check_manifest_digest(manifest: bytes | None, signed_digest: str) -> None:
    """Refuse unless ``manifest`` hashes to ``signed_digest`` (in the signed algorithm).

    Raises SignatureRejected (no manifest, schema 1 signed manifest, mismatch).
    """
    if manifest is None:
        raise SignatureRejected("the image has no manifest to compare the signed digest with")
    algo, _ = parse_digest(signed_digest)
    actual = manifest_digest(manifest, algo)
    if actual != signed_digest:
        raise SignatureRejected(
            f"signature for digest {signed_digest} does not match the manifest ({actual})",
            hint="the manifest was changed after signing, or the signature is for another image",
        )
