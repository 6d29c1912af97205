"""The OpenSSL binding (secpod.signing._openssl), with cryptography as the oracle.

Real libcrypto throughout: keys and signatures are made by cryptography, checked by
the binding, and the other way round for Ed25519. The last tests run the run path in
a fresh interpreter and check that cryptography never loads there.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa

from secpod.errors import HostError
from secpod.signing import _openssl, keys, sigstore

DATA = b"the payload a signature covers\n"


def _spki(public: Any) -> bytes:
    der: bytes = public.public_bytes(serialization.Encoding.DER,
                                     serialization.PublicFormat.SubjectPublicKeyInfo)
    return der


def _ec(curve: ec.EllipticCurve) -> Callable[[], tuple[Any, Callable[[bytes], bytes]]]:
    def make() -> tuple[Any, Callable[[bytes], bytes]]:
        key = ec.generate_private_key(curve)
        return key, lambda d: key.sign(d, ec.ECDSA(hashes.SHA256()))
    return make


def _rsa() -> tuple[Any, Callable[[bytes], bytes]]:
    key = rsa.generate_private_key(65537, 2048)
    return key, lambda d: key.sign(d, padding.PKCS1v15(), hashes.SHA256())


def _ed25519() -> tuple[Any, Callable[[bytes], bytes]]:
    key = ed25519.Ed25519PrivateKey.generate()
    return key, key.sign


KINDS = {
    "P-256": (_ec(ec.SECP256R1()), _openssl.KeyInfo("EC", 256, "P-256")),
    "P-384": (_ec(ec.SECP384R1()), _openssl.KeyInfo("EC", 384, "P-384")),
    "P-521": (_ec(ec.SECP521R1()), _openssl.KeyInfo("EC", 521, "P-521")),
    "RSA-2048": (_rsa, _openssl.KeyInfo("RSA", 2048)),
    "Ed25519": (_ed25519, _openssl.KeyInfo("Ed25519", 256)),
}


@pytest.fixture(scope="module")
def made() -> dict[str, tuple[bytes, bytes, bytes]]:
    """Per kind: (SPKI DER, signature over DATA, SPKI DER of another key of that kind)."""
    out = {}
    for name, (make, _) in KINDS.items():
        key, sign = make()
        other, _sign = make()
        out[name] = (_spki(key.public_key()), sign(DATA), _spki(other.public_key()))
    return out


def _flip(b: bytes, at: int) -> bytes:
    return b[:at] + bytes([b[at] ^ 0x01]) + b[at + 1:]


def _queue_empty() -> bool:
    return bool(_openssl._lib().ERR_get_error() == 0)


@pytest.mark.parametrize("kind", list(KINDS))
def test_load_spki_names_the_key(made: dict[str, tuple[bytes, bytes, bytes]],
                                 kind: str) -> None:
    der, _, _ = made[kind]
    assert _openssl.load_spki(der) == KINDS[kind][1]


@pytest.mark.parametrize("kind", list(KINDS))
def test_verify_agrees_with_cryptography(made: dict[str, tuple[bytes, bytes, bytes]],
                                         kind: str) -> None:
    der, sig, other = made[kind]
    assert _openssl.verify(der, sig, DATA) is True
    assert _openssl.verify(der, sig, _flip(DATA, 3)) is False
    assert _openssl.verify(der, sig, DATA + b"x") is False
    assert _openssl.verify(der, _flip(sig, len(sig) // 2), DATA) is False
    assert _openssl.verify(der, _flip(sig, 0), DATA) is False
    assert _openssl.verify(der, sig[:-1], DATA) is False
    assert _openssl.verify(der, sig[: len(sig) // 2], DATA) is False
    assert _openssl.verify(der, b"", DATA) is False
    assert _openssl.verify(der, os.urandom(len(sig)), DATA) is False
    assert _openssl.verify(der, b"\x30\x06\x02\x01\x01\x02\x01\x01", DATA) is False
    assert _openssl.verify(other, sig, DATA) is False
    assert _queue_empty()


def test_ecdsa_signatures_are_over_sha256_whatever_the_curve(
        made: dict[str, tuple[bytes, bytes, bytes]]) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    der = _spki(key.public_key())
    assert _openssl.verify(der, key.sign(DATA, ec.ECDSA(hashes.SHA256())), DATA)
    assert not _openssl.verify(der, key.sign(DATA, ec.ECDSA(hashes.SHA384())), DATA)


@pytest.mark.parametrize(("der", "message"), [
    (b"", "not a DER SubjectPublicKeyInfo (OpenSSL: "),
    (b"garbage", "not a DER SubjectPublicKeyInfo (OpenSSL: "),
    (b"\x30\x03\x02\x01\x00", "not a DER SubjectPublicKeyInfo (OpenSSL: "),
])
def test_garbage_der_is_refused(der: bytes, message: str) -> None:
    with pytest.raises(_openssl.KeyRejected) as e:
        _openssl.load_spki(der)
    assert str(e.value).startswith(message)
    with pytest.raises(_openssl.KeyRejected):
        _openssl.verify(der, b"sig", DATA)
    assert _queue_empty()


@pytest.mark.parametrize("kind", list(KINDS))
def test_truncated_and_trailing_der_is_refused(made: dict[str, tuple[bytes, bytes, bytes]],
                                               kind: str) -> None:
    der, sig, _ = made[kind]
    for cut in (1, len(der) // 2, len(der) - 1):
        with pytest.raises(_openssl.KeyRejected, match="not a DER SubjectPublicKeyInfo"):
            _openssl.load_spki(der[:cut])
    for extra in (b"\x00", der):
        with pytest.raises(_openssl.KeyRejected) as e:
            _openssl.load_spki(der + extra)
        assert str(e.value) == "trailing data after the SubjectPublicKeyInfo"
        with pytest.raises(_openssl.KeyRejected):
            _openssl.verify(der + extra, sig, DATA)
    assert _queue_empty()


def test_a_key_of_another_type_is_described_but_not_used() -> None:
    der = _spki(ed448.Ed448PrivateKey.generate().public_key())
    assert _openssl.load_spki(der) == _openssl.KeyInfo("Ed448", 456)
    with pytest.raises(_openssl.KeyRejected, match="cannot verify with a Ed448 key"):
        _openssl.verify(der, b"\x00" * 114, DATA)


def test_the_openssl_1_1_curve_lookup_agrees() -> None:
    lib = _openssl._lib()
    for curve, short in ((ec.SECP256R1(), "prime256v1"), (ec.SECP384R1(), "secp384r1")):
        pkey = _openssl._parse(lib, _spki(ec.generate_private_key(curve).public_key()))
        try:
            assert _openssl._curve_v1(lib, pkey) == short
        finally:
            lib.EVP_PKEY_free(pkey)


def test_ed25519_sign_is_byte_identical_to_cryptography() -> None:
    for _ in range(3):
        key = ed25519.Ed25519PrivateKey.generate()
        seed = key.private_bytes_raw()
        public = key.public_key()
        for data in (b"", DATA, os.urandom(1000)):
            sig = _openssl.ed25519_sign(seed, data)
            assert sig == key.sign(data)
            public.verify(sig, data)  # raises if it does not verify
            assert _openssl.ed25519_verify(public.public_bytes_raw(), sig, data)
            assert not _openssl.ed25519_verify(public.public_bytes_raw(), _flip(sig, 10), data)
            assert not _openssl.ed25519_verify(public.public_bytes_raw(), sig, data + b"!")
            assert not _openssl.ed25519_verify(public.public_bytes_raw(), sig[:63], data)
        assert _openssl.ed25519_public_key(seed) == public.public_bytes_raw()
    other = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    assert not _openssl.ed25519_verify(other, key.sign(DATA), DATA)
    assert _queue_empty()


@pytest.mark.parametrize("size", [0, 31, 33, 64])
def test_ed25519_raw_keys_of_the_wrong_size_are_refused(size: int) -> None:
    for call in (lambda: _openssl.ed25519_sign(b"k" * size, DATA),
                 lambda: _openssl.ed25519_public_key(b"k" * size),
                 lambda: _openssl.ed25519_verify(b"k" * size, b"s" * 64, DATA)):
        with pytest.raises(_openssl.KeyRejected, match=f"is 32 bytes, not {size}"):
            call()


def test_no_libcrypto_is_a_host_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_openssl, "_LIB", None)
    monkeypatch.setattr(_openssl, "LIBRARIES", ("libcrypto-secpod-missing.so.9",))
    with pytest.raises(HostError) as e:
        _openssl.verify(b"", b"", b"")
    assert e.value.message.startswith("cannot load OpenSSL's libcrypto to check signatures "
                                      "(libcrypto-secpod-missing.so.9: ")
    assert e.value.hint == "install OpenSSL 3 (Debian and Ubuntu: apt-get install libssl3)"


# --- the run path never imports cryptography ---------------------------------------------

MANIFEST = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}'
REF = "registry.example.com/team/app:1.0"

VERIFY = """
import json, sys
from secpod.images.reference import parse
from secpod.signing import keys, sigstore
from secpod.signing.identity import MatchRepoDigestOrExact
blob, pem, other, manifest = (bytes.fromhex(a) for a in sys.argv[1:5])
root = sigstore.SigstoreTrustRoot(public_keys=(keys.load_public_key(pem, source="k.pub"),))
claims = sigstore.verify_attachment(sigstore.parse_attachment(blob), root, manifest=manifest,
                                    intended=parse(sys.argv[5]), identity=MatchRepoDigestOrExact())
