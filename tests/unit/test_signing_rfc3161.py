"""RFC 3161 timestamps go through the system's libcrypto: the timestamp authority's
certificate is read from its DER (validity, key) exactly as ``cryptography`` reads it,
and its signature is checked by secpod.signing._openssl."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from secpod.errors import SignatureRejected
from secpod.signing import _rfc3161, trustedroot

CASES = Path(__file__).resolve().parents[3] / "shared" / "conformance" / "sigstore-bundles"


def _roots() -> list[Path]:
    return sorted([*CASES.glob("*/trusted_root.json"), CASES / "production-trusted_root.json"])


def _ders(root: Path) -> list[bytes]:
    doc = json.loads(root.read_bytes())
    return [base64.b64decode(c["rawBytes"]) for group in ("timestampAuthorities",
                                                          "certificateAuthorities")
            for a in doc.get(group, []) for c in a["certChain"]["certificates"]]


def test_every_conformance_certificate_reads_as_cryptography_reads_it() -> None:
    ders = {d for root in _roots() for d in _ders(root)}
    assert len(ders) >= 5, "../shared/conformance/sigstore-bundles is missing"
    for der in ders:
        cert = x509.load_der_x509_certificate(der)
        spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
        assert _rfc3161._certificate(der) == (cert.not_valid_before_utc,
                                              cert.not_valid_after_utc, spki)


def _self_signed(not_before: datetime, not_after: datetime,
                 key: ec.EllipticCurvePrivateKey | None = None) -> bytes:
    key = key or ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tsa")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(7)
            .not_valid_before(not_before).not_valid_after(not_after)
            .sign(key, hashes.SHA384()))
    return cert.public_bytes(serialization.Encoding.DER)


def test_utc_and_generalized_times_both_read() -> None:
    # RFC 5280: UTCTime through 2049, GeneralizedTime from 2050 on; 19xx for 50-99.
    t0 = datetime(1999, 12, 31, 23, 59, 58, tzinfo=UTC)
    t1 = datetime(2051, 1, 2, 3, 4, 5, tzinfo=UTC)
    nb, na, _ = _rfc3161._certificate(_self_signed(t0, t1))
    assert (nb, na) == (t0, t1)


def test_a_truncated_or_trailing_certificate_is_no_authority() -> None:
    der = _self_signed(datetime(2020, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC))
    for bad in (der[:-1], der + b"\x00", b"\x30\x00"):
        with pytest.raises((ValueError, IndexError)):
            _rfc3161._certificate(bad)


def test_the_certificate_window_and_the_signature_hash_decide() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    t = datetime(2026, 6, 1, 12, tzinfo=UTC)
    der = _self_signed(t - timedelta(days=1), t + timedelta(days=1), key)

    def token(at: datetime, hash_name: str) -> _rfc3161._Token:
        return _rfc3161._Token(
            tstinfo=b"", imprint_hash="sha256", imprint=b"", gen_time=at,
            digest_hash="sha256", signed_attrs=b"attributes", message_digest=b"",
            signature_hash=hash_name,
            signature=key.sign(b"attributes", ec.ECDSA(hashes.SHA384())))

    assert _rfc3161._verify_with(der, token(t, "sha384"))
    assert _rfc3161._verify_with(der, token(t + timedelta(days=1), "sha384"))  # inclusive
    assert not _rfc3161._verify_with(der, token(t + timedelta(days=1, seconds=1), "sha384"))
    assert not _rfc3161._verify_with(der, token(t - timedelta(days=2), "sha384"))
    assert not _rfc3161._verify_with(der, token(t, "sha256"))


def _stamp(case: str) -> tuple[bytes, bytes]:
    doc = json.loads((CASES / case / "bundle.sigstore.json").read_bytes())
    stamp = doc["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"][0]
    sig = doc["messageSignature"]["signature"]
    return base64.b64decode(stamp["signedTimestamp"]), base64.b64decode(sig)


def test_the_authority_signature_and_its_certificate_window_decide() -> None:
    stamp, sig = _stamp("managed-key-happy-path")
    root_path = CASES / "production-trusted_root.json"
    t = _rfc3161.verify_timestamp(stamp, sig, trustedroot.load_trusted_root(root_path))
    assert t.tzinfo is UTC
    doc = json.loads(root_path.read_bytes())
    tsa = doc["timestampAuthorities"][0]
    # another certificate of the right window: its key did not sign the token
    other = _self_signed(t - timedelta(days=1), t + timedelta(days=1))
    tsa["certChain"]["certificates"][0]["rawBytes"] = base64.b64encode(other).decode()
    with pytest.raises(SignatureRejected, match="not signed by a timestamp authority"):
        _rfc3161.verify_timestamp(stamp, sig, trustedroot.parse_trusted_root(
            json.dumps(doc).encode(), source="test"))
