"""Public keys: OpenSSL (through _openssl) reads the keys cryptography reads, and writes
the same PEM."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from secpod.errors import KeyFormatError
from secpod.signing import _openssl, keys

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
    assert e.value.hint == ("secpod verifies ECDSA P-256, P-384 or P-521, RSA of 2048 bits "
                            "or more, and Ed25519 keys")


def test_trailing_bytes_after_the_key_are_refused() -> None:
    der = _der(ec.generate_private_key(ec.SECP256R1()).public_key())
    with pytest.raises(KeyFormatError) as e:
        keys.load_public_key(_pem(der + b"\x00"), source="t.pub")
    assert e.value.message == ("t.pub: the public key cannot be parsed: trailing data after "
                               "the SubjectPublicKeyInfo")


# Keys OpenSSL parses and signs with, that secpod must refuse (sigstore's allow list).
# Made with the openssl command: cryptography refuses to make some of them (RSA-512).
WEAK = {
    "secp112r1": (["ecparam", "-name", "secp112r1", "-genkey", "-noout"], "ECDSA secp112r1"),
    "sect163k1": (["ecparam", "-name", "sect163k1", "-genkey", "-noout"], "ECDSA sect163k1"),
    "prime192v1": (["ecparam", "-name", "prime192v1", "-genkey", "-noout"],
                   "ECDSA prime192v1"),
    "secp256k1": (["ecparam", "-name", "secp256k1", "-genkey", "-noout"], "ECDSA secp256k1"),
    "RSA-512": (["genrsa", "512"], "RSA 512"),
    "RSA-1024": (["genrsa", "1024"], "RSA 1024"),
    "P-256 explicit": (["ecparam", "-name", "prime256v1", "-genkey", "-noout",
                        "-param_enc", "explicit"], "ECDSA P-256 (explicit curve parameters)"),
}


def _openssl_key(tmp_path: Path, argv: list[str]) -> tuple[bytes, bytes]:
    """(SPKI DER, SHA-256 signature over DATA) of a fresh key made by the openssl command."""
    key = tmp_path / "k.pem"
    subprocess.run(["openssl", argv[0], "-out", str(key), *argv[1:]], check=True,
                   capture_output=True)
    pub = subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    if "explicit" in argv:  # pkey writes the named curve back; ec keeps the encoding
        pub = subprocess.run(["openssl", "ec", "-in", str(key), "-pubout", "-outform", "DER",
                              "-param_enc", "explicit"], check=True, capture_output=True).stdout
    (tmp_path / "data").write_bytes(DATA)
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(key), str(tmp_path / "data")],
                         check=True, capture_output=True).stdout
    return pub, sig


DATA = b"signed by a weak key\n"


@pytest.mark.parametrize("kind", list(WEAK))
def test_weak_keys_are_refused_by_name(tmp_path: Path, kind: str) -> None:
    argv, name = WEAK[kind]
    der, sig = _openssl_key(tmp_path, argv)
    assert _openssl.load_spki(der).__str__() == name  # OpenSSL parses it: secpod refuses it
    with pytest.raises(KeyFormatError) as e:
        keys.load_public_key(_pem(der), source="w.pub")
    assert e.value.message == f"w.pub: unsupported public key type {name}"
    assert "P-256, P-384 or P-521, RSA of 2048 bits or more, and Ed25519" in (e.value.hint or "")
    # The signature is good, and verify still says no: the allow list holds there too.
    with pytest.raises(_openssl.KeyRejected) as r:
        _openssl.verify(der, sig, DATA)
    assert str(r.value).startswith(f"a {name} key is not allowed")
    assert _openssl._lib().ERR_get_error() == 0


def test_a_named_p256_key_made_the_same_way_verifies(tmp_path: Path) -> None:
    der, sig = _openssl_key(tmp_path, ["ecparam", "-name", "prime256v1", "-genkey", "-noout"])
    assert keys.load_public_key(_pem(der), source="g.pub").info.curve == "P-256"
    assert _openssl.verify(der, sig, DATA) is True


def test_an_unnamed_algorithm_leaves_the_error_queue_empty() -> None:
    lib = _openssl._lib()
    lib.ERR_clear_error()
    assert lib.OBJ_nid2sn(99999) is None  # what _info does for an unknown key type
    lib.ERR_clear_error()
    der = _der(ed448.Ed448PrivateKey.generate().public_key())
    with pytest.raises(KeyFormatError):
        keys.load_public_key(_pem(der), source="o.pub")
    assert lib.ERR_get_error() == 0
