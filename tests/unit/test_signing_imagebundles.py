"""Sigstore bundles for images: pull's screen, the settings beside the policy, and the
``sigstoreSigned`` requirement over bundles (one change per failure case)."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from secpod.errors import MalformedInput, SignatureRejected, TrustPolicyError
from secpod.images.reference import parse
from secpod.signing import add_signature, imagebundles, sign_sigstore, trust
from secpod.signing.bundle import BundleFormatError
from secpod.signing.policy import parse_policy
from secpod.signing.store import add_bundle, bundles_for, signatures_for

MANIFEST = b'{"schemaVersion":2,"config":{}}'
DIGEST = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()
OTHER = "sha256:" + "1" * 64
REPO = "127.0.0.1:5000/app"
REF = parse(REPO + ":1")


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def _policy(home: Path, key: ec.EllipticCurvePrivateKey, settings: object | None) -> Path:
    pub = home / "key.pub"
    pub.write_bytes(_pem(key))
    path = home / "policy.json"
    path.write_text(json.dumps({"default": [{"type": "reject"}], "transports": {"docker": {
        REPO: [{"type": "sigstoreSigned", "keyPath": str(pub)}]}}}))
    if settings is not None:
        (home / "policy.bundles.json").write_text(json.dumps(settings))
    return path


def _decide(path: Path, bundles: list[bytes], signatures: list[bytes] | None = None
            ) -> trust.TrustDecision:
    return trust.decide(REF, MANIFEST, signatures or [], bundles=bundles,
                        policy=parse_policy(path.read_bytes(), source=str(path)),
                        policy_path=path)


OPT_IN = {"scopes": {REPO: {"acceptDigestOnly": True, "allowNoLog": True}}}


def test_a_bundle_by_the_key_is_accepted_with_both_opt_ins(home: Path) -> None:
    key = _key()
    b = imagebundles.make_bundle(key, DIGEST, REPO)
    d = _decide(_policy(home, key, OPT_IN), [b])
    assert d.accepted, d.reasons
    assert d.reasons[0].startswith(f"sigstoreSigned: bundle {imagebundles.bundle_name(b)} by key")
    assert d.evidence == ({"kind": "bundle", "digest": imagebundles.bundle_name(b),
                           "verdict": "accepted", "signer": d.evidence[0]["signer"],
                           "scope": REPO, "no_log": True,
                           "predicate_type": "https://sigstore.dev/cosign/sign/v1"},)


def test_digest_only_is_refused_by_default_naming_the_opt_in(home: Path) -> None:
    key = _key()
    d = _decide(_policy(home, key, None), [imagebundles.make_bundle(key, DIGEST, REPO)])
    assert not d.accepted
    assert "acceptDigestOnly" in d.reasons[0] and "policy.bundles.json" in d.reasons[0]
    assert d.evidence[0]["verdict"] == "rejected"


def test_no_log_is_refused_unless_allowed(home: Path) -> None:
    key = _key()
    d = _decide(_policy(home, key, {"scopes": {REPO: {"acceptDigestOnly": True}}}),
                [imagebundles.make_bundle(key, DIGEST, REPO)])
    assert not d.accepted
    assert "no transparency-log entry" in d.reasons[0] and "allowNoLog" in d.reasons[0]


def test_the_wrong_key_a_tampered_bundle_and_another_digest_are_refused(home: Path) -> None:
    key = _key()
    path = _policy(home, key, OPT_IN)
    wrong = _decide(path, [imagebundles.make_bundle(_key(), DIGEST, REPO)])
    assert not wrong.accepted and "DSSE envelope's signature does not verify" in wrong.reasons[0]
    doc = json.loads(imagebundles.make_bundle(key, DIGEST, REPO))
    stmt = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    stmt["predicate"] = {"changed": True}
    doc["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(stmt).encode()).decode()
    tampered = _decide(path, [json.dumps(doc).encode()])
    assert not tampered.accepted and "does not verify" in tampered.reasons[0]
    other = _decide(path, [imagebundles.make_bundle(key, OTHER, REPO)])
    assert not other.accepted
    assert "not a subject of the in-toto statement" in other.reasons[0]


def test_a_scope_elsewhere_does_not_opt_in(home: Path) -> None:
    key = _key()
    path = _policy(home, key, {"scopes": {"127.0.0.1:5000/other": {"acceptDigestOnly": True,
                                                                   "allowNoLog": True}}})
    d = _decide(path, [imagebundles.make_bundle(key, DIGEST, REPO)])
    assert not d.accepted and "acceptDigestOnly" in d.reasons[0]


def test_a_signature_still_decides_first_and_is_named(home: Path) -> None:
    key = _key()
    path = _policy(home, key, None)
    sig = sign_sigstore(key, REPO + ":1", DIGEST)
    d = _decide(path, [imagebundles.make_bundle(key, DIGEST, REPO)], [sig])
    assert d.accepted
    assert d.evidence[0]["kind"] == "signature"
    assert d.evidence[0]["digest"] == "sha256:" + hashlib.sha256(sig).hexdigest()


def test_malformed_settings_name_the_field(home: Path) -> None:
    key = _key()
    path = _policy(home, key, {"scopes": {REPO: {"acceptDigestOnly": "yes"}}})
    with pytest.raises(TrustPolicyError, match=r"acceptDigestOnly.*true or false"):
        _decide(path, [imagebundles.make_bundle(key, DIGEST, REPO)])
    (home / "policy.bundles.json").write_text('{"trustRoot": "x"}')
    with pytest.raises(TrustPolicyError, match="trustRoot"):
        _decide(path, [imagebundles.make_bundle(key, DIGEST, REPO)])


def test_screen_keeps_only_bundles_for_the_digest() -> None:
    key = _key()
    b = imagebundles.make_bundle(key, DIGEST, REPO)
    assert imagebundles.screen(b, DIGEST).dsse_payload is not None
    with pytest.raises(SignatureRejected, match=f"subject is not {OTHER}"):
        imagebundles.screen(b, OTHER)
    with pytest.raises(BundleFormatError, match="malformed bundle"):
        imagebundles.screen(b"{not json", DIGEST)
    doc = json.loads(b)
    doc["mediaType"] = "application/vnd.dev.sigstore.bundle.v9+json"
    with pytest.raises(BundleFormatError, match="unknown bundle media type"):
        imagebundles.screen(json.dumps(doc).encode(), DIGEST)
    with pytest.raises(BundleFormatError, match="larger than"):
        imagebundles.screen(b" " * (17 << 20), DIGEST)


def test_the_statement_cosign_3_writes() -> None:
    b = json.loads(imagebundles.make_bundle(_key(), DIGEST, REPO))
    assert b["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert b["verificationMaterial"]["tlogEntries"] == []
    env = b["dsseEnvelope"]
    assert env["payloadType"] == "application/vnd.in-toto+json"
    stmt = json.loads(base64.b64decode(env["payload"]))
    assert stmt["predicateType"] == "https://sigstore.dev/cosign/sign/v1"
    assert stmt["subject"] == [{"name": REPO, "digest": {"sha256": DIGEST[7:]}}]


def test_bundles_are_stored_beside_signatures(home: Path) -> None:
    assert bundles_for(DIGEST) == []
    first = add_bundle(DIGEST, b'{"a":1}')
    assert first.name == "bundle-1" and add_bundle(DIGEST, b'{"a":1}') == first
    add_signature(DIGEST, b"sig")
    assert bundles_for(DIGEST) == [b'{"a":1}'] and signatures_for(DIGEST) == [b"sig"]
    with pytest.raises(MalformedInput):
        add_bundle(DIGEST, b"")


# --- the conformance bundles through the policy ------------------------------------------
# A conformance bundle signs a.txt; here a.txt stands for the image's manifest, so the
# requirement's path (settings, trusted root, key or Fulcio identity) runs on real,
# logged bundles.

REKOR_PUB = Path(__file__).resolve().parent.parent / "assets" / "signing" / "rekor.pub"
IDENTITY = ("https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
            ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main")
ISSUER = "https://token.actions.githubusercontent.com"


def _conformance(home: Path, shared: Path, case: str, requirement: dict[str, object],
                 root: Path) -> trust.TrustDecision:
    cases = shared / "conformance" / "sigstore-bundles"
    path = home / "policy.json"
    path.write_text(json.dumps({"default": [requirement]}))
    (home / "policy.bundles.json").write_text(json.dumps({
        "trustedRoot": str(root), "scopes": {REPO: {"acceptDigestOnly": True}}}))
    return trust.decide(REF, (cases / "a.txt").read_bytes(), [],
                        bundles=[(cases / case / "bundle.sigstore.json").read_bytes()],
                        policy=parse_policy(path.read_bytes(), source=str(path)),
                        policy_path=path)


def test_a_logged_key_bundle_with_its_trusted_root(home: Path, shared: Path) -> None:
    case = shared / "conformance" / "sigstore-bundles" / "managed-key-and-trusted-root"
    req = {"type": "sigstoreSigned", "keyPath": str(case / "key.pub")}
    d = _conformance(home, shared, case.name, req, case / "trusted_root.json")
    assert d.accepted, d.reasons
    # The same bundle against the public-good root: its log is not there.
    prod = shared / "conformance" / "sigstore-bundles" / "production-trusted_root.json"
    d = _conformance(home, shared, case.name, req, prod)
    assert not d.accepted and "a log the trusted root does not know" in d.reasons[0]


def test_a_fulcio_bundle_by_identity_and_issuer(home: Path, shared: Path) -> None:
    cases = shared / "conformance" / "sigstore-bundles"
    prod = cases / "production-trusted_root.json"
    root = json.loads(prod.read_text())
    ca_der = base64.b64decode(root["certificateAuthorities"][-1]["certChain"]["certificates"]
                              [-1]["rawBytes"])
    ca = home / "fulcio.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(ca_der).decode()
                  + "-----END CERTIFICATE-----\n")

    def req(email: str) -> dict[str, object]:
        return {"type": "sigstoreSigned", "rekorPublicKeyPath": str(REKOR_PUB),
                "fulcio": {"caPath": str(ca), "oidcIssuer": ISSUER, "subjectEmail": email}}

    d = _conformance(home, shared, "happy-path-v0.3", req(IDENTITY), prod)
    assert d.accepted, d.reasons
    assert d.evidence[0]["signer"] == f"Fulcio identity {IDENTITY} ({ISSUER})"
    wrong = _conformance(home, shared, "happy-path-v0.3", req("someone@example.com"), prod)
    assert not wrong.accepted and "identity" in wrong.reasons[0]


SLSA1 = "https://slsa.dev/provenance/v1"


def test_an_attestation_is_not_an_image_signature_nor_the_reverse(home: Path) -> None:
    key = _key()
    path = _policy(home, key, OPT_IN)
    provenance = imagebundles.make_bundle(key, DIGEST, REPO, predicate_type=SLSA1,
                                          predicate={"buildDefinition": {}})
    as_signature = _decide(path, [provenance])
    assert not as_signature.accepted
    assert f"predicate type is {SLSA1!r}: not an image signature" in as_signature.reasons[0]
    signature = imagebundles.make_bundle(key, DIGEST, REPO)
    d = trust.decide(REF, MANIFEST, [], bundles=[signature, provenance],
                     policy=parse_policy(path.read_bytes(), source=str(path)),
                     policy_path=path, attestation=imagebundles.predicate_type("slsaprovenance1"))
    assert d.accepted, d.reasons
    assert d.as_dict()["attestation"] == SLSA1
    assert [e["verdict"] for e in d.evidence] == ["rejected", "accepted"]
    assert d.evidence[1]["predicate_type"] == SLSA1
    sbom = trust.decide(REF, MANIFEST, [sign_sigstore(key, REPO + ":1", DIGEST)],
                        bundles=[signature, provenance],
                        policy=parse_policy(path.read_bytes(), source=str(path)),
                        policy_path=path, attestation=imagebundles.predicate_type("spdxjson"))
    assert not sbom.accepted  # a simple signature is no attestation either
    assert all("not an attestation of that type" in r for r in sbom.reasons[0].split("; "))


def test_an_attestation_needs_a_sigstore_requirement(home: Path) -> None:
    key = _key()
    path = home / "policy.json"
    path.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    d = trust.decide(REF, MANIFEST, [], bundles=[imagebundles.make_bundle(
        key, DIGEST, REPO, predicate_type=SLSA1)], attestation=SLSA1,
        policy=parse_policy(path.read_bytes(), source=str(path)), policy_path=path)
    assert not d.accepted and "name no sigstoreSigned" in d.reasons[0]


def test_attestation_type_names() -> None:
    from secpod.errors import UsageError

    assert imagebundles.predicate_type("cyclonedx") == "https://cyclonedx.org/bom"
    assert imagebundles.predicate_type("https://example.com/p/v1") == "https://example.com/p/v1"
    with pytest.raises(UsageError, match="unknown attestation type 'sbom'"):
        imagebundles.predicate_type("sbom")


def test_an_unusable_trusted_root_is_unusable_input_not_a_rejection(home: Path,
                                                                     shared: Path) -> None:
    from secpod.signing.trustedroot import TrustedRootError

    case = shared / "conformance" / "sigstore-bundles" / "managed-key-and-trusted-root"
    req = {"type": "sigstoreSigned", "keyPath": str(case / "key.pub")}
    with pytest.raises(TrustedRootError, match="cannot read the trusted root") as e:
        _conformance(home, shared, case.name, req, home / "missing.json")
    assert e.value.exit_code == 2


def _pki(email: str) -> tuple[object, ec.EllipticCurvePrivateKey, bytes]:
    """An organisation's CA (PEM) and a leaf for ``email``, valid now."""
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Example Org CA")])
    ca = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
          .public_key(ca_key.public_key()).serial_number(1)
          .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, key_cert_sign=True, crl_sign=True,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(name)
            .public_key(leaf_key.public_key()).serial_number(2)
            .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_bundle = json.loads(imagebundles.make_bundle(leaf_key, DIGEST, REPO))
    cert_bundle["verificationMaterial"] = {
        "certificate": {"rawBytes": base64.b64encode(
            leaf.public_bytes(serialization.Encoding.DER)).decode()}, "tlogEntries": []}
    return ca.public_bytes(serialization.Encoding.PEM), leaf_key, json.dumps(
        cert_bundle).encode()


