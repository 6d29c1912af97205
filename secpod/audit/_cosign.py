"""The host collector as a witness of users' logs: C2SP cosignatures of checkpoints.

A user's log and its checkpoints are the user's: they can rewrite the log and sign a
fresh checkpoint over the rewrite. The collector (root) keeps, per uid, the last
checkpoint of that user's log it has cosigned, in ``<host dir>/cosigned/UID.note``
(readable by everyone, writable by root). It cosigns a newer checkpoint only with a
consistency proof that the newer tree extends the cosigned one, and with the same log
key; a rewrite below the cosigned size cannot get a cosignature, is refused, and is
recorded in the host log as ``audit.rewrite``. ``secpod audit verify --cosigned``
then checks the user's log against the host's cosigned checkpoint.

A cosignature is a C2SP tlog-cosignature/v1 line: the witness's Ed25519 signature over
``cosignature/v1\\ntime <unix seconds>\\n`` and the checkpoint text, in a note signature
line ``— <name> base64(key id || timestamp (8 bytes, big-endian) || signature)``, whose
key id is ``SHA-256(name || 0x0A || 0x04 || public key)[:4]``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
import time
from pathlib import Path

from secpod import _files
from secpod.audit import _note, _proof
from secpod.errors import AuditError, CheckpointError, MalformedInput

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

ALG_COSIGNATURE = 0x04
_TIME = struct.Struct(">Q")


def cosignature_key_id(name: str, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([ALG_COSIGNATURE]) + public).digest()[:4]


def _message(text: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n{text}".encode()


def cosign(signer: _note.SignerKey, note: str, timestamp: int) -> str:
    """``note`` (a signed checkpoint) with the witness's cosignature line added."""
    from secpod.signing import _openssl

    cp = _note.parse_checkpoint(note)
    public = signer.verifier().public
    sig = _openssl.ed25519_sign(signer.seed, _message(cp.text, timestamp))
    raw = cosignature_key_id(signer.name, public) + _TIME.pack(timestamp) + sig
    return f"{note}{_note._DASH}{signer.name} {base64.b64encode(raw).decode()}\n"


def verify_cosignature(note: str, witness: _note.VerifierKey) -> int:
    """The time of ``witness``'s valid cosignature on ``note``. Raises CheckpointError."""
    cp = _note.parse_checkpoint(note)
    kid = cosignature_key_id(witness.name, witness.public)
    for s in cp.signatures:
        if s.name == witness.name and s.key_id == kid and len(s.signature) == 8 + 64:
            (timestamp,) = _TIME.unpack(s.signature[:8])
            if witness.verify_signature(_message(cp.text, timestamp), s.signature[8:]):
                return int(timestamp)
            raise CheckpointError(f"the cosignature by {witness.name} does not verify")
    raise CheckpointError(f"the checkpoint has no cosignature by {witness.name}")


def note_path(host_dir: Path, uid: int) -> Path:
    return host_dir / "cosigned" / f"{uid}.note"


class Refusal(AuditError):
    """The witness does not cosign; ``rewrite`` when the log no longer extends the one
    it cosigned."""

    def __init__(self, message: str, *, rewrite: bool = False) -> None:
        super().__init__(message)
        self.rewrite = rewrite


