"""cosign keys and signatures: formats, byte layout, and each failure's exact error."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from secpod.errors import KeyFormatError, SignatureRejected
from secpod.images.reference import parse
from secpod.signing import _json, keys, sigstore
from secpod.signing.identity import MatchRepoDigestOrExact, MatchRepository
from secpod.signing.payload import SIGSTORE_PAYLOAD_TYPE, make_payload, parse_payload
from tests.unit.test_signing_conformance import corpus, corpus_file

MANIFEST = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}'
DIGEST = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()
REF = "registry.example.com/team/app:1.0"


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def verify(blob: bytes, root: sigstore.SigstoreTrustRoot, *, manifest: bytes | None = MANIFEST,
           ref: str = REF, now: datetime | None = None) -> str:
    att = sigstore.parse_attachment(blob)
    claims = sigstore.verify_attachment(att, root, manifest=manifest, intended=parse(ref),
                                        identity=MatchRepoDigestOrExact(), now=now)
    return claims.docker_reference


def rejection(blob: bytes, root: sigstore.SigstoreTrustRoot, **kw: object) -> str:
    with pytest.raises(SignatureRejected) as e:
        verify(blob, root, **kw)  # type: ignore[arg-type]
    return e.value.message


# --- keys -------------------------------------------------------------------------------


def test_encrypted_key_round_trip_and_format() -> None:
    private_pem, public_pem = keys.generate_key_pair(b"s3cret")
    text = private_pem.decode()
    assert text.startswith("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
    body = "".join(text.strip().splitlines()[1:-1])
    envelope = json.loads(base64.b64decode(body))
    assert list(envelope) == ["kdf", "cipher", "ciphertext"]
    assert envelope["kdf"]["name"] == "scrypt"
    assert envelope["kdf"]["params"] == {"N": 32768, "r": 8, "p": 1}
    assert len(base64.b64decode(envelope["kdf"]["salt"])) == 32
    assert envelope["cipher"]["name"] == "nacl/secretbox"
    assert len(base64.b64decode(envelope["cipher"]["nonce"])) == 24
    private = keys.decrypt_private_key(private_pem, b"s3cret", source="k")
    public = keys.load_public_key(public_pem, source="p")
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert isinstance(private.curve, ec.SECP256R1)
    assert keys.public_key_of(private) == public
    assert public_pem.startswith(b"-----BEGIN PUBLIC KEY-----\n")


def test_older_cosign_header_is_read() -> None:
    private_pem, _ = keys.generate_key_pair(b"pw")
    old = private_pem.replace(b"SIGSTORE", b"COSIGN")
    assert isinstance(keys.decrypt_private_key(old, b"pw", source="k"),
                      ec.EllipticCurvePrivateKey)


def test_wrong_passphrase() -> None:
    private_pem, _ = keys.generate_key_pair(b"right")
    with pytest.raises(KeyFormatError) as e:
        keys.decrypt_private_key(private_pem, b"wrong", source="cosign.key")
    assert e.value.message == "cosign.key: cannot decrypt the private key: wrong passphrase"


@pytest.mark.parametrize(("data", "message"), [
    (b"garbage", "cosign.key: not a PEM private key (text outside a PEM block)"),
    (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
     "cosign.key: expected one 'ENCRYPTED SIGSTORE PRIVATE KEY' PEM block"),
    (b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n" + base64.b64encode(
        b'{"kdf":{"name":"scrypt","params":{"N":1073741824,"r":8,"p":1},"salt":""},'
        b'"cipher":{"name":"nacl/secretbox","nonce":""},"ciphertext":""}')
     + b"\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n",
     "cosign.key: malformed encrypted key: $.kdf.params: scrypt parameters out of bounds"),
])
def test_malformed_private_keys(data: bytes, message: str) -> None:
    with pytest.raises(KeyFormatError) as e:
        keys.decrypt_private_key(data, b"pw", source="cosign.key")
    assert e.value.message == message


def test_public_key_errors(shared: Path) -> None:
    with pytest.raises(KeyFormatError) as e:
        keys.load_public_key(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
                             source="x.pub")
    assert e.value.message.startswith("x.pub: the public key cannot be parsed")
    with pytest.raises(KeyFormatError) as e:
        keys.load_public_key((corpus(shared) / "public-key.gpg").read_bytes(), source="g.pub")
    assert e.value.message.startswith("g.pub: not a PEM public key")
    rsa_key = keys.load_public_key((corpus(shared) / "some-rsa-key.pub").read_bytes(),
                                   source="rsa.pub")
    assert rsa_key.info.algorithm == "RSA" and rsa_key.info.bits >= 2048


# --- the byte layout containers/image reads ---------------------------------------------


@pytest.mark.parametrize("image_dir", ["dir-img-cosign-valid", "dir-img-cosign-valid-with-tag",
                                       "dir-img-cosign-key-rekor-valid",
                                       "dir-img-cosign-fulcio-rekor-valid"])
def test_serialisation_reproduces_the_corpus_bytes(shared: Path, image_dir: str) -> None:
    blob = corpus_file(corpus(shared) / image_dir / "signature-1").read_bytes()
    assert sigstore.serialize_attachment(sigstore.parse_attachment(blob)) == blob


def test_payload_bytes_match_containers_image(shared: Path) -> None:
    blob = corpus_file(corpus(shared) / "dir-img-cosign-valid-with-tag" / "signature-1")
    att = sigstore.parse_attachment(blob.read_bytes())
    claims = parse_payload(att.payload, payload_type=SIGSTORE_PAYLOAD_TYPE)
    assert make_payload(claims.docker_reference, claims.manifest_digest,
                        payload_type=SIGSTORE_PAYLOAD_TYPE, creator=claims.creator,
                        timestamp=claims.timestamp) == att.payload


def test_secpod_signature_has_the_corpus_layout_and_verifies(
        shared: Path, key: ec.EllipticCurvePrivateKey) -> None:
    ours = sigstore.make_signature(key, REF, DIGEST, creator="secpod 0.1.0", timestamp=1700000000)
    theirs = corpus_file(corpus(shared) / "dir-img-cosign-valid" / "signature-1").read_bytes()
    assert ours.startswith(b"\x00sigstore-json\n") and theirs.startswith(b"\x00sigstore-json\n")
    o, t = (json.loads(b[len(b"\x00sigstore-json\n"):]) for b in (ours, theirs))
    assert list(o) == list(t) == ["mimeType", "payload", "annotations"]
    assert o["mimeType"] == t["mimeType"] == sigstore.SIGNATURE_MIME_TYPE
    assert list(o["annotations"]) == list(t["annotations"]) == [sigstore.ANNOTATION_SIGNATURE]
    op, tp = (json.loads(base64.b64decode(x["payload"])) for x in (o, t))
    assert list(op["critical"]) == list(tp["critical"]) == ["identity", "image", "type"]
    assert op["critical"]["type"] == tp["critical"]["type"] == SIGSTORE_PAYLOAD_TYPE
    assert op["optional"] == {"creator": "secpod 0.1.0", "timestamp": 1700000000}
    raw = base64.b64decode(o["payload"])
    assert raw == json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode()
    root = sigstore.SigstoreTrustRoot(public_keys=(keys.public_key_of(key),))
    assert verify(ours, root) == REF


# --- failures, one field at a time ------------------------------------------------------


def test_wrong_key_tampered_manifest_and_identity(key: ec.EllipticCurvePrivateKey) -> None:
    blob = sigstore.make_signature(key, REF, DIGEST)
    other = sigstore.SigstoreTrustRoot(public_keys=(keys.public_key_of(ec.generate_private_key(
        ec.SECP256R1())),))
    assert rejection(blob, other).startswith("cryptographic signature verification failed: "
                                             "not signed by key sha256:")
    root = sigstore.SigstoreTrustRoot(public_keys=(keys.public_key_of(key),))
    tampered = MANIFEST.replace(b"2", b"3")
    assert rejection(blob, root, manifest=tampered) == (
        f"signature for digest {DIGEST} does not match the manifest "
        f"(sha256:{hashlib.sha256(tampered).hexdigest()})")
    assert rejection(blob, root, ref="registry.example.com/team/app:2.0") == (
        f"signature for identity '{REF}' is not accepted (matchRepoDigestOrExact for "
        "registry.example.com/team/app:2.0)")


def test_garbage_and_truncated_signatures(key: ec.EllipticCurvePrivateKey) -> None:
    root = sigstore.SigstoreTrustRoot(public_keys=(keys.public_key_of(key),))
    blob = sigstore.make_signature(key, REF, DIGEST)
    assert rejection(blob[: len(blob) // 2], root).startswith(
        "malformed sigstore attachment: $: sigstore attachment is not valid JSON")
    with pytest.raises(SignatureRejected) as e:
        sigstore.parse_attachment(b"\x00sigstore-json\n" + b"\xff\xfe garbage")
    assert e.value.message == ("malformed sigstore attachment: $: sigstore attachment is not "
                               "UTF-8 text")
    att = json.loads(blob[len(sigstore.SIGSTORE_PREFIX):])
    sig = base64.b64decode(att["annotations"][sigstore.ANNOTATION_SIGNATURE])
    att["annotations"][sigstore.ANNOTATION_SIGNATURE] = base64.b64encode(sig[:20]).decode()
    truncated = sigstore.SIGSTORE_PREFIX + json.dumps(att).encode()
    assert rejection(truncated, root).startswith("cryptographic signature verification failed")
    del att["annotations"][sigstore.ANNOTATION_SIGNATURE]
    missing = sigstore.SIGSTORE_PREFIX + json.dumps(att).encode()
    assert rejection(missing, root) == "missing dev.cosignproject.cosign/signature annotation"


def test_payload_strictness(key: ec.EllipticCurvePrivateKey) -> None:
    root = sigstore.SigstoreTrustRoot(public_keys=(keys.public_key_of(key),))

    def signed(payload: bytes) -> bytes:
        return sigstore.serialize_attachment(sigstore.SigstoreAttachment(
            sigstore.SIGNATURE_MIME_TYPE, payload,
            {sigstore.ANNOTATION_SIGNATURE: base64.b64encode(keys.sign(key, payload)).decode()}))

    doc = json.loads(make_payload(REF, DIGEST, payload_type=SIGSTORE_PAYLOAD_TYPE))
    doc["critical"]["extra"] = 1
    assert rejection(signed(json.dumps(doc).encode()), root) == (
        "invalid signature payload: $.critical.extra: unknown field")
    doc = json.loads(make_payload(REF, DIGEST, payload_type="atomic container signature"))
    assert rejection(signed(json.dumps(doc).encode()), root) == (
        "invalid signature payload: $.critical.type: unrecognized signature type "
        "'atomic container signature'")
    dup = make_payload(REF, DIGEST, payload_type=SIGSTORE_PAYLOAD_TYPE).replace(
        b'"optional":{}', b'"optional":{},"optional":{}')
    assert rejection(signed(dup), root) == (
        "invalid signature payload: $: duplicate field 'optional' in signature payload")


# --- Fulcio certificates: expired, wrong issuer --------------------------------------------

ISSUER_OID = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sigstore.test"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@pytest.fixture(scope="module")
def fulcio() -> dict[str, object]:
    """A Fulcio-like CA, a 10-minute leaf with an OIDC issuer, and a Rekor key."""
    t0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca = (x509.CertificateBuilder().subject_name(_name("root")).issuer_name(_name("root"))
          .public_key(ca_key.public_key()).serial_number(1)
          .not_valid_before(t0 - timedelta(days=365)).not_valid_after(t0 + timedelta(days=3650))
          .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
          .sign(ca_key, hashes.SHA384()))
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    issuer = "https://token.example.com"
    der_issuer = bytes([0x0C, len(issuer)]) + issuer.encode()
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(ca.subject)
            .public_key(leaf_key.public_key()).serial_number(2)
            .not_valid_before(t0).not_valid_after(t0 + timedelta(minutes=10))
            .add_extension(x509.SubjectAlternativeName([x509.RFC822Name("dev@example.com")]),
                           critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]),
                           critical=False)
            .add_extension(x509.UnrecognizedExtension(ISSUER_OID, der_issuer), critical=False)
            .sign(ca_key, hashes.SHA384()))
    return {"t0": t0, "ca": ca, "leaf": leaf, "leaf_key": leaf_key,
            "rekor": ec.generate_private_key(ec.SECP256R1()), "issuer": issuer}


def _fulcio_blob(f: dict[str, object], integrated: datetime) -> bytes:
    leaf = f["leaf"]
    assert isinstance(leaf, x509.Certificate)
    cert_pem = leaf.public_bytes(serialization.Encoding.PEM)
    payload = make_payload(REF, DIGEST, payload_type=SIGSTORE_PAYLOAD_TYPE)
    sig = keys.sign(f["leaf_key"], payload)  # type: ignore[arg-type]
    body = {"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
        "data": {"hash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()}},
        "signature": {"content": base64.b64encode(sig).decode(),
                      "publicKey": {"content": base64.b64encode(cert_pem).decode()}}}}
    set_payload = {"body": base64.b64encode(json.dumps(body).encode()).decode(),
                   "integratedTime": int(integrated.timestamp()), "logIndex": 7, "logID": "00"}
    rekor = f["rekor"]
    assert isinstance(rekor, ec.EllipticCurvePrivateKey)
    set_sig = rekor.sign(_json.canonical(set_payload), ec.ECDSA(hashes.SHA256()))
    bundle = json.dumps({"SignedEntryTimestamp": base64.b64encode(set_sig).decode(),
                         "Payload": set_payload})
    return sigstore.serialize_attachment(sigstore.SigstoreAttachment(
        sigstore.SIGNATURE_MIME_TYPE, payload, {
            sigstore.ANNOTATION_SIGNATURE: base64.b64encode(sig).decode(),
            sigstore.ANNOTATION_CERTIFICATE: cert_pem.decode(),
            sigstore.ANNOTATION_BUNDLE: bundle}))


def _fulcio_root(f: dict[str, object], *, issuer: str | None = None,
                 email: str = "dev@example.com") -> sigstore.SigstoreTrustRoot:
    rekor = f["rekor"]
    assert isinstance(rekor, ec.EllipticCurvePrivateKey)
    return sigstore.SigstoreTrustRoot(
        fulcio=sigstore.FulcioRoot((f["ca"],), issuer or str(f["issuer"]), email),  # type: ignore
        rekor_keys=(keys.public_key_of(rekor),))


def test_fulcio_signature_inside_the_certificate_lifetime(fulcio: dict[str, object]) -> None:
    t0 = fulcio["t0"]
    assert isinstance(t0, datetime)
    blob = _fulcio_blob(fulcio, t0 + timedelta(minutes=2))
    assert verify(blob, _fulcio_root(fulcio)) == REF


def test_fulcio_expired_certificate(fulcio: dict[str, object]) -> None:
    t0 = fulcio["t0"]
    assert isinstance(t0, datetime)
    blob = _fulcio_blob(fulcio, t0 + timedelta(hours=1))
    assert rejection(blob, _fulcio_root(fulcio)).startswith(
        "certificate serial 2 is not valid at 2024-05-01T13:00:00+00:00 (valid "
        "2024-05-01T12:00:00+00:00 to 2024-05-01T12:10:00+00:00)")


def test_fulcio_wrong_issuer_and_email(fulcio: dict[str, object]) -> None:
    t0 = fulcio["t0"]
    assert isinstance(t0, datetime)
    blob = _fulcio_blob(fulcio, t0 + timedelta(minutes=2))
    assert rejection(blob, _fulcio_root(fulcio, issuer="https://accounts.google.com")) == (
        "required OIDC issuer 'https://accounts.google.com', got 'https://token.example.com'")
    assert rejection(blob, _fulcio_root(fulcio, email="eve@example.com")) == (
        "required email 'eve@example.com' not found (got ['dev@example.com'])")


def test_fulcio_set_from_another_log(fulcio: dict[str, object]) -> None:
    t0 = fulcio["t0"]
    assert isinstance(t0, datetime)
    blob = _fulcio_blob(fulcio, t0 + timedelta(minutes=2))
    root = _fulcio_root(fulcio)
    other = sigstore.SigstoreTrustRoot(fulcio=root.fulcio, rekor_keys=(
        keys.public_key_of(ec.generate_private_key(ec.SECP256R1())),))
    assert rejection(blob, other) == ("cryptographic signature verification of the Rekor SET "
                                      "failed")


def test_key_policy_accepts_repository_identity(key: ec.EllipticCurvePrivateKey) -> None:
    blob = sigstore.make_signature(key, "registry.example.com/team/app", DIGEST)
    root = sigstore.SigstoreTrustRoot(public_keys=(keys.public_key_of(key),))
    att = sigstore.parse_attachment(blob)
    claims = sigstore.verify_attachment(att, root, manifest=MANIFEST, intended=parse(REF),
                                        identity=MatchRepository())
    assert claims.docker_reference == "registry.example.com/team/app"
