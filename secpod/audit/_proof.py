"""Proofs about the log, checked offline with nothing but its verifier key.

An inclusion proof: one record, its audit path, and the signed checkpoint it leads to::

    {"format": "secpod-audit-proof/1", "seq": 41, "tree_size": 100,
     "record": "<the record's line>", "path": ["<base64 hash>", ...],
     "checkpoint": "<signed checkpoint note>"}

A consistency proof: the log at a newer checkpoint extends the log at an older
one, record for record (nothing was changed or removed, only appended)::

    {"format": "secpod-audit-consistency/1", "old_size": 60, "tree_size": 100,
     "path": ["<base64 hash>", ...],
     "old_checkpoint": "<signed note>", "checkpoint": "<signed note>"}

:func:`verify_proof` and :func:`verify_consistency` check them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

from secpod import _files
from secpod.audit import _canon, _merkle, _note, _verify
from secpod.errors import AuditError, MalformedInput

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

FORMAT = "secpod-audit-proof/1"
CONSISTENCY_FORMAT = "secpod-audit-consistency/1"


def _leaves(log: Path, size: int, seq: int) -> tuple[list[bytes], bytes]:
    """Leaf hashes of the first ``size`` records of ``log``, and the line of record ``seq``."""
    hashes: list[bytes] = []
    line_of_seq = b""
    pending = b""
    leaf0 = hashlib.sha256(b"\x00")
    for chunk in _verify.read_chunks(log):
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        for line in lines:
            if len(hashes) == seq:
                line_of_seq = line
            h = leaf0.copy()
            h.update(line)
            hashes.append(h.digest())
            if len(hashes) == size:
                return hashes, line_of_seq
    raise AuditError(f"the log holds {len(hashes)} records, fewer than the checkpoint's {size}",
                     hint="the log was truncated: run `secpod audit verify`")


def _path_hashes(path: list[Any], most: int) -> list[bytes]:
    """A proof's path: at most ``most`` base64 SHA-256 hashes. Raises MalformedInput."""
    if not all(isinstance(p, str) for p in path):
        raise MalformedInput("the proof's path is not a list of base64 strings")
    try:
        hashes = [base64.b64decode(p, validate=True) for p in path]
    except (binascii.Error, ValueError) as e:
        raise MalformedInput("the proof's path is not base64") from e
    if any(len(h) != 32 for h in hashes) or len(hashes) > most:
        raise MalformedInput("the proof's path is not a list of SHA-256 hashes")
    return hashes


def _read_checkpoint(log_dir: Path, src: Path) -> tuple[str, _note.Checkpoint]:
    """A checkpoint file's note and its parse, checked against the log's key when the log
    has one. Raises AuditError (unreadable) or CheckpointError (malformed, wrong key)."""
    try:
        # not UTF-8: malformed, said by the parser; bounded, and never a FIFO or device
        note = _files.read_limited(src, 1 << 16).decode(errors="replace")
    except FileNotFoundError:
        raise AuditError(f"there is no checkpoint at {src}",
                         hint="sign one now with `secpod audit checkpoint`") from None
    except OSError as e:
        raise AuditError(f"cannot read {src}: {e.strerror}") from e
    cp = _note.parse_checkpoint(note)
    key = _verify.load_key(None, log_dir)
    if key is not None:
        cp.verify(key)
    return note, cp


def prove(log_dir: Path, seq: int, *, checkpoint: Path | None = None) -> dict[str, Any]:
    """An inclusion proof of record ``seq`` against ``checkpoint`` (default: the latest).

    Raises AuditError if the record is not covered by the checkpoint or the log
    does not match it, CheckpointError if the checkpoint is malformed or not
    signed by the log's key.
    """
    if seq < 0:
        raise AuditError("record numbers start at 0")
    note, cp = _read_checkpoint(log_dir, checkpoint or log_dir / "checkpoint")
    if seq >= cp.size:
        raise AuditError(f"record {seq} is not covered by the checkpoint (it covers records "
                         f"0-{cp.size - 1})",
                         hint="sign a newer checkpoint with `secpod audit checkpoint`")
    hashes, line = _leaves(log_dir / "log.jsonl", cp.size, seq)
    if _merkle.frontier_root(_merkle.frontier_of(hashes)) != cp.root:
        raise AuditError(f"the log does not match its checkpoint of size {cp.size}",
                         hint="the log was changed: run `secpod audit verify`")
    path = _merkle.inclusion_path(hashes, seq, cp.size)
    return {
        "format": FORMAT, "seq": seq, "tree_size": cp.size,
        "record": line.decode("utf-8", "replace"),
        "path": [base64.b64encode(h).decode() for h in path],
        "checkpoint": note,
    }