def test_a_pki_certificate_bundle_by_the_policys_roots(home: Path) -> None:
    ca_pem, _, signed = _pki("release@example.com")
    other_ca, _, _ = _pki("release@example.com")
    path = home / "policy.json"

    def decide(ca: object, email: str) -> trust.TrustDecision:
        assert isinstance(ca, bytes)
        (home / "ca.pem").write_bytes(ca)
        path.write_text(json.dumps({"default": [{"type": "sigstoreSigned", "pki": {
            "caRootsPath": str(home / "ca.pem"), "subjectEmail": email}}]}))
        (home / "policy.bundles.json").write_text(json.dumps(OPT_IN))
        return trust.decide(REF, MANIFEST, [], bundles=[signed], policy_path=path,
                            policy=parse_policy(path.read_bytes(), source=str(path)))

    ok = decide(ca_pem, "release@example.com")
    assert ok.accepted, ok.reasons
    assert ok.evidence[0]["signer"] == "pki certificate for release@example.com"
    wrong_email = decide(ca_pem, "someone@example.com")
    assert not wrong_email.accepted and "someone@example.com" in wrong_email.reasons[0]
    wrong_ca = decide(other_ca, "release@example.com")
    assert not wrong_ca.accepted and "chain" in wrong_ca.reasons[0].lower()
