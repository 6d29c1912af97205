"""Keys in cosign's formats.

- Public key: PKIX ``-----BEGIN PUBLIC KEY-----`` PEM (ECDSA, RSA or Ed25519 read;
  secpod generates ECDSA P-256, as cosign does).
- Private key: ``-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----`` (the older
  ``ENCRYPTED COSIGN PRIVATE KEY`` is read too) whose body is the JSON envelope
  of go-securesystemslib's ``encrypted`` package::

      {"kdf": {"name": "scrypt", "params": {"N": 32768, "r": 8, "p": 1}, "salt": B64},
       "cipher": {"name": "nacl/secretbox", "nonce": B64},
       "ciphertext": B64}

  The plaintext is the PKCS#8 DER of the key; the secretbox key is
  scrypt(passphrase, salt) with 32 bytes of output.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from secpod.errors import KeyFormatError, UsageError, VerificationError
from secpod.signing import _json

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

SIGSTORE_PRIVATE_PEM = "ENCRYPTED SIGSTORE PRIVATE KEY"
COSIGN_PRIVATE_PEM = "ENCRYPTED COSIGN PRIVATE KEY"
PASSWORD_ENV = ("SECPOD_PASSWORD", "COSIGN_PASSWORD")

SCRYPT_N, SCRYPT_R, SCRYPT_P = 32768, 8, 1
# A hostile key file must not make us allocate gigabytes: scrypt needs 128*N*r bytes.
_SCRYPT_MAX_MEM = 512 * 1024 * 1024
_MAX_KEY_FILE = 64 * 1024


def _pem_blocks(data: bytes) -> list[tuple[str, bytes]]:
    """Split PEM text into (label, DER) blocks. Raises ValueError on broken framing."""
    out: list[tuple[str, bytes]] = []
    label: str | None = None
    body: list[str] = []
    for raw in data.decode("ascii", errors="strict").splitlines():
        line = raw.strip()
        if label is None:
            if line.startswith("-----BEGIN ") and line.endswith("-----"):
                label = line[len("-----BEGIN "):-5]
                body = []
            elif line:
                raise ValueError("text outside a PEM block")
            continue
        if line == f"-----END {label}-----":
            out.append((label, base64.b64decode("".join(body), validate=True)))
            label = None
        elif ":" in line:
            raise ValueError("PEM headers are not supported")
        else:
            body.append(line)
    if label is not None:
        raise ValueError(f"unterminated PEM block {label!r}")
    return out


# cryptography.hazmat.primitives.serialization (its SSH half alone pulls in bcrypt and
# a dataclass) is imported where a key is written or a less common key is read: the
# run path only reads a cosign ECDSA public key, which _ec_spki parses.
#
# SubjectPublicKeyInfo DER of an uncompressed point on a named NIST curve: a fixed
# header (algorithm id-ecPublicKey, the curve's OID, the BIT STRING's length), then
# the point. cosign and secpod write P-256 keys this way.
_EC_SPKI_HEADERS: dict[bytes, tuple[ec.EllipticCurve, int]] = {
    bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200"): (ec.SECP256R1(), 65),
    bytes.fromhex("3076301006072a8648ce3d020106052b81040022036200"): (ec.SECP384R1(), 97),
    bytes.fromhex("30819b301006072a8648ce3d020106052b8104002303818600"): (ec.SECP521R1(), 133),
}


def _ec_spki(der: bytes) -> ec.EllipticCurvePublicKey | None:
    """The key of a named-curve ECDSA SubjectPublicKeyInfo, or None for any other DER.

    Byte for byte the form ``load_der_public_key`` reads for these keys; the point
    itself is checked (on the curve) by ``from_encoded_point``.
    """
    for header, (curve, size) in _EC_SPKI_HEADERS.items():
        if der.startswith(header) and len(der) == len(header) + size:
            point = der[len(header):]
            if point[0] != 4:
                return None
            return ec.EllipticCurvePublicKey.from_encoded_point(curve, point)
    return None


def load_public_key(data: bytes, *, source: str) -> PublicKey:
    """Parse one PKIX PEM public key. Raises KeyFormatError naming ``source``."""
    try:
        blocks = _pem_blocks(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise KeyFormatError(f"{source}: not a PEM public key ({e})",
                             hint="use a cosign public key (-----BEGIN PUBLIC KEY-----)") from e
    if len(blocks) != 1 or blocks[0][0] != "PUBLIC KEY":
        raise KeyFormatError(f"{source}: expected exactly one PEM 'PUBLIC KEY' block",
                             hint="use a cosign public key (-----BEGIN PUBLIC KEY-----)")
    key: object
    try:
        key = _ec_spki(blocks[0][1])
        if key is None:
            from cryptography.hazmat.primitives import serialization

            key = serialization.load_der_public_key(blocks[0][1])
    except (ValueError, UnsupportedAlgorithm) as e:
        raise KeyFormatError(f"{source}: the public key cannot be parsed: {e}") from e
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        raise KeyFormatError(f"{source}: unsupported public key type {type(key).__name__}",
                             hint="secpod verifies ECDSA, RSA and Ed25519 keys")
    return key


def public_key_pem(key: PublicKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def public_key_der(key: PublicKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def verify_signature(key: PublicKey, signature: bytes, data: bytes) -> None:
    """Check ``signature`` over ``data`` the way sigstore's verifiers do (SHA-256).

    Raises InvalidSignature.
    """
    if isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    elif isinstance(key, rsa.RSAPublicKey):
        key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    else:
        key.verify(signature, data)


def sign(key: PrivateKey, data: bytes) -> bytes:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(hashes.SHA256()))
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    return key.sign(data)


def _derive(passphrase: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(passphrase, salt=salt, n=n, r=r, p=p, dklen=32,
                          maxmem=_SCRYPT_MAX_MEM)


def encrypt_private_key(key: PrivateKey, passphrase: bytes) -> bytes:
    """The private key as cosign writes it (ENCRYPTED SIGSTORE PRIVATE KEY PEM)."""
    from cryptography.hazmat.primitives import serialization
    from nacl.secret import SecretBox

    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    # os.urandom is what secrets.token_bytes calls; importing secrets (random, hmac)
    # would cost every `secpod run` that verifies a signature.
    salt = os.urandom(32)
    nonce = os.urandom(SecretBox.NONCE_SIZE)
    box = SecretBox(_derive(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P))
    ciphertext = box.encrypt(der, nonce).ciphertext
    b64 = base64.b64encode
    envelope = {
        "kdf": {"name": "scrypt", "params": {"N": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P},
                "salt": b64(salt).decode()},
        "cipher": {"name": "nacl/secretbox", "nonce": b64(nonce).decode()},
        "ciphertext": b64(ciphertext).decode(),
    }
    body = base64.b64encode(json.dumps(envelope, separators=(",", ":")).encode()).decode()
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return ("\n".join([f"-----BEGIN {SIGSTORE_PRIVATE_PEM}-----", *lines,
                       f"-----END {SIGSTORE_PRIVATE_PEM}-----"]) + "\n").encode()


def _b64_field(obj: dict[str, Any], key: str, path: str) -> bytes:
    value = _json.expect_str(obj[key], _json.child(path, key))
    try:
        return base64.b64decode(value, validate=True)
    except ValueError as e:
        raise _json.JSONShapeError(_json.child(path, key), "not base64") from e


def decrypt_private_key(data: bytes, passphrase: bytes, *, source: str) -> PrivateKey:
    """Read a cosign encrypted private key. Raises KeyFormatError (format or passphrase)."""
    from cryptography.hazmat.primitives import serialization
    from nacl.exceptions import CryptoError
    from nacl.secret import SecretBox

    if len(data) > _MAX_KEY_FILE:
        raise KeyFormatError(f"{source}: too large for a private key")
    try:
        blocks = _pem_blocks(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise KeyFormatError(f"{source}: not a PEM private key ({e})") from e
    if len(blocks) != 1 or blocks[0][0] not in (SIGSTORE_PRIVATE_PEM, COSIGN_PRIVATE_PEM):
        raise KeyFormatError(
            f"{source}: expected one '{SIGSTORE_PRIVATE_PEM}' PEM block",
            hint="use a key made by `secpod key generate` or `cosign generate-key-pair`")
    try:
        env = _json.expect_object(_json.loads(blocks[0][1], what="encrypted key"), "$")
        _json.expect_fields(env, "$", required={"kdf", "cipher", "ciphertext"})
        kdf = _json.expect_object(env["kdf"], "$.kdf")
        _json.expect_fields(kdf, "$.kdf", required={"name", "params", "salt"})
        if kdf["name"] != "scrypt":
            raise _json.JSONShapeError("$.kdf.name", f"unsupported KDF {kdf['name']!r}")
        params = _json.expect_object(kdf["params"], "$.kdf.params")
        _json.expect_fields(params, "$.kdf.params", required={"N", "r", "p"})
        n, r, p = (params[k] for k in ("N", "r", "p"))
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (n, r, p)):
            raise _json.JSONShapeError("$.kdf.params", "N, r and p must be positive integers")
        if n & (n - 1) or 128 * n * r > _SCRYPT_MAX_MEM // 2 or p > 16:
            raise _json.JSONShapeError("$.kdf.params", "scrypt parameters out of bounds")
        salt = _b64_field(kdf, "salt", "$.kdf")
        cipher = _json.expect_object(env["cipher"], "$.cipher")
        _json.expect_fields(cipher, "$.cipher", required={"name", "nonce"})
        if cipher["name"] != "nacl/secretbox":
            raise _json.JSONShapeError("$.cipher.name", f"unsupported cipher {cipher['name']!r}")
        nonce = _b64_field(cipher, "nonce", "$.cipher")
        if len(nonce) != SecretBox.NONCE_SIZE:
            raise _json.JSONShapeError("$.cipher.nonce", "must be 24 bytes")
        ciphertext = _b64_field(env, "ciphertext", "$")
    except _json.JSONShapeError as e:
        raise KeyFormatError(f"{source}: malformed encrypted key: {e}") from e
    try:
        der = SecretBox(_derive(passphrase, salt, n, r, p)).decrypt(ciphertext, nonce)
    except CryptoError as e:
        raise KeyFormatError(f"{source}: cannot decrypt the private key: wrong passphrase",
                             hint="set SECPOD_PASSWORD (or COSIGN_PASSWORD) to the key's "
                                  "passphrase, or type it at the prompt") from e
    try:
        key = serialization.load_der_private_key(der, password=None)
    except (ValueError, UnsupportedAlgorithm) as e:
        raise KeyFormatError(f"{source}: the decrypted key is not PKCS#8: {e}") from e
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
                      | ed25519.Ed25519PrivateKey):
        raise KeyFormatError(f"{source}: unsupported private key type {type(key).__name__}")
    return key


def generate_key_pair(passphrase: bytes) -> tuple[bytes, bytes]:
    """A new ECDSA P-256 key: (encrypted private PEM, public PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return encrypt_private_key(key, passphrase), public_key_pem(key.public_key())


def read_passphrase(*, confirm: bool, purpose: str) -> bytes:
    """The passphrase from SECPOD_PASSWORD or COSIGN_PASSWORD, else a terminal prompt.

    Never from an argument. Raises UsageError when neither is available, or
    when the two prompts differ.
    """
    for var in PASSWORD_ENV:
        if var in os.environ:
            return os.environ[var].encode()
    try:
        tty = open("/dev/tty", "r+b", buffering=0)  # noqa: SIM115 - closed below
    except OSError as e:
        raise UsageError(
            f"no passphrase for {purpose}: no terminal to prompt on",
            hint="set SECPOD_PASSWORD (or COSIGN_PASSWORD) in the environment") from e
    tty.close()
    import getpass  # termios and friends: only when there is someone to ask

    first = getpass.getpass(f"Passphrase for {purpose}: ", stream=sys.stderr)
    if confirm and getpass.getpass("Repeat the passphrase: ", stream=sys.stderr) != first:
        raise UsageError("the passphrases do not match", hint="run the command again")
    return first.encode()


def check_key_signature(key: PublicKey, signature: bytes, data: bytes) -> bool:
    try:
        verify_signature(key, signature, data)
    except InvalidSignature:
        return False
    except (ValueError, TypeError) as e:
        raise VerificationError(f"cannot use the public key: {e}") from e
    return True
