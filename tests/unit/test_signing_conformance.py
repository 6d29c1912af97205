"""Every row of ../shared/conformance/containers-image-signatures/CASES.md, as a test.

The signatures were made by cosign and by GnuPG tools; each test builds the
row's policy as containers-policy.json text, parses it with secpod's strict
parser and evaluates the row's image under the row's claimed identity.

The corpus keeps git symlinks as small text files holding the link target
(``../image.manifest.json``); :func:`corpus_file` follows those inside the
corpus, as a checkout with symlinks would.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from secpod.signing import trust
from secpod.signing.identity import parse_named
from secpod.signing.policy import parse_policy

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "signing"
REKOR_PUB = ASSETS / "rekor.pub"


def corpus(shared: Path) -> Path:
    return shared / "conformance" / "containers-image-signatures"


def corpus_file(path: Path) -> Path:
    """Follow the corpus's text-file stand-ins for symlinks (within the corpus only)."""
    for _ in range(8):
        if not path.is_file() or path.stat().st_size > 256:
            return path
        text = path.read_bytes()
        if not text.startswith(b"../") or b"\n" in text:
            return path
        target = (path.parent / text.decode()).resolve()
        if not target.exists():
            return path
        path = target
    return path


def load_dir(shared: Path, name: str) -> tuple[bytes | None, list[bytes]]:
    d = corpus(shared) / name
    manifest = corpus_file(d / "manifest.json")
    sigs = []
    n = 1
    while (d / f"signature-{n}").exists():
        sigs.append(corpus_file(d / f"signature-{n}").read_bytes())
        n += 1
    return (manifest.read_bytes() if manifest.exists() else None), sigs


def evaluate(shared: Path, image_dir: str, identity: str, policy_doc: dict[str, Any], *,
             signatures: list[bytes] | None = None) -> trust.TrustDecision:
    manifest, sigs = load_dir(shared, image_dir)
    policy = parse_policy(json.dumps(policy_doc).encode(), source="test")
    return trust.decide(parse_named(identity), manifest, sigs if signatures is None
                        else signatures, policy=policy, policy_path=None)


def only(requirement: dict[str, Any]) -> dict[str, Any]:
    return {"default": [requirement]}


COSIGN_ID = "192.168.64.2:5000/cosign-signed-single-sample"
GPG_ID = "testing/manifest:latest"


def _sigstore(shared: Path, **fields: Any) -> dict[str, Any]:
    return only({"type": "sigstoreSigned", **fields})


def _key(shared: Path, name: str) -> str:
    return str(corpus(shared) / name)


def _data(shared: Path, name: str) -> str:
    return base64.b64encode((corpus(shared) / name).read_bytes()).decode()


def accepted(d: trust.TrustDecision) -> None:
    assert d.accepted, d.reasons


def rejected(d: trust.TrustDecision, why: str) -> None:
    assert not d.accepted
    assert why in d.reasons[0], d.reasons


# --- sigstoreSigned (cosign keys) -----------------------------------------------------


def test_cosign_valid_keypath_matchrepository(shared: Path) -> None:
    accepted(evaluate(shared, "dir-img-cosign-valid", COSIGN_ID, _sigstore(
        shared, keyPath=_key(shared, "cosign.pub"), signedIdentity={"type": "matchRepository"})))


@pytest.mark.parametrize("variant", ["keyPaths", "keyPaths-reversed", "keyData", "keyDatas"])
def test_cosign_valid_other_key_sources(shared: Path, variant: str) -> None:
    fields: dict[str, Any] = {
        "keyPaths": {"keyPaths": [_key(shared, "cosign2.pub"), _key(shared, "cosign.pub")]},
        "keyPaths-reversed": {"keyPaths": [_key(shared, "cosign.pub"),
                                           _key(shared, "cosign2.pub")]},
        "keyData": {"keyData": _data(shared, "cosign.pub")},
        "keyDatas": {"keyDatas": [_data(shared, "cosign2.pub"), _data(shared, "cosign.pub")]},
    }[variant]
    accepted(evaluate(shared, "dir-img-cosign-valid", COSIGN_ID, _sigstore(
        shared, **fields, signedIdentity={"type": "matchRepository"})))


def test_cosign_wrong_key(shared: Path) -> None:
    rejected(evaluate(shared, "dir-img-cosign-valid", COSIGN_ID, _sigstore(
        shared, keyPath=_key(shared, "cosign2.pub"), signedIdentity={"type": "matchRepository"})),
        "cryptographic signature verification failed")


