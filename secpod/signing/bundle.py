"""Sigstore bundles (v0.1, v0.2, v0.3) and their verification against a trusted root.

:func:`verify_bundle` is pure: the bundle's bytes, the artifact (its bytes or its
SHA-256), the expected signer and a :class:`~secpod.signing.trustedroot.TrustedRoot`
in; the verified log entries' times out, or an exception. "Not acceptable" is
:class:`~secpod.errors.SignatureRejected` (exit 1); "unusable input" is
:class:`BundleFormatError` (exit 2).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import UTC, datetime

from secpod._record import record
from secpod.errors import MalformedInput, SignatureRejected
from secpod.signing import _json, keys
from secpod.signing.trustedroot import TrustedRoot

MAX_BUNDLE = 16 << 20
MAX_DEPTH = 32
_MEDIA = {
    "application/vnd.dev.sigstore.bundle+json;version=0.1": 1,
    "application/vnd.dev.sigstore.bundle+json;version=0.2": 2,
    "application/vnd.dev.sigstore.bundle+json;version=0.3": 3,
    "application/vnd.dev.sigstore.bundle.v0.3+json": 3,
}


class BundleFormatError(MalformedInput):
    """The bundle cannot be read as a Sigstore bundle (exit 2: unusable input)."""

    exit_code = 2


@record(frozen=True, eq=False)
class Artifact:
    """What was signed: its bytes when known, and always its SHA-256."""

    sha256: bytes
    data: bytes | None = None

    @classmethod
    def of(cls, data: bytes) -> Artifact:
        return cls(sha256=hashlib.sha256(data).digest(), data=data)


@record(frozen=True, eq=False)
class TlogEntry:
    log_index: int
    log_id: bytes
    kind: str
    version: str
    integrated_time: int
    set_signature: bytes | None
    body: bytes
    proof_index: int | None
    proof_root: bytes
    proof_size: int
    proof_hashes: tuple[bytes, ...]
    checkpoint: str | None


@record(frozen=True, eq=False)
class Bundle:
    version: int
    public_key_hint: str | None
    certificates: tuple[bytes, ...]
    entries: tuple[TlogEntry, ...]
    timestamps: tuple[bytes, ...]
    digest_algorithm: str | None
    message_digest: bytes | None
    signature: bytes
    dsse_payload_type: str | None = None
    dsse_payload: bytes | None = None


def _depth(value: object, limit: int) -> int:
    if limit < 0:
        raise _json.JSONShapeError("$", f"the bundle is nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        return 1 + max((_depth(v, limit - 1) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v, limit - 1) for v in value), default=0)
    return 0


def _int(value: object, path: str, *, default: int | None = None) -> int:
    # protobuf JSON writes 64-bit integers as strings.
    if value is None and default is not None:
        return default
    if isinstance(value, str) and value.lstrip("-").isdigit():
        n = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        n = value
    else:
        raise _json.JSONShapeError(path, "expected an integer")
    if n < 0:
        raise _json.JSONShapeError(path, f"must not be negative (got {n})")
    return n


def _entry(value: object, path: str) -> TlogEntry:
    obj = _json.expect_object(value, path)
    kv = _json.expect_object(obj.get("kindVersion"), _json.child(path, "kindVersion"))
    log_id = _json.expect_object(obj.get("logId"), _json.child(path, "logId"))
    promise = obj.get("inclusionPromise")
    set_sig = None
    if promise is not None:
        p = _json.expect_object(promise, _json.child(path, "inclusionPromise"))
        set_sig = _json.expect_b64(p.get("signedEntryTimestamp"),
                                   _json.child(path, "inclusionPromise.signedEntryTimestamp"))
    proof = obj.get("inclusionProof")
    pidx, proot, psize, phashes, cp = None, b"", 0, (), None
    if proof is not None:
        pp = _json.child(path, "inclusionProof")
        pr = _json.expect_object(proof, pp)
        pidx = _int(pr.get("logIndex"), _json.child(pp, "logIndex"))
        proot = _json.expect_b64(pr.get("rootHash"), _json.child(pp, "rootHash"))
        psize = _int(pr.get("treeSize"), _json.child(pp, "treeSize"))
        phashes = tuple(_json.expect_list(pr.get("hashes", []), _json.child(pp, "hashes"),
                                          _json.expect_b64))
        if pr.get("checkpoint") is not None:
            c = _json.expect_object(pr["checkpoint"], _json.child(pp, "checkpoint"))
            cp = _json.expect_str(c.get("envelope"), _json.child(pp, "checkpoint.envelope"))
    return TlogEntry(
        log_index=_int(obj.get("logIndex"), _json.child(path, "logIndex")),
        log_id=_json.expect_b64(log_id.get("keyId"), _json.child(path, "logId.keyId")),
        kind=_json.expect_str(kv.get("kind"), _json.child(path, "kindVersion.kind")),
        version=_json.expect_str(kv.get("version"), _json.child(path, "kindVersion.version")),
        integrated_time=_int(obj.get("integratedTime"), _json.child(path, "integratedTime"),
                             default=0),
        set_signature=set_sig,
        body=_json.expect_b64(obj.get("canonicalizedBody"),
                              _json.child(path, "canonicalizedBody")),
        proof_index=pidx, proof_root=proot, proof_size=psize, proof_hashes=phashes,
        checkpoint=cp)


def parse_bundle(data: bytes) -> Bundle:
    """Parse a bundle's JSON. Raises BundleFormatError naming the field at fault."""
    if len(data) > MAX_BUNDLE:
        raise BundleFormatError(f"the bundle is larger than {MAX_BUNDLE} bytes")
    try:
        try:
            doc = _json.expect_object(_json.loads(data, what="bundle"), "$")
        except _json.JSONShapeError as e:
            if isinstance(e.__cause__, RecursionError):
                raise _json.JSONShapeError(
                    "$", f"the bundle is nested deeper than {MAX_DEPTH} levels") from e
            raise
        _depth(doc, MAX_DEPTH)
        media = _json.expect_str(doc.get("mediaType", ""), "$.mediaType")
        version = _MEDIA.get(media)
        if version is None:
            raise _json.JSONShapeError("$.mediaType", f"unknown bundle media type {media!r}")
        vm = _json.expect_object(doc.get("verificationMaterial"), "$.verificationMaterial")
        hint: str | None = None
        certs: tuple[bytes, ...] = ()
        if "publicKey" in vm:
            pk = _json.expect_object(vm["publicKey"], "$.verificationMaterial.publicKey")
            hint = _json.expect_str(pk.get("hint", ""), "$.verificationMaterial.publicKey.hint")
        elif "certificate" in vm:
            c = _json.expect_object(vm["certificate"], "$.verificationMaterial.certificate")
            certs = (_json.expect_b64(c.get("rawBytes"),
                                      "$.verificationMaterial.certificate.rawBytes"),)
        elif "x509CertificateChain" in vm:
            ch = _json.expect_object(vm["x509CertificateChain"],
                                     "$.verificationMaterial.x509CertificateChain")
            certs = tuple(_json.expect_list(
                ch.get("certificates"), "$.verificationMaterial.x509CertificateChain.certificates",
                lambda v, p: _json.expect_b64(_json.expect_object(v, p).get("rawBytes"), p),
                nonempty=True))
        else:
            raise _json.JSONShapeError("$.verificationMaterial",
                                       "needs publicKey, certificate or x509CertificateChain")
        entries = tuple(_json.expect_list(vm.get("tlogEntries", []),
                                          "$.verificationMaterial.tlogEntries", _entry))
        tsd = vm.get("timestampVerificationData") or {}
        stamps = tuple(_json.expect_list(
            _json.expect_object(tsd, "$.verificationMaterial.timestampVerificationData")
            .get("rfc3161Timestamps", []), "$.verificationMaterial.timestampVerificationData",
            lambda v, p: _json.expect_b64(_json.expect_object(v, p).get("signedTimestamp"), p)))
        if ("messageSignature" in doc) == ("dsseEnvelope" in doc):
            raise _json.JSONShapeError("$", "needs exactly one of messageSignature, dsseEnvelope")
        if "messageSignature" in doc:
            ms = _json.expect_object(doc["messageSignature"], "$.messageSignature")
            algo, digest = None, None
            if ms.get("messageDigest") is not None:
                md = _json.expect_object(ms["messageDigest"], "$.messageSignature.messageDigest")
                algo = _json.expect_str(md.get("algorithm"),
                                        "$.messageSignature.messageDigest.algorithm")
                digest = _json.expect_b64(md.get("digest"),
                                          "$.messageSignature.messageDigest.digest")
            return Bundle(version=version, public_key_hint=hint, certificates=certs,
                          entries=entries, timestamps=stamps, digest_algorithm=algo,
                          message_digest=digest,
                          signature=_json.expect_b64(ms.get("signature"),
                                                     "$.messageSignature.signature"))
        env = _json.expect_object(doc["dsseEnvelope"], "$.dsseEnvelope")
        sigs = _json.expect_list(env.get("signatures"), "$.dsseEnvelope.signatures",
                                 lambda v, p: _json.expect_b64(
                                     _json.expect_object(v, p).get("sig"), _json.child(p, "sig")))
        if len(sigs) != 1:
            raise _json.JSONShapeError("$.dsseEnvelope.signatures",
                                       f"expected exactly one signature, got {len(sigs)}")
        return Bundle(version=version, public_key_hint=hint, certificates=certs,
                      entries=entries, timestamps=stamps, digest_algorithm=None,
                      message_digest=None, signature=sigs[0],
                      dsse_payload_type=_json.expect_str(env.get("payloadType"),
                                                         "$.dsseEnvelope.payloadType"),
                      dsse_payload=_json.expect_b64(env.get("payload"), "$.dsseEnvelope.payload"))
    except (_json.JSONShapeError, binascii.Error) as e:
        raise BundleFormatError(f"malformed bundle: {e}",
                                hint="give a Sigstore bundle (.sigstore.json)") from e


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what a DSSE signature signs."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def verify_bundle(data: bytes, artifact: Artifact, root: TrustedRoot, *,
                  key: keys.PublicKey | None = None, identity: str | None = None,
                  issuer: str | None = None, now: datetime | None = None,
                  require_log: bool = True,
                  certificate_key: keys.PublicKey | None = None) -> list[datetime]:
    """Verify a bundle for ``artifact``, signed by ``key`` or by a Fulcio certificate for
    ``identity`` and ``issuer``; return the verified signing times.

    ``certificate_key`` is for a certificate the caller has judged itself (an
    organisation's PKI, as the trust policy's ``pki``: chain, subject, validity now): the
    leaf's key, which must be the bundle leaf's; no Fulcio check (CA, SCT, OIDC issuer)
    is made then, and no signing time is required without log entries.

    ``require_log=False`` accepts a key-signed bundle without a transparency-log entry
    (``secpod sign --bundle`` writes those; the times are then empty); an entry that is
    there is still verified, and a certificate still needs a verified signing time.

    Raises BundleFormatError (unusable bundle), SignatureRejected (the message names the
    failed check).
    """
    # Checklist (each check fails with its own message):
    #  1. the bundle parses: a known media type, one signing material, one content
    #  2. the signing material is the expected one (a key-signed bundle needs --key, a
    #     certificate-signed one an identity and issuer)
    #  3. each log entry: its log is in the trusted root, valid at the entry's time
    #  4. Rekor v1: the signed entry timestamp verifies over its RFC 8785 payload
    #  5. the RFC 6962 inclusion proof leads from the entry to the proof's root hash
    #  6. the checkpoint is signed by the log and names that root hash and tree size
    #  7. the entry body matches the bundle (hashedrekord, dsse, intoto)
    #  8. at least one verified signing time; for a certificate: inside its validity,
    #     the chain to a Fulcio CA of the root at that time, an SCT, identity and issuer
    #  9. the content: the message digest matches the artifact, the signature verifies;
    #     for DSSE, the envelope signature over PAE and the artifact among the subjects
    from secpod.signing import _bundlelog

    now = now or datetime.now(UTC)
    b = parse_bundle(data)                                                     # 1
    cert = None
    leaf_der: bytes | None = None
    if b.certificates and certificate_key is not None:                         # 2 (pki)
        leaf_der = b.certificates[0]
        signer_der = keys.public_key_der(certificate_key)
        if _leaf_spki(leaf_der) != signer_der:
            raise SignatureRejected("the judged certificate key is not the bundle leaf's")
    elif b.certificates:                                                       # 2
        if identity is None or issuer is None:
            raise SignatureRejected("the bundle is signed by a certificate; "
                                    "an identity and an OIDC issuer are required")
        from secpod.signing import _bundlecert

        cert = _bundlecert.signing_certificate(b.certificates, root)
        signer_der = cert.spki_der
    elif key is None:
        raise SignatureRejected("the bundle is signed by a public key; give that key (--key)")
    else:
        signer_der = keys.public_key_der(key)
    if not b.entries and require_log:
        raise SignatureRejected("the bundle has no transparency log entry")
    times: list[datetime] = []
    untimed = []
    for entry in b.entries:
        t = _bundlelog.verify_entry(entry, root, b.version)                    # 3-6
        _bundlelog.match_body(entry, b, signer_der=signer_der,
                              signer_cert=cert.leaf_der if cert else leaf_der,
                              artifact=artifact)                               # 7
        if t is not None:
            times.append(t)
        else:
            untimed.append(entry)
    unverified = _timestamps(b, root, times)                                   # 8
    for entry in untimed:  # Rekor v2: the log's key valid at the timestamps' times
        log = root.tlog(entry.log_id)
        for t in times:
            if log is not None and not log.validity.contains(t):
                raise SignatureRejected(f"the log's key is not valid at the signing time "
                                        f"{t.isoformat()}")
    if not times and not (cert is None and not b.entries and not require_log):
        raise SignatureRejected("no verified signing time: no log entry carries a signed entry "
                                "timestamp" + ("".join(f"; {u}" for u in unverified)
                                               if unverified else
                                               " and the bundle has no RFC 3161 timestamp"))
    for t in times:
        if t > now:
            raise SignatureRejected(f"the signing time {t.isoformat()} is in the future")
    if cert is not None:
        assert identity is not None and issuer is not None
        from secpod.signing import _bundlecert

        _bundlecert.verify_certificate(cert, root, identity=identity, issuer=issuer,
                                       times=times)
    _check_content(b, artifact, signer_der)                                    # 9
    return times