def verify_proof(proof: Mapping[str, Any], key: _note.VerifierKey,
                 checkpoint: str | None = None) -> dict[str, Any]:
    """Check an inclusion proof offline; return the proven record.

    Pure. Checks: (1) the proof's shape; (2) the checkpoint (``checkpoint``, or
    the one inside the proof) is signed by ``key``; (3) it is for the proof's
    tree size; (4) the record is record ``seq``; (5) the path leads from the
    record's leaf hash to the checkpoint's root.
    Raises MalformedInput for a malformed proof, CheckpointError when the
    checkpoint is not the key's, AuditError when the proof does not hold.
    """
    # 1. shape
    if proof.get("format") != FORMAT:
        raise MalformedInput(f"not a secpod audit proof (format must be {FORMAT})")
    seq, size, rec, path = (proof.get("seq"), proof.get("tree_size"), proof.get("record"),
                            proof.get("path"))
    if (not isinstance(seq, int) or not isinstance(size, int) or isinstance(seq, bool)
            or isinstance(size, bool) or not isinstance(rec, str) or not isinstance(path, list)):
        raise MalformedInput("the proof needs seq, tree_size, record and path")
    hashes = _path_hashes(path, 64)
    # 2. checkpoint
    note = checkpoint if checkpoint is not None else proof.get("checkpoint")
    if not isinstance(note, str):
        raise MalformedInput("the proof carries no checkpoint and none was given")
    cp = _note.parse_checkpoint(note)
    cp.verify(key)
    # 3. size
    if cp.size != size:
        raise AuditError(f"the proof is for a tree of {size} records but the checkpoint is for "
                         f"{cp.size}",
                         hint="make a proof against that checkpoint: "
                              "secpod audit prove SEQ --checkpoint FILE")
    # 4. the record
    line = rec.encode()
    m = _canon.PREFIX_RE.match(line)
    if m is None or int(m.group(1)) != seq:
        raise AuditError(f"the proof's record is not record {seq}")
    try:
        parsed = json.loads(line)
    except ValueError as e:
        raise MalformedInput("the proof's record is not JSON") from e
    # 5. the path
    root = _merkle.root_from_inclusion(seq, size, _merkle.leaf_hash(line), hashes)
    if root != cp.root:
        raise AuditError(f"record {seq} is not in the log the checkpoint signs: the proof's "
                         "path does not lead to its root")
    if not isinstance(parsed, dict):
        raise MalformedInput("the proof's record is not a JSON object")
    return parsed


def prove_consistency(log_dir: Path, since: Path, *,
                      checkpoint: Path | None = None) -> dict[str, Any]:
    """A consistency proof from the checkpoint in ``since`` (one you kept) to ``checkpoint``
    (default: the latest).

    Raises AuditError when the newer checkpoint is smaller, or when the log no longer
    matches either checkpoint: that is what a rewritten log looks like.
    CheckpointError if a checkpoint is malformed or not signed by the log's key.
    """
    old_note, old = _read_checkpoint(log_dir, since)
    note, cp = _read_checkpoint(log_dir, checkpoint or log_dir / "checkpoint")
    return _consistency(log_dir, old_note, old, note, cp)


def consistency_between(log_dir: Path, old_note: str, note: str) -> dict[str, Any]:
    """:func:`prove_consistency` between two checkpoint notes (the older one may carry
    cosignatures: only the log's own signature is checked)."""
    old, cp = _note.parse_checkpoint(old_note), _note.parse_checkpoint(note)
    key = _verify.load_key(None, log_dir)
    if key is not None:
        old.verify(key)
        cp.verify(key)
    return _consistency(log_dir, old_note, old, note, cp)