def test_cosign_identity_exact_reference_mismatch(shared: Path) -> None:
    rejected(evaluate(shared, "dir-img-cosign-valid", COSIGN_ID, _sigstore(
        shared, keyPath=_key(shared, "cosign.pub"),
        signedIdentity={"type": "exactReference", "dockerReference": "this/does-not:match"})),
        f"signature for identity '{COSIGN_ID}' is not accepted")


def test_cosign_match_exact_refuses_repository_only_payload(shared: Path) -> None:
    rejected(evaluate(shared, "dir-img-cosign-valid", COSIGN_ID, _sigstore(
        shared, keyPath=_key(shared, "cosign.pub"), signedIdentity={"type": "matchExact"})),
        f"signature for identity '{COSIGN_ID}' is not accepted (matchExact")


def test_cosign_signature_annotation_replaced(shared: Path) -> None:
    _, sigs = load_dir(shared, "dir-img-cosign-valid")
    att = json.loads(sigs[0][len(b"\x00sigstore-json\n"):])
    att["annotations"]["dev.cosignproject.cosign/signature"] = base64.b64encode(
        b"invalid signature").decode()
    blob = b"\x00sigstore-json\n" + json.dumps(att).encode()
    rejected(evaluate(shared, "dir-img-cosign-valid", COSIGN_ID, _sigstore(
        shared, keyPath=_key(shared, "cosign.pub")), signatures=[blob]),
        "cryptographic signature verification failed")


def test_cosign_unknown_key_signature(shared: Path) -> None:
    blob = (corpus(shared) / "unknown-cosign-key.signature").read_bytes()
    rejected(evaluate(shared, "dir-img-cosign-valid", COSIGN_ID, _sigstore(
        shared, keyPath=_key(shared, "cosign.pub"), signedIdentity={"type": "matchRepository"}),
        signatures=[blob]), "cryptographic signature verification failed")


def test_cosign_modified_manifest(shared: Path) -> None:
    rejected(evaluate(shared, "dir-img-cosign-modified-manifest", COSIGN_ID, _sigstore(
        shared, keyPath=_key(shared, "cosign.pub"), signedIdentity={"type": "matchRepository"})),
        "signature for digest sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e59"
        "86a00 does not match the manifest")


def test_cosign_no_manifest(shared: Path) -> None:
    rejected(evaluate(shared, "dir-img-cosign-no-manifest", COSIGN_ID, _sigstore(
        shared, keyPath=_key(shared, "cosign.pub"), signedIdentity={"type": "matchRepository"})),
        "the image has no manifest to compare the signed digest with")


def test_cosign_manifest_digest_error(shared: Path) -> None:
    rejected(evaluate(shared, "dir-img-cosign-manifest-digest-error", COSIGN_ID, _sigstore(
        shared, keyPath=_key(shared, "cosign.pub"), signedIdentity={"type": "matchRepository"})),
        "cannot compute the digest of a Docker schema 1 signed manifest")


def test_cosign_with_tag_match_exact(shared: Path) -> None:
    accepted(evaluate(shared, "dir-img-cosign-valid-with-tag",
                      "192.168.64.2:5000/skopeo-signed:tag", _sigstore(
                          shared, keyPath=_key(shared, "cosign.pub"),
                          signedIdentity={"type": "matchExact"})))


def test_cosign_with_tag_other_tag(shared: Path) -> None:
    rejected(evaluate(shared, "dir-img-cosign-valid-with-tag",
                      "192.168.64.2:5000/skopeo-signed:othertag", _sigstore(
                          shared, keyPath=_key(shared, "cosign.pub"),
                          signedIdentity={"type": "matchExact"})),
             "signature for identity '192.168.64.2:5000/skopeo-signed:tag' is not accepted")


KEY_REKOR_ID = "192.168.64.2:5000/cosign-signed/key-1"


def test_cosign_key_with_rekor(shared: Path) -> None:
    # CASES.md names cosign.pub for this row, but the image was signed with cosign2.pub
    # (the key inside its Rekor entry; upstream's test uses cosign2.pub as well).
    accepted(evaluate(shared, "dir-img-cosign-key-rekor-valid", KEY_REKOR_ID, _sigstore(
        shared, keyPath=_key(shared, "cosign2.pub"), rekorPublicKeyPath=str(REKOR_PUB),
        signedIdentity={"type": "matchRepository"})))
    accepted(evaluate(shared, "dir-img-cosign-key-rekor-valid", KEY_REKOR_ID, _sigstore(
        shared, keyPaths=[_key(shared, "cosign.pub"), _key(shared, "cosign2.pub")],
        rekorPublicKeyPath=str(REKOR_PUB), signedIdentity={"type": "matchRepository"})))
    rejected(evaluate(shared, "dir-img-cosign-key-rekor-valid", KEY_REKOR_ID, _sigstore(
        shared, keyPath=_key(shared, "cosign.pub"), rekorPublicKeyPath=str(REKOR_PUB),
        signedIdentity={"type": "matchRepository"})),
        "no public key verified against the Rekor SET: the public key or certificate in the "
        "Rekor SET does not match")


