"""Keys in cosign's formats.

- Public key: PKIX ``-----BEGIN PUBLIC KEY-----`` PEM (ECDSA P-256/P-384/P-521, RSA of
  2048 bits or more, or Ed25519: :data:`secpod.signing._openssl.ALLOWED_KEYS`; secpod
  generates ECDSA P-256, as cosign does). Read and used through the system's
  OpenSSL (:mod:`secpod.signing._openssl`), so checking a signature, which every
  ``secpod run`` under a key policy does, never imports ``cryptography``.
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
from pathlib import Path

from secpod._record import field, record
from secpod.errors import KeyFormatError, NotFound, UsageError, VerificationError
from secpod.signing import _json, _openssl

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import TypeAlias

    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    PrivateKey: TypeAlias = (ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
                             | ed25519.Ed25519PrivateKey)

SIGSTORE_PRIVATE_PEM = "ENCRYPTED SIGSTORE PRIVATE KEY"
COSIGN_PRIVATE_PEM = "ENCRYPTED COSIGN PRIVATE KEY"
PASSWORD_ENV = ("SECPOD_PASSWORD", "COSIGN_PASSWORD")

SCRYPT_N, SCRYPT_R, SCRYPT_P = 32768, 8, 1
# A hostile key file must not make us allocate gigabytes: scrypt needs 128*N*r bytes.
_SCRYPT_MAX_MEM = 512 * 1024 * 1024
_MAX_KEY_FILE = 64 * 1024
_PUBLIC_HINT = "use a cosign public key (-----BEGIN PUBLIC KEY-----)"


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


# Public keys are secpod's own values, parsed and checked by OpenSSL through _openssl:
# a `secpod run` that verifies a signature never imports cryptography (20-28 ms).
# Private keys (signing, key files) still use cryptography; they are not on that path.
@record(frozen=True)
class PublicKey:
    """A public key to verify with: its DER SubjectPublicKeyInfo, as OpenSSL parsed it.

    Made by :func:`load_public_key`, :func:`public_key_from_der` or
    :func:`public_key_of`, which accept only the keys on _openssl's allow list.
    Two keys are equal when their DER is.
    """

    der: bytes
    info: _openssl.KeyInfo = field(compare=False)


def public_key_from_der(der: bytes, *, source: str) -> PublicKey:
    """A public key from DER SubjectPublicKeyInfo.

    Raises KeyFormatError naming ``source`` when OpenSSL cannot parse it whole
    (an EC point must be on its curve) or when the key is not on the allow list
    (ECDSA P-256/P-384/P-521 with a named curve, RSA 2048+, Ed25519).
    """
    try:
        info = _openssl.load_spki(der)
    except _openssl.KeyRejected as e:
        raise KeyFormatError(f"{source}: the public key cannot be parsed: {e}") from e
    try:
        _openssl.check_allowed(info)
    except _openssl.KeyRejected as e:
        raise KeyFormatError(f"{source}: unsupported public key type {info}",
                             hint=f"secpod verifies {_openssl.ALLOWED_KEYS} keys") from e
    return PublicKey(der=der, info=info)


def load_public_key(data: bytes, *, source: str) -> PublicKey:
    """Parse one PKIX PEM public key. Raises KeyFormatError naming ``source``."""
    try:
        blocks = _pem_blocks(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise KeyFormatError(f"{source}: not a PEM public key ({e})", hint=_PUBLIC_HINT) from e
    if len(blocks) != 1 or blocks[0][0] != "PUBLIC KEY":
        raise KeyFormatError(f"{source}: expected exactly one PEM 'PUBLIC KEY' block",
                             hint=_PUBLIC_HINT)
    return public_key_from_der(blocks[0][1], source=source)


def public_key_of(private_key: PrivateKey) -> PublicKey:
    """The public half of a private key (uses cryptography: not for the run path)."""
    from cryptography.hazmat.primitives import serialization

    der = private_key.public_key().public_bytes(serialization.Encoding.DER,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
    return public_key_from_der(der, source="the private key")


def public_key_pem(key: PublicKey) -> bytes:
    """The key as ``-----BEGIN PUBLIC KEY-----`` PEM, byte for byte as OpenSSL writes it."""
    body = base64.b64encode(key.der).decode()
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return ("\n".join(["-----BEGIN PUBLIC KEY-----", *lines, "-----END PUBLIC KEY-----"])
            + "\n").encode()


def public_key_der(key: PublicKey) -> bytes:
    """The key's DER SubjectPublicKeyInfo."""
    return key.der


def check_key_signature(key: PublicKey, signature: bytes, data: bytes) -> bool:
    """Whether ``signature`` over ``data`` verifies with ``key``, as sigstore's verifiers
    check it: ECDSA and RSA PKCS#1 v1.5 with SHA-256, Ed25519 pure. A malformed
    signature is False.

    Raises VerificationError when OpenSSL cannot use the key, HostError without libcrypto.
    """
    try:
        return _openssl.verify(key.der, signature, data)
    except _openssl.KeyRejected as e:
        raise VerificationError(f"cannot use the public key: {e}") from e


def sign(key: PrivateKey, data: bytes) -> bytes:
    """Sign ``data`` as :func:`check_key_signature` checks it."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

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


def decrypt_private_key(data: bytes, passphrase: bytes, *, source: str) -> PrivateKey:
    """Read a cosign encrypted private key. Raises KeyFormatError (format or passphrase)."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
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
        salt = _json.expect_b64(kdf["salt"], "$.kdf.salt")
        cipher = _json.expect_object(env["cipher"], "$.cipher")
        _json.expect_fields(cipher, "$.cipher", required={"name", "nonce"})
        if cipher["name"] != "nacl/secretbox":
            raise _json.JSONShapeError("$.cipher.name", f"unsupported cipher {cipher['name']!r}")
        nonce = _json.expect_b64(cipher["nonce"], "$.cipher.nonce")
        if len(nonce) != SecretBox.NONCE_SIZE:
            raise _json.JSONShapeError("$.cipher.nonce", "must be 24 bytes")
        ciphertext = _json.expect_b64(env["ciphertext"], "$.ciphertext")
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
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    return encrypt_private_key(key, passphrase), public_key_pem(public_key_of(key))


def load_private_key(path: Path) -> PrivateKey:
    """A cosign private key file, decrypted with :func:`read_passphrase`'s passphrase.

    Raises NotFound (unreadable), KeyFormatError (malformed or the wrong passphrase),
    UsageError (no passphrase to be had).
    """
    from secpod._files import read_limited

    try:
        data = read_limited(path, _MAX_KEY_FILE + 1)  # a bigger one: decrypt says so
    except OSError as e:
        raise NotFound(f"cannot read the private key {path}: {e.strerror}",
                       hint="give a cosign private key file (NAME.key)") from e
    passphrase = read_passphrase(confirm=False, purpose=str(path))
    return decrypt_private_key(data, passphrase, source=str(path))


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
