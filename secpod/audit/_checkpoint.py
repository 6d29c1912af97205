"""Parsing signed checkpoints (C2SP tlog-checkpoint in a signed note); see _note.

Only verification and proofs parse checkpoints, so this is apart from the keys
that every run uses to sign one. _note re-exports these names.
"""

from __future__ import annotations

import re

from secpod._record import record
from secpod.audit._note import _DASH, VerifierKey, _b64decode, check_key_name
from secpod.errors import CheckpointError

_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_MAX_NOTE = 16 * 1024


@record(frozen=True)
class NoteSignature:
    name: str
    key_id: bytes
    signature: bytes


@record(frozen=True)
class Checkpoint:
    """A parsed (not yet verified) checkpoint."""

    origin: str
    size: int
    root: bytes
    time: str | None
    text: str
    signatures: tuple[NoteSignature, ...]

    def signed_part(self, key: VerifierKey) -> NoteSignature:
        """The signature line ``key`` would have made; check names and ids only (cheap).

        Raises CheckpointError naming the signer found when another key signed
        it, or when its origin is not the key's log.
        """
        mine = [s for s in self.signatures if s.name == key.name and s.key_id == key.key_id]
        if not mine:
            found = ", ".join(f"{s.name} (key id {s.key_id.hex()})" for s in self.signatures)
            raise CheckpointError(
                f"signed by another key: {found}; expected {key.name} (key id {key.key_id.hex()})")
        if self.origin != key.name:
            raise CheckpointError(f"origin {self.origin!r} is not the key's log {key.name!r}")
        return mine[0]

    def verify(self, key: VerifierKey) -> None:
        """Check that ``key`` signed this checkpoint.

        Raises CheckpointError naming the signer found when another key signed
        it, or saying the signature is invalid.
        """
        sig = self.signed_part(key)
        if not key.verify_signature(self.text.encode(), sig.signature):
            raise CheckpointError(f"the signature by {key.name} does not verify")


def parse_checkpoint(note: str) -> Checkpoint:
    """Parse a signed checkpoint note. Raises CheckpointError if it is malformed."""
    if len(note) > _MAX_NOTE:
        raise CheckpointError("the checkpoint is larger than a checkpoint can be")
    if _CONTROL.search(note):
        raise CheckpointError("the checkpoint contains control characters")
    if not note.endswith("\n"):
        raise CheckpointError("the checkpoint does not end with a newline")
    cut = note.rfind("\n\n")
    if cut < 0:
        raise CheckpointError("the checkpoint has no signature block")
    text = note[: cut + 1]
    sigs: list[NoteSignature] = []
    for line in note[cut + 2:-1].split("\n"):
        if not line.startswith(_DASH):
            raise CheckpointError(f"malformed signature line {line!r}")
        name, _, b64 = line[len(_DASH):].partition(" ")
        check_key_name(name)
        raw = _b64decode(b64, "a checkpoint signature")
        if len(raw) < 5:
            raise CheckpointError("a checkpoint signature is too short")
        sigs.append(NoteSignature(name=name, key_id=raw[:4], signature=raw[4:]))
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointError("the checkpoint text has fewer than three lines")
    origin, size_s, root_s = lines[:3]
    if not origin:
        raise CheckpointError("the checkpoint has an empty origin line")
    if not size_s.isdigit() or (size_s != "0" and size_s.startswith("0")) or not size_s.isascii():
        raise CheckpointError(f"the checkpoint's tree size {size_s!r} is not a decimal number")
    root = _b64decode(root_s, "the checkpoint's root hash")
    if len(root) != 32:
        raise CheckpointError("the checkpoint's root hash is not a SHA-256 hash")
    time = None
    for ext in lines[3:]:
        if not ext:
            raise CheckpointError("the checkpoint has an empty extension line")
        if ext.startswith("time "):
            time = ext[5:]
    return Checkpoint(origin=origin, size=int(size_s), root=root, time=time, text=text,
                      signatures=tuple(sigs))