def test_cosign_key_with_wrong_rekor_key(shared: Path) -> None:
    rejected(evaluate(shared, "dir-img-cosign-key-rekor-valid", KEY_REKOR_ID, _sigstore(
        shared, keyPath=_key(shared, "cosign2.pub"), rekorPublicKeyPath=_key(shared, "cosign.pub"),
        signedIdentity={"type": "matchRepository"})),
        "cryptographic signature verification of the Rekor SET failed")


def _fulcio_policy(shared: Path, **over: Any) -> dict[str, Any]:
    fulcio = {"caPath": _key(shared, "fulcio_v1.crt.pem"),
              "oidcIssuer": "https://github.com/login/oauth", "subjectEmail": "mitr@redhat.com"}
    fulcio.update(over)
    return _sigstore(shared, fulcio=fulcio, rekorPublicKeyPath=str(REKOR_PUB),
                     signedIdentity={"type": "matchRepository"})


FULCIO_ID = "192.168.64.2:5000/cosign-signed/fulcio-rekor-1"


def test_fulcio_rekor_valid(shared: Path) -> None:
    accepted(evaluate(shared, "dir-img-cosign-fulcio-rekor-valid", FULCIO_ID,
                      _fulcio_policy(shared)))


def test_fulcio_wrong_issuer_and_email(shared: Path) -> None:
    rejected(evaluate(shared, "dir-img-cosign-fulcio-rekor-valid", FULCIO_ID,
                      _fulcio_policy(shared, oidcIssuer="https://accounts.google.com")),
             "required OIDC issuer 'https://accounts.google.com', got "
             "'https://github.com/login/oauth'")
    rejected(evaluate(shared, "dir-img-cosign-fulcio-rekor-valid", FULCIO_ID,
                      _fulcio_policy(shared, subjectEmail="someone@example.com")),
             "required email 'someone@example.com' not found")


def test_fulcio_untrusted_ca(shared: Path) -> None:
    rejected(evaluate(shared, "dir-img-cosign-fulcio-rekor-valid", FULCIO_ID,
                      _fulcio_policy(shared, caPath=_key(shared, "pki_root_crts.pem"))),
             "the signing certificate does not chain to a trusted root")


def _pki_policy(shared: Path, **over: Any) -> dict[str, Any]:
    pki = {"caRootsPath": _key(shared, "pki_root_crts.pem"),
           "caIntermediatesPath": _key(shared, "pki_intermediate_crts.pem"),
           "subjectEmail": "qiwan@redhat.com", "subjectHostname": "myhost.example.com"}
    pki.update(over)
    return _sigstore(shared, pki=pki, signedIdentity={"type": "matchRepository"})


def test_pki_valid(shared: Path) -> None:
    accepted(evaluate(shared, "dir-img-cosign-pki-valid", "localhost:5000/test",
                      _pki_policy(shared)))


def test_pki_without_certificate_annotation(shared: Path) -> None:
    _, sigs = load_dir(shared, "dir-img-cosign-pki-valid")
    att = json.loads(sigs[0][len(b"\x00sigstore-json\n"):])
    del att["annotations"]["dev.sigstore.cosign/certificate"]
    blob = b"\x00sigstore-json\n" + json.dumps(att).encode()
    rejected(evaluate(shared, "dir-img-cosign-pki-valid", "localhost:5000/test",
                      _pki_policy(shared), signatures=[blob]),
             "missing dev.sigstore.cosign/certificate annotation")


def test_pki_wrong_subject(shared: Path) -> None:
    rejected(evaluate(shared, "dir-img-cosign-pki-valid", "localhost:5000/test",
                      _pki_policy(shared, subjectHostname="other.example.com")),
             "the certificate is not valid for host 'other.example.com'")


@pytest.mark.parametrize(("image_dir", "why"), [
    ("dir-img-unsigned", "a signature was required, but no signature exists"),
    ("dir-img-valid", "a signature was required, but no signature exists (1 non-sigstore "
                      "signatures, 0 sigstore non-signature attachments)"),
    ("dir-img-cosign-other-attachment", "a signature was required, but no signature exists "
                                        "(0 non-sigstore signatures, 1 sigstore non-signature "
                                        "attachments)"),
])
def test_sigstore_without_sigstore_signature(shared: Path, image_dir: str, why: str) -> None:
    rejected(evaluate(shared, image_dir, GPG_ID, _sigstore(
        shared, keyPath=_key(shared, "cosign.pub"))), why)