wrong = sigstore.SigstoreTrustRoot(public_keys=(keys.load_public_key(other, source="o.pub"),))
try:
    sigstore.verify_attachment(sigstore.parse_attachment(blob), wrong, manifest=manifest,
                               intended=parse(sys.argv[5]), identity=MatchRepoDigestOrExact())
    refused = None
except Exception as e:
    refused = str(e)
print(json.dumps({"reference": claims.docker_reference, "refused": refused,
                  "modules": sorted(sys.modules)}))
"""

CHECKPOINT = """
import json, sys
from secpod import audit
audit.record("container.exit", "ok", container_id="c", exit_status=0, checkpoint=True)
print(json.dumps(sorted(sys.modules)))
"""


def _cryptography(modules: list[str]) -> list[str]:
    return [m for m in modules if m == "cryptography" or m.startswith("cryptography.")]


def test_a_key_based_verification_does_not_import_cryptography() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    digest = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()
    blob = sigstore.make_signature(key, REF, digest)
    pem = keys.public_key_pem(keys.public_key_of(key))
    other = keys.public_key_pem(keys.public_key_of(ec.generate_private_key(ec.SECP256R1())))
    out = subprocess.run([sys.executable, "-c", VERIFY, blob.hex(), pem.hex(), other.hex(),
                          MANIFEST.hex(), REF], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    assert result["reference"] == REF
    assert result["refused"].startswith("cryptographic signature verification failed: "
                                        "not signed by key sha256:")
    assert _cryptography(result["modules"]) == []
    assert "secpod.signing._openssl" in result["modules"]


def test_signing_a_checkpoint_does_not_import_cryptography(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from secpod import audit
    from secpod.audit import _note

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    # The first record makes the log and its key (in this process: key generation is
    # covered too, as the child only reads the key).
    audit.record("container.create", "ok", container_id="c")
    out = subprocess.run([sys.executable, "-c", CHECKPOINT], capture_output=True, text=True,
                         check=True, env=dict(os.environ))
    modules = json.loads(out.stdout)
    assert _cryptography(modules) == []
    log = audit.user_log()
    note = log.latest_checkpoint_file.read_text()
    cp = _note.parse_checkpoint(note)
    assert cp.size == 2
    cp.verify(log.ensure_key())
    # cryptography, the oracle, accepts the signature the binding made.
    signer = log.signer()
    sig = cp.signatures[0].signature
    ed25519.Ed25519PublicKey.from_public_bytes(signer.verifier().public).verify(
        sig, cp.text.encode())
    assert sig == ed25519.Ed25519PrivateKey.from_private_bytes(signer.seed).sign(
        cp.text.encode())
    assert base64.b64decode(note.rstrip("\n").rsplit(" ", 1)[1])[4:] == sig
