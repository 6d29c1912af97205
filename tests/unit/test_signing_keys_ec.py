"""Public keys: OpenSSL (through _openssl) reads the keys cryptography reads, and writes
the same PEM."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from secpod.errors import KeyFormatError
from secpod.signing import keys

CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def _pem(der: bytes) -> bytes:
    body = base64.encodebytes(der).decode().replace("\n", "")
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return ("-----BEGIN PUBLIC KEY-----\n" + "\n".join(lines)
            + "\n-----END PUBLIC KEY-----\n").encode()


def _der(key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey
         | dsa.DSAPublicKey | ed448.Ed448PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1()])
def test_named_curve_keys_read_as_cryptography_reads_them(curve: ec.EllipticCurve) -> None:
    public = ec.generate_private_key(curve).public_key()
    got = keys.load_public_key(_pem(_der(public)), source="k.pub")
    assert got.info.algorithm == "EC"
    assert got.info.curve == CURVES[curve.name]
    assert got.info.bits == curve.key_size
    assert keys.public_key_der(got) == _der(public)
    assert keys.public_key_pem(got) == public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_a_point_off_the_curve_is_refused() -> None:
    der = bytearray(_der(ec.generate_private_key(ec.SECP256R1()).public_key()))
    der[-1] ^= 1  # y no longer fits x
    with pytest.raises(KeyFormatError, match=r"k\.pub: the public key cannot be parsed"):
        keys.load_public_key(_pem(bytes(der)), source="k.pub")


def test_other_encodings_and_key_types() -> None:
    compressed = ec.generate_private_key(ec.SECP256R1()).public_key()
    point = compressed.public_bytes(serialization.Encoding.X962,
                                    serialization.PublicFormat.CompressedPoint)
    # SubjectPublicKeyInfo with a compressed point: a different length, same algorithm.
    short = bytes.fromhex("3039301306072a8648ce3d020106082a8648ce3d030107032200") + point
    assert keys.load_public_key(_pem(short), source="c.pub").info.curve == "P-256"
    rsa_public = rsa.generate_private_key(65537, 2048).public_key()
    got = keys.load_public_key(_pem(_der(rsa_public)), source="r.pub")
    assert (got.info.algorithm, got.info.bits, got.der) == ("RSA", 2048, _der(rsa_public))
    ed = ed25519.Ed25519PrivateKey.generate().public_key()
    got = keys.load_public_key(_pem(_der(ed)), source="e.pub")
    assert (got.info.algorithm, got.der) == ("Ed25519", _der(ed))
    with pytest.raises(KeyFormatError, match="cannot be parsed"):
        keys.load_public_key(_pem(b"\x30\x03\x02\x01\x00"), source="x.pub")


@pytest.mark.parametrize(("public", "kind"), [
    (ed448.Ed448PrivateKey.generate().public_key(), "Ed448"),
    (dsa.generate_private_key(2048).public_key(), "DSA 2048"),
])
def test_keys_secpod_does_not_verify_with_are_refused_by_name(
        public: dsa.DSAPublicKey | ed448.Ed448PublicKey, kind: str) -> None:
    with pytest.raises(KeyFormatError) as e:
        keys.load_public_key(_pem(_der(public)), source="o.pub")
    assert e.value.message == f"o.pub: unsupported public key type {kind}"
    assert e.value.hint == "secpod verifies ECDSA, RSA and Ed25519 keys"


def test_trailing_bytes_after_the_key_are_refused() -> None:
    der = _der(ec.generate_private_key(ec.SECP256R1()).public_key())
    with pytest.raises(KeyFormatError) as e:
        keys.load_public_key(_pem(der + b"\x00"), source="t.pub")
    assert e.value.message == ("t.pub: the public key cannot be parsed: trailing data after "
                               "the SubjectPublicKeyInfo")