def test_cosign_mixed_one_good_signature_is_enough(shared: Path) -> None:
    accepted(evaluate(shared, "dir-img-cosign-mixed", COSIGN_ID, _sigstore(
        shared, keyPath=_key(shared, "cosign.pub"), signedIdentity={"type": "matchRepository"})))


# --- signedBy (GPG simple signing) ------------------------------------------------------


def _gpg(shared: Path, **fields: Any) -> dict[str, Any]:
    return only({"type": "signedBy", "keyType": "GPGKeys", **fields})


def test_gpg_valid(shared: Path) -> None:
    d = evaluate(shared, "dir-img-valid", GPG_ID, _gpg(
        shared, keyPath=_key(shared, "public-key.gpg"),
        signedIdentity={"type": "matchRepoDigestOrExact"}))
    accepted(d)
    assert "08CD26E446E2E95249B7A405E932F44B23E8DD43" in d.reasons[0]


def test_gpg_key_paths(shared: Path) -> None:
    accepted(evaluate(shared, "dir-img-valid", GPG_ID, _gpg(
        shared, keyPaths=[_key(shared, "public-key-2.gpg"), _key(shared, "public-key-1.gpg")])))


def test_gpg_exact_reference_of_another_image(shared: Path) -> None:
    rejected(evaluate(shared, "dir-img-valid", GPG_ID, _gpg(
        shared, keyPath=_key(shared, "public-key.gpg"),
        signedIdentity={"type": "exactReference", "dockerReference": "docker.io/other/image:1"})),
        "signature for identity 'testing/manifest:latest' is not accepted")


@pytest.mark.parametrize(("signature", "why"), [
    ("unknown-key.signature", "signature by unknown key 5F9470E3BC6C3B55"),
    ("invalid-blob.signature", "invalid signature payload: $: signature payload is not valid "
                               "JSON"),
    ("expired.signature", "the GPG signature has expired"),
    ("corrupt.signature", "the GPG signature is invalid (BADSIG)"),
    ("unsigned-literal.signature", "unexpected GPG signature count 0"),
    ("unsigned-encrypted.signature", "the GPG message is encrypted, not signed"),
])
def test_gpg_bad_signatures(shared: Path, signature: str, why: str) -> None:
    blob = (corpus(shared) / signature).read_bytes()
    rejected(evaluate(shared, "dir-img-valid", GPG_ID, _gpg(
        shared, keyPath=_key(shared, "public-key.gpg")), signatures=[blob]), why)


def test_gpg_modified_manifest(shared: Path) -> None:
    rejected(evaluate(shared, "dir-img-modified-manifest", GPG_ID, _gpg(
        shared, keyPath=_key(shared, "public-key.gpg"))),
        "signature for digest sha256:20bf21ed457b390829cdbeec8795a7bea1626991fda603e0d01b4e7f6042"
        "7e55 does not match the manifest")


def test_gpg_no_manifest(shared: Path) -> None:
    rejected(evaluate(shared, "dir-img-no-manifest", GPG_ID, _gpg(
        shared, keyPath=_key(shared, "public-key.gpg"))),
        "the image has no manifest to compare the signed digest with")


def test_gpg_subkey_and_revoked_subkey(shared: Path) -> None:
    accepted(evaluate(shared, "dir-img-valid-subkey", GPG_ID, _gpg(
        shared, keyPath=_key(shared, "public-key-with-subkey.gpg"))))
    blob = (corpus(shared) / "subkey-revoked.signature").read_bytes()
    d = evaluate(shared, "dir-img-valid", GPG_ID, _gpg(
        shared, keyPath=_key(shared, "public-key-with-revoked-subkey.gpg")), signatures=[blob])
    assert not d.accepted


def test_gpg_mixed_one_good_signature_is_enough(shared: Path) -> None:
    accepted(evaluate(shared, "dir-img-mixed", GPG_ID, _gpg(
        shared, keyPath=_key(shared, "public-key.gpg"))))


def test_gpg_policy_ignores_sigstore_signatures(shared: Path) -> None:
    rejected(evaluate(shared, "dir-img-cosign-valid", COSIGN_ID, _gpg(
        shared, keyPath=_key(shared, "public-key.gpg"))),
        "a signature was required, but no GPG signature exists")


def test_corpus_policy_json_parses(shared: Path) -> None:
    policy = parse_policy((corpus(shared) / "policy.json").read_bytes(), source="policy.json")
    scopes = policy.transports["docker"]
    assert scopes["example.com/playground"][0].type == "insecureAcceptAnything"
    assert scopes["private-mirror:5000/vendor-mirror"][0].signed_identity.type == "remapIdentity"