def _consistency(log_dir: Path, old_note: str, old: _note.Checkpoint, note: str,
                 cp: _note.Checkpoint) -> dict[str, Any]:
    if old.origin != cp.origin:
        raise AuditError(f"the checkpoints are of two logs ({old.origin!r}, {cp.origin!r})")
    if old.size > cp.size:
        raise AuditError(f"the checkpoint you kept covers {old.size} records, more than the "
                         f"newer one ({cp.size})",
                         hint="give the older checkpoint with --since and the newer one with "
                              "--checkpoint")
    hashes, _ = _leaves(log_dir / "log.jsonl", cp.size, -1) if cp.size else ([], b"")
    if _merkle.frontier_root(_merkle.frontier_of(hashes)) != cp.root:
        raise AuditError(f"the log does not match its checkpoint of size {cp.size}",
                         hint="the log was changed: run `secpod audit verify`")
    if _merkle.frontier_root(_merkle.frontier_of(hashes[:old.size])) != old.root:
        raise AuditError(f"the log no longer matches the checkpoint you kept (size "
                         f"{old.size}): records it covers were changed or removed",
                         hint="run `secpod audit verify` and keep both checkpoints as evidence")
    path = _merkle.consistency_path(hashes, old.size, cp.size)
    return {
        "format": CONSISTENCY_FORMAT, "old_size": old.size, "tree_size": cp.size,
        "path": [base64.b64encode(h).decode() for h in path],
        "old_checkpoint": old_note, "checkpoint": note,
    }


def verify_consistency(proof: Mapping[str, Any], key: _note.VerifierKey,
                       old_checkpoint: str | None = None) -> dict[str, Any]:
    """Check a consistency proof offline; return what it proves.

    Pure. Checks: (1) the proof's shape; (2) both checkpoints (``old_checkpoint``, the
    one you kept, instead of the proof's when given) are signed by ``key``; (3) they
    are for the proof's sizes; (4) the RFC 9162 (2.1.4.2) path shows the older tree
    is a prefix of the newer. Returns {"old_size", "tree_size", "old_time", "time"}.
    Raises MalformedInput for a malformed proof, CheckpointError when a checkpoint is
    not the key's, AuditError when the proof does not hold.
    """
    if proof.get("format") != CONSISTENCY_FORMAT:
        raise MalformedInput("not a secpod audit consistency proof "
                             f"(format must be {CONSISTENCY_FORMAT})")
    old_size, size, path = proof.get("old_size"), proof.get("tree_size"), proof.get("path")
    if (not isinstance(old_size, int) or not isinstance(size, int) or isinstance(old_size, bool)
            or isinstance(size, bool) or not isinstance(path, list)):
        raise MalformedInput("the proof needs old_size, tree_size and path")
    hashes = _path_hashes(path, 128)
    old_note = old_checkpoint if old_checkpoint is not None else proof.get("old_checkpoint")
    note = proof.get("checkpoint")
    if not isinstance(old_note, str) or not isinstance(note, str):
        raise MalformedInput("the proof needs both checkpoints")
    old, cp = _note.parse_checkpoint(old_note), _note.parse_checkpoint(note)
    old.verify(key)
    cp.verify(key)
    if (old.size, cp.size) != (old_size, size):
        raise AuditError(f"the proof is from {old_size} to {size} records but the checkpoints "
                         f"are for {old.size} and {cp.size}")
    _merkle.verify_consistency(old.size, cp.size, old.root, cp.root, hashes)
    return {"old_size": old.size, "tree_size": cp.size, "old_time": old.time, "time": cp.time}


def load_proof(path: Path) -> dict[str, Any]:
    """Read a proof file. Raises MalformedInput if it is not a JSON object."""
    try:
        data = json.loads(_files.read_limited(path, 1 << 26))
    except OSError as e:
        raise AuditError(f"cannot read {path}: {e.strerror}") from e
    except ValueError as e:
        raise MalformedInput(f"{path} is not JSON") from e
    if not isinstance(data, dict):
        raise MalformedInput(f"{path} is not a proof")
    return data

