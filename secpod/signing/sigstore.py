"""Sigstore (cosign) signatures: the attachment format and its verification.

An attachment is what containers/image keeps in a ``dir:`` layout's
``signature-N`` file, and what a cosign ``.sig`` manifest layer carries::

    \\x00sigstore-json\\n{"mimeType": ..., "payload": B64, "annotations": {...}}

Verification is pure: bytes and a trust root in, claims or an exception out.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from secpod._lazy import reexports
from secpod._record import field, record
from secpod.errors import SignatureRejected, VerificationError
from secpod.images.reference import Reference
from secpod.signing import _json, keys
from secpod.signing.identity import IdentityMatcher
from secpod.signing.payload import (
    SIGSTORE_PAYLOAD_TYPE,
    SignedClaims,
    check_manifest_digest,
    make_payload,
    parse_payload,
)
from secpod.signing.store import SIGSTORE_PREFIX, is_sigstore_blob

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from secpod.signing._certroots import FulcioRoot as FulcioRoot
    from secpod.signing._certroots import PKIRoot as PKIRoot

# Certificates (cryptography.x509, a third of this package's import time) and the
# Fulcio and PKI roots live in _certroots, loaded only for such roots: a key-based
# check never touches a certificate.
_ELSEWHERE = ("FulcioRoot", "PKIRoot")


__getattr__ = reexports(__name__, dict.fromkeys(_ELSEWHERE, "secpod.signing._certroots"))
SIGNATURE_MIME_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
ANNOTATION_SIGNATURE = "dev.cosignproject.cosign/signature"
ANNOTATION_CERTIFICATE = "dev.sigstore.cosign/certificate"
ANNOTATION_CHAIN = "dev.sigstore.cosign/chain"
ANNOTATION_BUNDLE = "dev.sigstore.cosign/bundle"

# eq=False: instances are never compared; spares the generated __eq__ and
# __hash__ that every start-up would compile.
@record(frozen=True, eq=False)
class SigstoreAttachment:
    """One sigstore attachment: untrusted until verified."""

    mime_type: str
    payload: bytes
    annotations: Mapping[str, str] = field(default_factory=dict)


def parse_attachment(blob: bytes) -> SigstoreAttachment:
    """Parse a ``\\x00sigstore-json\\n`` blob. Raises SignatureRejected if malformed."""
    if not is_sigstore_blob(blob):
        raise SignatureRejected("not a sigstore attachment")
    try:
        doc = _json.expect_object(_json.loads(blob[len(SIGSTORE_PREFIX):],
                                              what="sigstore attachment"), "$")
        # containers/image reads these three and ignores anything else.
        mime = _json.expect_str(doc.get("mimeType", ""), "$.mimeType")
        raw = _json.expect_str(doc.get("payload", ""), "$.payload")
        annotations = doc.get("annotations") or {}
        _json.expect_object(annotations, "$.annotations")
        for k, v in annotations.items():
            _json.expect_str(v, _json.child("$.annotations", k))
    except _json.JSONShapeError as e:
        raise SignatureRejected(f"malformed sigstore attachment: {e}") from e
    try:
        payload = base64.b64decode(raw, validate=True)
    except binascii.Error as e:
        raise SignatureRejected("malformed sigstore attachment: $.payload is not base64") from e
    return SigstoreAttachment(mime_type=mime, payload=payload, annotations=dict(annotations))


def _go_json(value: object) -> str:
    # Go's encoding/json escapes these even inside strings; matching it keeps our
    # files byte-identical to the ones containers/image writes.
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                    ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


def serialize_attachment(att: SigstoreAttachment) -> bytes:
    """The ``dir:`` / lookaside byte form, as containers/image marshals it."""
    body = ('{"mimeType":' + _go_json(att.mime_type)
            + ',"payload":' + _go_json(base64.b64encode(att.payload).decode())
            + ',"annotations":' + _go_json(dict(sorted(att.annotations.items()))) + "}")
    return SIGSTORE_PREFIX + body.encode()


def make_signature(private_key: keys.PrivateKey, docker_reference: str, manifest_digest: str, *,
                   creator: str | None = None, timestamp: int | None = None) -> bytes:
    """Sign ``manifest_digest`` as ``docker_reference``; return the attachment blob."""
    payload = make_payload(docker_reference, manifest_digest, payload_type=SIGSTORE_PAYLOAD_TYPE,
                           creator=creator, timestamp=timestamp)
    sig = keys.sign(private_key, payload)
    return serialize_attachment(SigstoreAttachment(
        mime_type=SIGNATURE_MIME_TYPE, payload=payload,
        annotations={ANNOTATION_SIGNATURE: base64.b64encode(sig).decode()}))


# eq=False: instances are never compared; spares the generated __eq__ and
# __hash__ that every start-up would compile.
@record(frozen=True, eq=False)
class SigstoreTrustRoot:
    """Exactly one of public keys, Fulcio or PKI; Rekor keys optional (required for Fulcio)."""

    public_keys: tuple[keys.PublicKey, ...] = ()
    fulcio: FulcioRoot | None = None
    pki: PKIRoot | None = None
    rekor_keys: tuple[keys.PublicKey, ...] = ()


def verify_rekor_set(rekor_keys: Sequence[keys.PublicKey], set_bytes: bytes,
                     key_or_cert_pem: bytes, b64_signature: str, payload: bytes) -> int:
    """Check a Rekor Signed Entry Timestamp bundle; return its integrated time (Unix seconds).

    Raises SignatureRejected for each way the SET can fail to vouch for this signature,
    VerificationError when a Rekor key cannot verify at all.
    """
    try:
        doc = _json.expect_object(_json.loads(set_bytes, what="Rekor SET"), "$")
        _json.expect_fields(doc, "$", required={"SignedEntryTimestamp", "Payload"})
        set_sig = base64.b64decode(
            _json.expect_str(doc["SignedEntryTimestamp"], "$.SignedEntryTimestamp"),
            validate=True)
        body_obj = _json.expect_object(doc["Payload"], "$.Payload")
        canonical = _json.canonical(body_obj)
    except (_json.JSONShapeError, binascii.Error, ValueError) as e:
        raise SignatureRejected(f"invalid Rekor SET: {e}") from e
    for rk in rekor_keys:
        if keys.check_key_signature(rk, set_sig, canonical):
            break
    else:
        raise SignatureRejected("cryptographic signature verification of the Rekor SET failed",
                                hint="the SET was not made by the Rekor log the policy trusts")
    try:
        _json.expect_fields(body_obj, "$.Payload",
                            required={"body", "integratedTime", "logIndex", "logID"})
        integrated = body_obj["integratedTime"]
        if not isinstance(integrated, int) or isinstance(integrated, bool):
            raise _json.JSONShapeError("$.Payload.integratedTime", "expected an integer")
        body = _json.expect_b64(body_obj["body"], "$.Payload.body")
        entry = _json.expect_object(_json.loads(body, what="Rekor entry"), "$")
        if entry.get("kind") != "hashedrekord" or entry.get("apiVersion") != "0.0.1":
            raise _json.JSONShapeError("$", f"unsupported Rekor entry kind "
                                       f"{entry.get('kind')!r} {entry.get('apiVersion')!r}")
        spec = _json.expect_object(entry.get("spec"), "$.spec")
        sig = _json.expect_object(spec.get("signature"), "$.spec.signature")
        content = _json.expect_b64(sig.get("content"), "$.spec.signature.content")
        pk = _json.expect_object(sig.get("publicKey"), "$.spec.signature.publicKey")
        pk_pem = _json.expect_b64(pk.get("content"), "$.spec.signature.publicKey.content")
        data = _json.expect_object(spec.get("data"), "$.spec.data")
        h = _json.expect_object(data.get("hash"), "$.spec.data.hash")
        algo = _json.expect_str(h.get("algorithm"), "$.spec.data.hash.algorithm")
        value = _json.expect_str(h.get("value"), "$.spec.data.hash.value")
    except (_json.JSONShapeError, binascii.Error) as e:
        raise SignatureRejected(f"invalid Rekor SET payload: {e}") from e
    try:
        unverified_sig = base64.b64decode(b64_signature)
    except binascii.Error as e:
        raise SignatureRejected("the signature annotation is not base64") from e
    if content != unverified_sig:
        raise SignatureRejected("the signature in the Rekor SET does not match the signature")
    if _pem_der(pk_pem) is None or _pem_der(pk_pem) != _pem_der(key_or_cert_pem):
        raise SignatureRejected("the public key or certificate in the Rekor SET does not match")
    if algo != "sha256":
        raise SignatureRejected(f"unexpected payload hash algorithm {algo!r} in the Rekor SET")
    if value != hashlib.sha256(payload).hexdigest():
        raise SignatureRejected("the payload hash in the Rekor SET does not match the payload")
    return integrated


def _pem_der(pem: bytes) -> bytes | None:
    """The DER of the single PEM block in ``pem`` (the type and headers are not compared)."""
    try:
        text = pem.decode("ascii")
    except UnicodeDecodeError:
        return None
    lines = [ln.strip() for ln in text.strip().splitlines()]
    if len(lines) < 2 or not lines[0].startswith("-----BEGIN ") or not lines[-1].startswith(
            "-----END "):
        return None
    try:
        return base64.b64decode("".join(lines[1:-1]), validate=True)
    except binascii.Error:
        return None


def verify_attachment(att: SigstoreAttachment, root: SigstoreTrustRoot, *,
                      manifest: bytes | None, intended: Reference | None,
                      identity: IdentityMatcher, now: datetime | None = None) -> SignedClaims:
    """Verify one sigstore attachment for an image; return what it validly claims.

    Raises SignatureRejected (the signature is not acceptable; the message names
    the failing step) or VerificationError (the trust root is inconsistent).
    """
    # Checklist, in containers/image's order (policy_eval_sigstore.go):
    #  1. the MIME type is the simple-signing payload type
    #  2. the signature annotation is present
    #  3. with Rekor keys: the SET vouches for this signature, key/certificate and payload
    #  4. fulcio/pki: the certificate chains to the policy's CA and names the required subject
    #     (fulcio at the SET's integrated time, pki now)
    #  5. the signature over the payload verifies with one of the keys
    #  6. the payload parses strictly and is a cosign container image signature
    #  7. the signed manifest digest matches the image's manifest
    #  8. the signed identity is accepted by signedIdentity
    now = now or datetime.now(UTC)
    sources = sum(1 for s in (root.public_keys, root.fulcio, root.pki) if s)
    if sources != 1:
        raise VerificationError("internal inconsistency: the trust root must have exactly one "
                                "of public keys, fulcio or pki")

    # 1
    if att.mime_type != SIGNATURE_MIME_TYPE:
        raise SignatureRejected(f"unexpected MIME type for a sigstore signature: "
                                f"{att.mime_type!r}")
    # 2
    b64_sig = att.annotations.get(ANNOTATION_SIGNATURE)
    if b64_sig is None:
        raise SignatureRejected(f"missing {ANNOTATION_SIGNATURE} annotation")

    candidates: list[keys.PublicKey]
    if root.public_keys:
        # 3 (keys): the SET names one key; keep the one it vouches for.
        if root.rekor_keys:
            set_bytes = att.annotations.get(ANNOTATION_BUNDLE)
            if set_bytes is None:
                raise SignatureRejected(f"missing {ANNOTATION_BUNDLE} annotation")
            failures: list[str] = []
            candidates = []
            for key in root.public_keys:
                try:
                    verify_rekor_set(root.rekor_keys, set_bytes.encode(),
                                     keys.public_key_pem(key), b64_sig, att.payload)
                except SignatureRejected as e:
                    failures.append(e.message)
                    continue
                candidates.append(key)
                break
            if not candidates:
                raise SignatureRejected("no public key verified against the Rekor SET: "
                                        + ", ".join(dict.fromkeys(failures)))
        else:
            candidates = list(root.public_keys)
    elif root.fulcio is not None:
        if not root.rekor_keys:
            raise VerificationError("internal inconsistency: fulcio without Rekor keys")
        set_bytes = att.annotations.get(ANNOTATION_BUNDLE)
        if set_bytes is None:
            raise SignatureRejected(f"missing {ANNOTATION_BUNDLE} annotation")
        cert_pem = att.annotations.get(ANNOTATION_CERTIFICATE)
        if cert_pem is None:
            raise SignatureRejected(f"missing {ANNOTATION_CERTIFICATE} annotation")
        # 3 (fulcio)
        integrated = verify_rekor_set(root.rekor_keys, set_bytes.encode(), cert_pem.encode(),
                                      b64_sig, att.payload)
        # 4 (fulcio): the certificate lives minutes; the log proves when it signed.
        from secpod.signing import _certroots

        at = datetime.fromtimestamp(integrated, UTC)
        candidates = [_certroots.fulcio_key(root.fulcio, cert_pem.encode(),
                                            _certroots.chain_intermediates(att.annotations),
                                            at)]
    else:
        assert root.pki is not None
        cert_pem = att.annotations.get(ANNOTATION_CERTIFICATE)
        if cert_pem is None:
            raise SignatureRejected(f"missing {ANNOTATION_CERTIFICATE} annotation")
        # 4 (pki)
        from secpod.signing import _certroots

        candidates = [_certroots.pki_key(root.pki, cert_pem.encode(),
                                         _certroots.chain_intermediates(att.annotations), now)]

    # 5
    try:
        raw_sig = base64.b64decode(b64_sig)
    except binascii.Error as e:
        raise SignatureRejected(f"the signature annotation is not base64: {e}") from e
    failures = []
    for key in candidates:
        if keys.check_key_signature(key, raw_sig, att.payload):
            break
        failures.append(f"not signed by {_key_id(key)}")
    else:
        raise SignatureRejected("cryptographic signature verification failed: "
                                + ", ".join(failures),
                                hint="the signature was made by a key the policy does not trust, "
                                     "or it was damaged")
    # 6
    claims = parse_payload(att.payload, payload_type=SIGSTORE_PAYLOAD_TYPE)
    # 7
    check_manifest_digest(manifest, claims.manifest_digest)
    # 8
    if not identity.matches(intended, claims.docker_reference):
        raise SignatureRejected(
            f"signature for identity {claims.docker_reference!r} is not accepted "
            f"({identity.type} for {str(intended) if intended else 'an image without a name'})")
    return claims


def _key_id(key: keys.PublicKey) -> str:
    return "key sha256:" + hashlib.sha256(keys.public_key_der(key)).hexdigest()[:16]