class Witness:
    """The collector's side: judge a request, cosign, keep the last cosigned note."""

    def __init__(self, host_dir: Path, signer: _note.SignerKey) -> None:
        self.dir = host_dir / "cosigned"
        self.signer = signer

    def last(self, uid: int) -> tuple[str, str] | None:
        """(note, the user's log key) last cosigned for ``uid``, or None."""
        try:
            note = _files.read_limited(self.dir / f"{uid}.note", 1 << 16).decode()
            vkey = _files.read_limited(self.dir / f"{uid}.vkey", 1 << 12).decode().strip()
        except FileNotFoundError:
            return None
        return note, vkey

    def cosign(self, uid: int, note: str, vkey_text: str, proof: Any) -> str:
        """Cosign the user's checkpoint ``note`` if it extends the last one cosigned.
        Raises Refusal, CheckpointError or MalformedInput."""
        key = _note.VerifierKey.parse(vkey_text)
        cp = _note.parse_checkpoint(note)
        cp.verify(key)
        user_note = _only_signature(note, cp, key)
        prev = self.last(uid)
        if prev is not None:
            old_note, old_vkey = prev
            old = _note.parse_checkpoint(old_note)
            if old_vkey != str(key):
                raise Refusal(f"the log's key is not the one whose checkpoint of {old.size} "
                              "records the host cosigned", rewrite=True)
            if cp.size < old.size:
                raise Refusal(f"the checkpoint covers {cp.size} records, fewer than the "
                              f"{old.size} the host cosigned", rewrite=True)
            if cp.size == old.size and cp.root != old.root:
                raise Refusal(f"the log of {cp.size} records is not the one the host "
                              "cosigned at that size", rewrite=True)
            if cp.size > old.size:
                if not isinstance(proof, dict) or proof.get("checkpoint") != user_note:
                    raise MalformedInput("a consistency proof to this checkpoint is needed")
                try:
                    _proof.verify_consistency(proof, key, old_checkpoint=old_note)
                except AuditError as e:
                    raise Refusal(f"the log does not extend the {old.size} records the host "
                                  f"cosigned: {e.message}", rewrite=True) from e
        cosigned = cosign(self.signer, user_note, int(time.time()))
        self.dir.mkdir(mode=0o755, exist_ok=True)
        _files.write_atomic(self.dir / f"{uid}.vkey", str(key) + "\n", mode=0o644)
        _files.write_atomic(self.dir / f"{uid}.note", cosigned, mode=0o644, durable=True)
        return cosigned


def _only_signature(note: str, cp: Any, key: _note.VerifierKey) -> str:
    """The note with the user's own signature line only (others are dropped)."""
    mine = cp.signed_part(key)
    raw = base64.b64encode(mine.key_id + mine.signature).decode()
    return f"{cp.text}\n{_note._DASH}{key.name} {raw}\n"


def cosign_own_log(log: Any) -> dict[str, Any]:
    """The user's side: sign a checkpoint of ``log`` now, prove it extends what the host
    cosigned, and have the collector cosign it. Returns {"size", "old_size", "note"}.
    Raises CollectorError when no collector is named or it refuses."""
    from secpod.audit import _log
    from secpod.errors import CollectorError

    client, _required, why = _log._connect("ok")
    if client is None:
        raise CollectorError(
            f"there is no audit collector to cosign with: {why or 'the administrator names none'}",
            hint="the collector is named in /etc/secpod/policy.toml ([audit] collector)")
    try:
        note = log.checkpoint()
        key = log.verifier()
        if key is None:
            raise AuditError("the log has no key to check its checkpoints with")
        previous = client.request({"cosigned": "last"}).get("note")
        proof = None
        old_size = 0
        if isinstance(previous, str):
            old_size = _note.parse_checkpoint(previous).size
            if _note.parse_checkpoint(note).size > old_size:
                proof = _proof.consistency_between(log.path, previous, note)
        answer = client.request({"cosign": {"checkpoint": note, "vkey": str(key),
                                            "proof": proof}})
    finally:
        client.close()
    cosigned = answer.get("note")
    if not isinstance(cosigned, str):
        raise AuditError("the collector answered without the cosigned checkpoint")
    return {"size": _note.parse_checkpoint(cosigned).size, "old_size": old_size,
            "note": cosigned}


def cosigned_checkpoint(log_dir: Path, host_dir: Path) -> tuple[Path, str, int]:
    """(path, host key name, time) of the checkpoint the host collector cosigned for the
    owner of ``log_dir``, once its cosignature is checked with the host log's key.
    Raises AuditError (none, unreadable) or CheckpointError (a bad cosignature)."""
    try:
        path = note_path(host_dir, os.stat(log_dir).st_uid)
        note = _files.read_limited(path, 1 << 16).decode(errors="replace")
        host_key = _note.VerifierKey.parse(
            _files.read_limited(host_dir / "key.vkey", 1 << 12).decode(errors="replace"))
    except FileNotFoundError as e:
        raise AuditError(f"the host has no cosigned checkpoint of this log ({e.filename})",
                         hint="secpod audit cosign asks the host's collector for one") from None
    except OSError as e:
        raise AuditError(f"cannot read {e.filename}: {e.strerror}") from e
    return path, host_key.name, verify_cosignature(note, host_key)