def _leaf_spki(der: bytes) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    try:
        leaf = x509.load_der_x509_certificate(der)
    except ValueError as e:
        raise SignatureRejected(f"the bundle's certificate is not DER X.509: {e}") from e
    return leaf.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _timestamps(b: Bundle, root: TrustedRoot, times: list[datetime]) -> list[str]:
    """Add the time of each RFC 3161 timestamp that verifies to ``times``; return why the
    others do not count (a timestamp that does not verify is no signing time)."""
    if not b.timestamps:
        return []
    from secpod.signing import _rfc3161

    why: list[str] = []
    for stamp in b.timestamps:
        try:
            times.append(_rfc3161.verify_timestamp(stamp, b.signature, root))
        except SignatureRejected as e:
            why.append(e.message)
    return why


def _check_content(b: Bundle, artifact: Artifact, signer_der: bytes) -> None:
    from secpod.signing import _bundlelog

    if b.dsse_payload is None:
        if b.message_digest is not None:
            if b.digest_algorithm != "SHA2_256":
                raise SignatureRejected(f"unsupported message digest algorithm "
                                        f"{b.digest_algorithm!r}")
            if b.message_digest != artifact.sha256:
                raise SignatureRejected("the bundle's message digest does not match the artifact")
        if not _bundlelog.check_signature(signer_der, b.signature, artifact):
            raise SignatureRejected("the signature over the artifact does not verify with the "
                                    "signer's key",
                                    hint="the artifact or the signature was changed, or another "
                                         "key signed it")
        return
    assert b.dsse_payload_type is not None
    signed = pae(b.dsse_payload_type, b.dsse_payload)
    if not _bundlelog.check_signature(signer_der, b.signature, Artifact.of(signed)):
        raise SignatureRejected("the DSSE envelope's signature does not verify with the "
                                "signer's key")
    _bundlelog.check_subject(b.dsse_payload_type, b.dsse_payload, artifact)
