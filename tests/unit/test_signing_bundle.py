"""verify_bundle on a real key-signed bundle (sigstore-conformance managed-key-happy-path),
with one field changed per test: each check fails with its own message."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from secpod.errors import SignatureRejected
from secpod.signing import bundle, keys, trustedroot

CASES = Path(__file__).resolve().parents[3] / "shared" / "conformance" / "sigstore-bundles"
CASE = CASES / "managed-key-happy-path"


def _inputs() -> tuple[dict[str, Any], bundle.Artifact, trustedroot.TrustedRoot,
                       keys.PublicKey]:
    doc = json.loads((CASE / "bundle.sigstore.json").read_bytes())
    root = trustedroot.load_trusted_root(CASES / "production-trusted_root.json")
    key = keys.load_public_key((CASE / "key.pub").read_bytes(), source="key.pub")
    return doc, bundle.Artifact.of((CASES / "a.txt").read_bytes()), root, key


def _verify(doc: dict[str, Any]) -> list[Any]:
    _, art, root, key = _inputs()
    return bundle.verify_bundle(json.dumps(doc).encode(), art, root, key=key)


def _entry(doc: dict[str, Any]) -> dict[str, Any]:
    e: dict[str, Any] = doc["verificationMaterial"]["tlogEntries"][0]
    return e


def _flip(b64: str) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[len(raw) // 2] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def test_the_happy_path_is_accepted() -> None:
    doc, *_ = _inputs()
    # two verified signing times: the log entry's and the RFC 3161 timestamp's
    assert len(_verify(doc)) == 2


def test_the_public_good_root_ships_with_secpod() -> None:
    root = trustedroot.load_trusted_root(None)
    assert root.tlogs and root.certificate_authorities


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: _entry(d)["inclusionPromise"].update(
        signedEntryTimestamp=_flip(_entry(d)["inclusionPromise"]["signedEntryTimestamp"])),
     "the signed entry timestamp does not verify"),
    (lambda d: _entry(d)["inclusionProof"]["hashes"].__setitem__(
        0, _flip(_entry(d)["inclusionProof"]["hashes"][0])),
     "the inclusion proof does not lead to the proof's root hash"),
    (lambda d: _entry(d).update(integratedTime=str(int(_entry(d)["integratedTime"]) + 1)),
     "the signed entry timestamp does not verify"),
    (lambda d: d["messageSignature"].update(signature=_flip(d["messageSignature"]["signature"])),
     "the signature in the log entry is not the bundle's signature"),
    (lambda d: d["messageSignature"]["messageDigest"].update(
        digest=_flip(d["messageSignature"]["messageDigest"]["digest"])),
     "the bundle's message digest does not match the artifact"),
    (lambda d: _entry(d)["logId"].update(keyId=base64.b64encode(b"\0" * 32).decode()),
     "a log the trusted root does not know"),
    (lambda d: _entry(d)["inclusionProof"]["checkpoint"].update(
        envelope=_entry(d)["inclusionProof"]["checkpoint"]["envelope"].replace(
            "\u2014 rekor.sigstore.dev wNI9a", "\u2014 rekor.sigstore.dev AAAAA")),
     "the checkpoint has no signature by the log"),
])
def test_each_check_fails_with_its_own_message(change: Any, message: str) -> None:
    doc, *_ = _inputs()
    change(doc)
    with pytest.raises(SignatureRejected, match=message):
        _verify(doc)


def test_another_artifact_is_rejected() -> None:
    doc, _, root, key = _inputs()
    with pytest.raises(SignatureRejected, match="the digest in the log entry is not the artifact's"):
        bundle.verify_bundle(json.dumps(doc).encode(), bundle.Artifact.of(b"other\n"), root,
                             key=key)


@pytest.mark.parametrize(("data", "message"), [
    (b'{"mediaType": "application/vnd.dev.sigstore.bundle.v9+json"}', "unknown bundle media"),
    (b"[" * 5000 + b"]" * 5000, "nested deeper than"),
    (b'{"a":' * 40 + b"1" + b"}" * 40, "nested deeper than"),
    (b"{", "not valid JSON"),
    (b" " * (bundle.MAX_BUNDLE + 1), "larger than"),
], ids=["media-type", "deep-array", "deep-object", "truncated", "too-large"])
def test_unusable_bundles_exit_2_with_one_error(data: bytes, message: str) -> None:
    _, art, root, key = _inputs()
    with pytest.raises(bundle.BundleFormatError, match=message) as info:
        bundle.verify_bundle(data, art, root, key=key)
    assert info.value.exit_code == 2


def test_a_negative_log_index_is_refused() -> None:
    doc, *_ = _inputs()
    _entry(doc)["logIndex"] = "-1"
    with pytest.raises(bundle.BundleFormatError, match="must not be negative"):
        _verify(doc)


def test_a_trusted_root_without_logs_is_refused() -> None:
    doc = json.loads((CASES / "production-trusted_root.json").read_bytes())
    doc["tlogs"] = []
    with pytest.raises(trustedroot.TrustedRootError, match="no transparency logs"):
        trustedroot.parse_trusted_root(json.dumps(doc).encode(), source="t.json")


def test_a_log_validity_window_needs_its_start_and_its_end_is_inclusive() -> None:
    doc = json.loads((CASES / "production-trusted_root.json").read_bytes())
    del doc["tlogs"][0]["publicKey"]["validFor"]["start"]
    with pytest.raises(trustedroot.TrustedRootError, match="missing required start"):
        trustedroot.parse_trusted_root(json.dumps(doc).encode(), source="t.json")
    bdoc, art, root, key = _inputs()
    t = int(_entry(bdoc)["integratedTime"])
    rdoc = json.loads((CASES / "production-trusted_root.json").read_bytes())
    from datetime import UTC, datetime
    end = datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    rdoc["tlogs"][0]["publicKey"]["validFor"]["end"] = end
    root = trustedroot.parse_trusted_root(json.dumps(rdoc).encode(), source="t.json")
    assert bundle.verify_bundle(json.dumps(bdoc).encode(), art, root, key=key)
    rdoc["tlogs"][0]["publicKey"]["validFor"]["end"] = datetime.fromtimestamp(
        t - 1, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    root = trustedroot.parse_trusted_root(json.dumps(rdoc).encode(), source="t.json")
    with pytest.raises(SignatureRejected, match="not valid at the entry's time"):
        bundle.verify_bundle(json.dumps(bdoc).encode(), art, root, key=key)
