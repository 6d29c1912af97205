"""The transparency-log half of bundle verification: Rekor entries, proofs, checkpoints.

Reuses the audit log's RFC 6962 code (:mod:`secpod.audit._merkle`) and its C2SP
signed-note parser (:mod:`secpod.audit._checkpoint`). Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import UTC, datetime

from secpod.errors import AuditError, SignatureRejected, VerificationError
from secpod.signing import _json, _openssl

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from secpod.signing.bundle import Artifact, Bundle, TlogEntry
    from secpod.signing.trustedroot import TrustedRoot

_REKOR_V1 = {("hashedrekord", "0.0.1"), ("dsse", "0.0.1"), ("intoto", "0.0.2")}


def check_signature(spki_der: bytes, signature: bytes, artifact: Artifact) -> bool:
    """Whether ``signature`` over the artifact verifies with the key (ECDSA/RSA with
    SHA-256, Ed25519 pure). Over the bytes when known, else over the SHA-256 (prehashed)."""
    if artifact.data is not None:
        try:
            return _openssl.verify(spki_der, signature, artifact.data)
        except _openssl.KeyRejected as e:
            raise SignatureRejected(f"the signer's key cannot be used: {e}") from e
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    try:
        pub = serialization.load_der_public_key(spki_der)
    except (ValueError, UnsupportedAlgorithm) as e:
        raise SignatureRejected(f"the signer's key cannot be used: {e}") from e
    try:
        if isinstance(pub, ec.EllipticCurvePublicKey):
            pub.verify(signature, artifact.sha256, ec.ECDSA(Prehashed(hashes.SHA256())))
        elif isinstance(pub, rsa.RSAPublicKey):
            pub.verify(signature, artifact.sha256, padding.PKCS1v15(), Prehashed(hashes.SHA256()))
        else:
            raise SignatureRejected("a signature by this key type needs the artifact itself, "
                                    "not its digest", hint="give the artifact's path")
    except InvalidSignature:
        return False
    return True


def _when(t: int) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def verify_entry(entry: TlogEntry, root: TrustedRoot, version: int) -> datetime | None:
    """Check one log entry's promise, proof and checkpoint; return its verified integrated
    time (None for Rekor v2, whose entries carry none). Raises SignatureRejected."""
    # 3. the log
    log = root.tlog(entry.log_id)
    if log is None:
        raise SignatureRejected(f"the log entry is from a log the trusted root does not know "
                                f"(log id {base64.b64encode(entry.log_id).decode()})",
                                hint="verify against the trusted root of the instance that "
                                     "logged it (--trusted-root)")
    rekor_v1 = (entry.kind, entry.version) in _REKOR_V1
    if not rekor_v1 and (entry.kind, entry.version) != ("hashedrekord", "0.0.2"):
        raise SignatureRejected(f"unsupported log entry kind {entry.kind} {entry.version}")
    integrated: datetime | None = None
    # 4. the signed entry timestamp
    if rekor_v1:
        if entry.set_signature is None:
            if version == 1:
                raise SignatureRejected("a v0.1 bundle's log entry needs an inclusion promise")
        else:
            payload = _json.canonical({
                "body": base64.b64encode(entry.body).decode(),
                "integratedTime": entry.integrated_time,
                "logID": entry.log_id.hex(), "logIndex": entry.log_index})
            if not _verify(log.key_der, entry.set_signature, payload):
                raise SignatureRejected("the signed entry timestamp does not verify with the "
                                        "log's key")
            integrated = _when(entry.integrated_time)
            if not log.validity.contains(integrated):
                raise SignatureRejected(f"the log's key is not valid at the entry's time "
                                        f"{integrated.isoformat()}")
    # 5. the inclusion proof
    if entry.proof_index is None:
        if version >= 2 or not rekor_v1:
            raise SignatureRejected("the log entry has no inclusion proof")
        return integrated
    from secpod.audit import _merkle

    if any(len(h) != 32 for h in entry.proof_hashes) or len(entry.proof_root) != 32:
        raise SignatureRejected("the inclusion proof's hashes are not SHA-256 hashes")
    try:
        got = _merkle.root_from_inclusion(entry.proof_index, entry.proof_size,
                                          _merkle.leaf_hash(entry.body), entry.proof_hashes)
    except AuditError as e:
        raise SignatureRejected(f"invalid inclusion proof: {e.message}") from e
    if got != entry.proof_root:
        raise SignatureRejected("the inclusion proof does not lead to the proof's root hash")
    # 6. the checkpoint
    if entry.checkpoint is None:
        raise SignatureRejected("the inclusion proof has no checkpoint")
    _check_checkpoint(entry, log.key_der)
    return integrated


def _verify(spki_der: bytes, signature: bytes, data: bytes) -> bool:
    try:
        return _openssl.verify(spki_der, signature, data)
    except _openssl.KeyRejected as e:
        raise VerificationError(f"the trusted root's log key cannot be used: {e}") from e


def _check_checkpoint(entry: TlogEntry, log_key: bytes) -> None:
    from secpod.audit._checkpoint import parse_checkpoint
    from secpod.errors import CheckpointError

    assert entry.checkpoint is not None
    try:
        cp = parse_checkpoint(entry.checkpoint)
    except CheckpointError as e:
        raise SignatureRejected(f"malformed checkpoint: {e.message}") from e
    hint = entry.log_id[:4]
    mine = [s for s in cp.signatures if s.key_id == hint]
    if not any(_verify(log_key, s.signature, cp.text.encode()) for s in mine):
        raise SignatureRejected("the checkpoint is not signed by the log's key"
                                if mine else "the checkpoint has no signature by the log")
    if cp.root != entry.proof_root or cp.size != entry.proof_size:
        raise SignatureRejected("the checkpoint's root hash and tree size are not the "
                                "inclusion proof's")


def _load(body: bytes) -> dict[str, object]:
    try:
        return _json.expect_object(_json.loads(body, what="log entry body"), "$")
    except _json.JSONShapeError as e:
        raise SignatureRejected(f"malformed log entry body: {e}") from e


def _pem_der(pem: bytes) -> bytes:
    text = pem.decode("ascii", "replace").strip().splitlines()
    try:
        return base64.b64decode("".join(ln.strip() for ln in text[1:-1]), validate=True)
    except binascii.Error:
        return b""


def match_body(entry: TlogEntry, b: Bundle, *, signer_der: bytes, signer_cert: bytes | None,
               artifact: Artifact) -> None:
    """7. The entry's body records this bundle's signature, signer and content.
    Raises SignatureRejected naming the field that differs."""
    from secpod.signing.bundle import pae

    body = _load(entry.body)
    if (body.get("kind"), body.get("apiVersion")) != (entry.kind, entry.version):
        raise SignatureRejected("the log entry's kind is not the bundle's kindVersion")
    spec = body.get("spec")
    if not isinstance(spec, dict):
        raise SignatureRejected("malformed log entry body: no spec")
    signer = signer_cert if signer_cert is not None else signer_der
    try:
        if entry.kind == "hashedrekord" and entry.version == "0.0.1":
            sig = spec["signature"]
            logged_sig = base64.b64decode(sig["content"])
            logged_signer = _pem_der(base64.b64decode(sig["publicKey"]["content"]))
            h = spec["data"]["hash"]
            if h["algorithm"] != "sha256":
                raise SignatureRejected(f"unsupported hash {h['algorithm']!r} in the log entry")
            logged_digest = bytes.fromhex(h["value"])
            expected = (artifact.sha256 if b.dsse_payload is None else
                        hashlib.sha256(pae(b.dsse_payload_type or "", b.dsse_payload)).digest())
        elif entry.kind == "hashedrekord":
            v2 = spec["hashedRekordV002"]
            logged_sig = base64.b64decode(v2["signature"]["content"])
            ver = v2["signature"]["verifier"]
            raw = ver.get("x509Certificate") or ver.get("publicKey")
            logged_signer = base64.b64decode(raw["rawBytes"])
            if v2["data"]["algorithm"] != "SHA2_256":
                raise SignatureRejected("unsupported hash in the log entry")
            logged_digest = base64.b64decode(v2["data"]["digest"])
            expected = (artifact.sha256 if b.dsse_payload is None else
                        hashlib.sha256(pae(b.dsse_payload_type or "", b.dsse_payload)).digest())
        elif entry.kind == "dsse":
            if b.dsse_payload is None:
                raise SignatureRejected("a dsse log entry for a bundle without an envelope")
            sigs = spec["signatures"]
            if len(sigs) != 1:
                raise SignatureRejected("the dsse log entry records another set of signatures")
            logged_sig = base64.b64decode(sigs[0]["signature"])
            logged_signer = _pem_der(base64.b64decode(sigs[0]["verifier"]))
            if spec["payloadHash"]["algorithm"] != "sha256":
                raise SignatureRejected("unsupported payload hash in the log entry")
            logged_digest = bytes.fromhex(spec["payloadHash"]["value"])
            expected = hashlib.sha256(b.dsse_payload).digest()
        else:  # intoto 0.0.2
            if b.dsse_payload is None:
                raise SignatureRejected("an intoto log entry for a bundle without an envelope")
            env = spec["content"]["envelope"]
            sigs = env["signatures"]
            if len(sigs) != 1:
                raise SignatureRejected("the intoto log entry records another set of signatures")
            logged_sig = base64.b64decode(base64.b64decode(sigs[0]["sig"]))
            logged_signer = _pem_der(base64.b64decode(sigs[0]["publicKey"]))
            logged_digest = bytes.fromhex(spec["content"]["payloadHash"]["value"])
            expected = hashlib.sha256(b.dsse_payload).digest()
    except (KeyError, TypeError, ValueError, binascii.Error) as e:
        raise SignatureRejected(f"malformed {entry.kind} log entry body: {e!r}") from e
    if logged_sig != b.signature:
        raise SignatureRejected("the signature in the log entry is not the bundle's signature")
    if logged_signer != signer:
        raise SignatureRejected("the key or certificate in the log entry is not the bundle's "
                                "signer")
    if logged_digest != expected:
        raise SignatureRejected("the digest in the log entry is not the artifact's")


def check_subject(payload_type: str, payload: bytes, artifact: Artifact) -> None:
    """For an in-toto statement: the artifact's SHA-256 is one of its subjects."""
    if payload_type != "application/vnd.in-toto+json":
        raise SignatureRejected(f"unsupported DSSE payload type {payload_type!r}")
    try:
        stmt = json.loads(payload)
        digests = {s["digest"].get("sha256") for s in stmt["subject"]}
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise SignatureRejected("the DSSE payload is not an in-toto statement") from e
    if artifact.sha256.hex() not in digests:
        raise SignatureRejected("the artifact is not a subject of the in-toto statement")
