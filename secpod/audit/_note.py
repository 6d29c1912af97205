"""Ed25519 keys and checkpoints in the C2SP signed-note and tlog-checkpoint formats.

A checkpoint is a signed note whose text is::

    <origin>
    <tree size, decimal>
    <base64 RFC 6962 root hash>
    time <RFC 3339 UTC>

followed by a blank line and one signature line
``— <key name> <base64(key id (4 bytes) || Ed25519 signature)>``. The key id is
``SHA-256(key name || 0x0A || 0x01 || public key)[:4]`` and the verifier key
(``vkey``) is ``<name>+<hex key id>+<base64(0x01 || public key)>``, as Go's
``golang.org/x/mod/sumdb/note`` writes them, so other tools can check our
checkpoints. Verification here is pure: bytes and a key in, a result or
:class:`CheckpointError` out.

Signing and verifying go through the system's OpenSSL
(:mod:`secpod.signing._openssl`): every ``secpod run`` signs a checkpoint, and
importing ``cryptography`` for that would cost it 20 ms.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re

from secpod._lazy import reexports
from secpod._record import record
from secpod.errors import CheckpointError

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:

    from secpod.audit._checkpoint import Checkpoint as Checkpoint
    from secpod.audit._checkpoint import NoteSignature as NoteSignature
    from secpod.audit._checkpoint import parse_checkpoint as parse_checkpoint

ALG_ED25519 = 0x01
_DASH = "\u2014 "
_NAME_RE = re.compile(r"^[^\s+]+$")
_SEED_SIZE = 32


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise CheckpointError(f"{what} is not valid base64") from e


def check_key_name(name: str) -> str:
    """Return ``name`` if it is a valid note key name (non-empty, no spaces, no '+')."""
    if not _NAME_RE.match(name):
        raise CheckpointError(f"{name!r} is not a valid key name (no spaces or '+')")
    return name


def key_id(name: str, public: bytes) -> bytes:
    """C2SP signed-note key id of an Ed25519 key."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public).digest()[:4]


@record(frozen=True)
class VerifierKey:
    """A public key that checks checkpoints: name, key id, Ed25519 public key."""

    name: str
    key_id: bytes
    public: bytes

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        """Parse a ``vkey`` string. Raises CheckpointError if it is malformed."""
        text = text.strip()
        parts = text.split("+", 2)  # base64 may itself contain '+'
        if len(parts) != 3:
            raise CheckpointError("a verifier key has the form NAME+KEYID+BASE64KEY")
        name, hexid, b64 = parts
        check_key_name(name)
        try:
            kid = bytes.fromhex(hexid)
        except ValueError as e:
            raise CheckpointError("the verifier key's id is not hexadecimal") from e
        raw = _b64decode(b64, "the verifier key")
        if len(kid) != 4 or len(raw) != 33 or raw[0] != ALG_ED25519:
            raise CheckpointError("the verifier key is not an Ed25519 note key")
        public = raw[1:]
        if key_id(name, public) != kid:
            raise CheckpointError("the verifier key's id does not match its key")
        return cls(name=name, key_id=kid, public=public)

    def __str__(self) -> str:
        raw = base64.b64encode(bytes([ALG_ED25519]) + self.public).decode()
        return f"{self.name}+{self.key_id.hex()}+{raw}"

    def verify_signature(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this key's Ed25519 signature of ``message``.

        Raises HostError when OpenSSL's libcrypto is missing.
        """
        from secpod.signing import _openssl

        try:
            return _openssl.ed25519_verify(self.public, signature, message)
        except _openssl.KeyRejected:
            return False


@record(frozen=True)
class SignerKey:
    """An Ed25519 private key with its note key name."""

    name: str
    seed: bytes

    @classmethod
    def generate(cls, name: str) -> SignerKey:
        """A new key. Raises CheckpointError for an invalid ``name``."""
        check_key_name(name)
        # An Ed25519 private key is 32 random bytes (RFC 8032 5.1.5); OpenSSL's and
        # cryptography's key generation draw exactly that.
        return cls(name=name, seed=os.urandom(_SEED_SIZE))

    @classmethod
    def parse(cls, text: str) -> SignerKey:
        """Parse ``PRIVATE+KEY+NAME+KEYID+BASE64``. Raises CheckpointError if malformed."""
        parts = text.strip().split("+", 4)
        if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY":
            raise CheckpointError("the log's private key file is malformed")
        name, hexid, b64 = parts[2:]
        check_key_name(name)
        raw = _b64decode(b64, "the log's private key")
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise CheckpointError("the log's private key is not an Ed25519 note key")
        key = cls(name=name, seed=raw[1:])
        if key.verifier().key_id.hex() != hexid:
            raise CheckpointError("the log's private key does not match its key id")
        return key

    def __str__(self) -> str:
        raw = base64.b64encode(bytes([ALG_ED25519]) + self.seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.verifier().key_id.hex()}+{raw}"

    def verifier(self) -> VerifierKey:
        """The public key that checks this key's notes. Raises CheckpointError for a
        seed that is not 32 bytes, HostError when OpenSSL's libcrypto is missing."""
        from secpod.signing import _openssl

        try:
            public = _openssl.ed25519_public_key(self.seed)
        except _openssl.KeyRejected as e:
            raise CheckpointError(f"the log's private key is unusable: {e}") from e
        return VerifierKey(name=self.name, key_id=key_id(self.name, public), public=public)

    def sign_note(self, text: str) -> str:
        """Return ``text`` as a signed note (``text`` must end with a newline)."""
        if not text.endswith("\n") or "\n\n" in text:
            raise CheckpointError("note text must end in one newline and have no blank line")
        from secpod.signing import _openssl

        kid = self.verifier().key_id  # first: it refuses a bad seed with CheckpointError
        sig = _openssl.ed25519_sign(self.seed, text.encode())
        return f"{text}\n{_DASH}{self.name} {base64.b64encode(kid + sig).decode()}\n"


def checkpoint_text(origin: str, size: int, root: bytes, time: str) -> str:
    return f"{origin}\n{size}\n{base64.b64encode(root).decode()}\ntime {time}\n"


# Parsing checkpoints (verify, prove) lives in _checkpoint: a run only signs one,
# and its two records need not be built on every start-up.
__getattr__ = reexports(__name__, dict.fromkeys(
    ("Checkpoint", "NoteSignature", "parse_checkpoint"), "secpod.audit._checkpoint"))
