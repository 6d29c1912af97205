"""Public keys: the ECDSA fast path reads exactly what cryptography's DER parser reads."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from secpod.errors import KeyFormatError
from secpod.signing import keys


def _pem(der: bytes) -> bytes:
    body = base64.encodebytes(der).decode().replace("\n", "")
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return ("-----BEGIN PUBLIC KEY-----\n" + "\n".join(lines)
            + "\n-----END PUBLIC KEY-----\n").encode()


def _der(key: keys.PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1()])
def test_named_curve_keys_read_as_cryptography_reads_them(curve: ec.EllipticCurve) -> None:
    public = ec.generate_private_key(curve).public_key()
    got = keys.load_public_key(_pem(_der(public)), source="k.pub")
    assert isinstance(got, ec.EllipticCurvePublicKey)
    assert got.curve.name == curve.name
    assert got.public_numbers() == public.public_numbers()
    assert keys.public_key_der(got) == _der(public)


def test_a_point_off_the_curve_is_refused() -> None:
    der = bytearray(_der(ec.generate_private_key(ec.SECP256R1()).public_key()))
    der[-1] ^= 1  # y no longer fits x
    with pytest.raises(KeyFormatError, match=r"k\.pub: the public key cannot be parsed"):
        keys.load_public_key(_pem(bytes(der)), source="k.pub")


def test_other_keys_take_the_full_parser() -> None:
    compressed = ec.generate_private_key(ec.SECP256R1()).public_key()
    der = compressed.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    point = compressed.public_bytes(serialization.Encoding.X962,
                                    serialization.PublicFormat.CompressedPoint)
    # SubjectPublicKeyInfo with a compressed point: a different length, same algorithm.
    short = bytes.fromhex("3039301306072a8648ce3d020106082a8648ce3d030107032200") + point
    assert _der(keys.load_public_key(_pem(short), source="c.pub")) == der
    assert _der(keys.load_public_key(_pem(der), source="c.pub")) == der
    for other in (rsa.generate_private_key(65537, 2048).public_key(),
                  ed25519.Ed25519PrivateKey.generate().public_key()):
        assert _der(keys.load_public_key(_pem(_der(other)), source="o.pub")) == _der(other)
    with pytest.raises(KeyFormatError, match="cannot be parsed"):
        keys.load_public_key(_pem(b"\x30\x03\x02\x01\x00"), source="x.pub")
