"""verify_bundle on certificate-signed bundles (sigstore-conformance happy paths, Rekor v1
and v2), with one thing changed per test: each check fails with its own message."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from secpod.errors import SignatureRejected
from secpod.signing import _json, bundle, trustedroot

CASES = Path(__file__).resolve().parents[3] / "shared" / "conformance" / "sigstore-bundles"
PRODUCTION = CASES / "production-trusted_root.json"
IDENTITY = ("https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
            ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main")
ISSUER = "https://token.actions.githubusercontent.com"
ARTIFACT = bundle.Artifact.of((CASES / "a.txt").read_bytes()) if CASES.is_dir() else None


def _doc(case: str) -> dict[str, Any]:
    d: dict[str, Any] = json.loads((CASES / case / "bundle.sigstore.json").read_bytes())
    return d


def _root_doc(case: str | None = None) -> dict[str, Any]:
    path = CASES / case / "trusted_root.json" if case else PRODUCTION
    d: dict[str, Any] = json.loads(path.read_bytes())
    return d


def _verify(doc: dict[str, Any], root: dict[str, Any] | None = None, *,
            identity: str = IDENTITY, issuer: str = ISSUER) -> list[datetime]:
    assert ARTIFACT is not None
    tr = trustedroot.parse_trusted_root(json.dumps(root or _root_doc()).encode(), source="t")
    return bundle.verify_bundle(json.dumps(doc).encode(), ARTIFACT, tr, identity=identity,
                                issuer=issuer)


def _rejected(doc: dict[str, Any], root: dict[str, Any] | None = None, **kw: str) -> str:
    with pytest.raises(SignatureRejected) as e:
        _verify(doc, root, **kw)
    assert e.value.exit_code == 1
    return e.value.message


@pytest.mark.parametrize("case", ["happy-path-v0.3", "happy-path-v0.2"])
def test_a_fulcio_bundle_is_accepted_at_its_integrated_time(case: str) -> None:
    times = _verify(_doc(case))
    entry = _doc(case)["verificationMaterial"]["tlogEntries"][0]
    assert times == [datetime.fromtimestamp(int(entry["integratedTime"]), UTC)]


def test_a_rekor_v2_bundle_is_accepted_at_its_rfc3161_time() -> None:
    times = _verify(_doc("rekor2-happy-path"), _root_doc("rekor2-happy-path"))
    assert len(times) == 1 and times[0].year >= 2025


@pytest.mark.parametrize(("kw", "message"), [
    ({"identity": IDENTITY + "x"}, "the certificate's identity is not"),
    ({"identity": IDENTITY[:-1]}, "the certificate's identity is not"),
    ({"issuer": ISSUER + "/"}, f"the certificate's OIDC issuer is '{ISSUER}', not"),
    ({"issuer": "https://accounts.google.com"}, "OIDC issuer is"),
])
def test_identity_and_issuer_are_matched_exactly(kw: dict[str, str], message: str) -> None:
    assert message in _rejected(_doc("happy-path-v0.3"), **kw)


def test_a_chain_that_loops_is_refused() -> None:
    doc = _doc("happy-path-v0.2")
    certs = doc["verificationMaterial"]["x509CertificateChain"]["certificates"]
    certs.append(certs[0])
    assert "the bundle's certificate chain loops" in _rejected(doc)


def test_a_trusted_root_without_certificate_authorities_is_unusable() -> None:
    root = _root_doc()
    root["certificateAuthorities"] = []
    with pytest.raises(trustedroot.TrustedRootError, match="no certificate authorities") as e:
        _verify(_doc("happy-path-v0.3"), root)
    assert e.value.exit_code == 2


def test_the_ca_validity_window_is_honoured() -> None:
    entry = _doc("happy-path-v0.3")["verificationMaterial"]["tlogEntries"][0]
    t = datetime.fromtimestamp(int(entry["integratedTime"]), UTC)
    root = _root_doc()
    for ca in root["certificateAuthorities"]:
        ca["validFor"]["end"] = t.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert _verify(_doc("happy-path-v0.3"), root)              # the end is inclusive
    for ca in root["certificateAuthorities"]:
        ca["validFor"]["end"] = (t - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert "no certificate authority of the trusted root is valid" in _rejected(
        _doc("happy-path-v0.3"), root)


def test_an_unknown_ct_log_is_refused() -> None:
    root = _root_doc()
    for log in root["ctlogs"]:
        log["logId"]["keyId"] = base64.b64encode(b"\1" * 32).decode()
    assert "no SCT is from a CT log of the trusted root" in _rejected(_doc("happy-path-v0.3"),
                                                                      root)


def test_a_wrong_ct_log_key_is_refused() -> None:
    root = _root_doc()
    other = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    for log in root["ctlogs"]:
        log["publicKey"]["rawBytes"] = base64.b64encode(other).decode()
    assert "the SCT's signature does not verify" in _rejected(_doc("happy-path-v0.3"), root)


def test_an_rfc3161_timestamp_over_another_signature_gives_no_time() -> None:
    doc = _doc("rekor2-happy-path")
    stamps = _doc("rekor2-dsse-happy-path")["verificationMaterial"]["timestampVerificationData"]
    doc["verificationMaterial"]["timestampVerificationData"] = stamps
    msg = _rejected(doc, _root_doc("rekor2-happy-path"))
    assert "no verified signing time" in msg and "not over the bundle's signature" in msg


def _stamp(doc: dict[str, Any]) -> dict[str, Any]:
    s: dict[str, Any] = doc["verificationMaterial"]["timestampVerificationData"][
        "rfc3161Timestamps"][0]
    return s


def test_a_malformed_rfc3161_timestamp_gives_no_time() -> None:
    doc = _doc("rekor2-happy-path")
    _stamp(doc)["signedTimestamp"] = base64.b64encode(b"\x30\x03\x02\x01").decode()
    msg = _rejected(doc, _root_doc("rekor2-happy-path"))
    assert "malformed RFC 3161 timestamp" in msg


def test_the_timestamp_authority_window_is_honoured() -> None:
    root = _root_doc("rekor2-happy-path")
    for tsa in root["timestampAuthorities"]:
        tsa["validFor"]["start"] = "2099-01-01T00:00:00Z"
    msg = _rejected(_doc("rekor2-happy-path"), root)
    assert "no timestamp authority of the trusted root is valid at the timestamp's time" in msg


def test_a_key_is_not_enough_for_a_certificate_bundle() -> None:
    assert ARTIFACT is not None
    with pytest.raises(SignatureRejected, match="an identity and an OIDC issuer are required"):
        bundle.verify_bundle(json.dumps(_doc("happy-path-v0.3")).encode(), ARTIFACT,
                             trustedroot.load_trusted_root(PRODUCTION))


# --- a certificate without an SCT: our own CA, CT-less leaf and Rekor key ------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _spki(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def test_a_certificate_without_an_sct_is_refused() -> None:
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    ca_key, leaf_key, rekor = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = (x509.CertificateBuilder().subject_name(_name("ca")).issuer_name(_name("ca"))
          .public_key(ca_key.public_key()).serial_number(1)
          .not_valid_before(t0 - timedelta(days=1)).not_valid_after(t0 + timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    der_issuer = bytes([0x0C, len(ISSUER)]) + ISSUER.encode()
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(ca.subject)
            .public_key(leaf_key.public_key()).serial_number(2)
            .not_valid_before(t0).not_valid_after(t0 + timedelta(minutes=10))
            .add_extension(x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(IDENTITY)]), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]),
                           critical=False)
            .add_extension(x509.UnrecognizedExtension(
                x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8"), der_issuer), critical=False)
            .sign(ca_key, hashes.SHA256()))
    assert ARTIFACT is not None and ARTIFACT.data is not None
    sig = leaf_key.sign(ARTIFACT.data, ec.ECDSA(hashes.SHA256()))
    leaf_der = leaf.public_bytes(serialization.Encoding.DER)
    body = json.dumps({"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
        "data": {"hash": {"algorithm": "sha256", "value": ARTIFACT.sha256.hex()}},
        "signature": {"content": base64.b64encode(sig).decode(), "publicKey": {
            "content": base64.b64encode(leaf.public_bytes(
                serialization.Encoding.PEM)).decode()}}}}).encode()
    log_id = hashlib.sha256(_spki(rekor)).digest()
    when = int((t0 + timedelta(minutes=2)).timestamp())
    set_sig = rekor.sign(_json.canonical({
        "body": base64.b64encode(body).decode(), "integratedTime": when,
        "logID": log_id.hex(), "logIndex": 3}), ec.ECDSA(hashes.SHA256()))
    b64 = lambda d: base64.b64encode(d).decode()  # noqa: E731
    doc = {"mediaType": "application/vnd.dev.sigstore.bundle+json;version=0.1",
           "verificationMaterial": {
               "x509CertificateChain": {"certificates": [{"rawBytes": b64(leaf_der)}]},
               "tlogEntries": [{
                   "logIndex": "3", "logId": {"keyId": b64(log_id)},
                   "kindVersion": {"kind": "hashedrekord", "version": "0.0.1"},
                   "integratedTime": str(when),
                   "inclusionPromise": {"signedEntryTimestamp": b64(set_sig)},
                   "canonicalizedBody": b64(body)}]},
           "messageSignature": {"messageDigest": {"algorithm": "SHA2_256",
                                                  "digest": b64(ARTIFACT.sha256)},
                                "signature": b64(sig)}}
    window = {"start": (t0 - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")}
    root = {"mediaType": trustedroot.MEDIA_TYPES[0],
            "tlogs": [{"baseUrl": "https://rekor.test", "hashAlgorithm": "SHA2_256",
                       "publicKey": {"rawBytes": b64(_spki(rekor)), "validFor": window},
                       "logId": {"keyId": b64(log_id)}}],
            "certificateAuthorities": [{"uri": "https://fulcio.test", "validFor": window,
                                        "certChain": {"certificates": [
                                            {"rawBytes": b64(ca.public_bytes(
                                                serialization.Encoding.DER))}]}}],
            "ctlogs": [], "timestampAuthorities": []}
    assert "the certificate has no signed certificate timestamp" in _rejected(doc, root)
