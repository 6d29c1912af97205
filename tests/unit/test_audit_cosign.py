"""C2SP cosignatures of checkpoints, and the witness's rules (pure, on temp folders)."""

from __future__ import annotations

import base64
import struct
from pathlib import Path

import pytest

from secpod.audit import _cosign, _note
from secpod.errors import CheckpointError, MalformedInput


def _checkpoint(key: _note.SignerKey, size: int, root: bytes = b"\x01" * 32) -> str:
    return key.sign_note(_note.checkpoint_text(key.name, size, root, "2026-12-02T00:00:00Z"))


def test_a_cosignature_is_a_c2sp_cosignature_v1_line() -> None:
    user, host = _note.SignerKey.generate("u/log"), _note.SignerKey.generate("h/host")
    note = _cosign.cosign(host, _checkpoint(user, 3), 1700000000)
    line = note.splitlines()[-1]
    name, raw = line.removeprefix("\u2014 ").split()
    blob = base64.b64decode(raw)
    assert name == "h/host" and len(blob) == 4 + 8 + 64
    assert blob[:4] == _cosign.cosignature_key_id("h/host", host.verifier().public)
    assert struct.unpack(">Q", blob[4:12]) == (1700000000,)
    assert _cosign.verify_cosignature(note, host.verifier()) == 1700000000
    _note.parse_checkpoint(note).verify(user.verifier())  # the user's signature still holds


def test_a_cosignature_fails_on_other_text_or_another_key() -> None:
    user, host = _note.SignerKey.generate("u/log"), _note.SignerKey.generate("h/host")
    note = _cosign.cosign(host, _checkpoint(user, 3), 1700000000)
    with pytest.raises(CheckpointError, match="no cosignature"):
        _cosign.verify_cosignature(note, _note.SignerKey.generate("other").verifier())
    forged = note.replace("\n3\n", "\n4\n", 1)
    with pytest.raises(CheckpointError, match="does not verify"):
        _cosign.verify_cosignature(forged, host.verifier())


def test_the_witness_refuses_what_does_not_extend_what_it_cosigned(tmp_path: Path) -> None:
    user, host = _note.SignerKey.generate("u/log"), _note.SignerKey.generate("h/host")
    w = _cosign.Witness(tmp_path, host)
    vkey = str(user.verifier())
    assert w.cosign(7, _checkpoint(user, 3), vkey, None).count("\u2014 ") == 2
    assert w.last(7) is not None and w.last(8) is None
    with pytest.raises(_cosign.Refusal, match="fewer than") as e:
        w.cosign(7, _checkpoint(user, 2), vkey, None)
    assert e.value.rewrite
    with pytest.raises(_cosign.Refusal, match="not the one the host cosigned"):
        w.cosign(7, _checkpoint(user, 3, b"\x02" * 32), vkey, None)
    other = _note.SignerKey.generate("u/log")
    with pytest.raises(_cosign.Refusal, match="key"):
        w.cosign(7, _checkpoint(other, 5), str(other.verifier()), None)
    with pytest.raises(MalformedInput, match="consistency proof"):
        w.cosign(7, _checkpoint(user, 5), vkey, None)
    with pytest.raises(CheckpointError):  # signed by a key other than the one given
        w.cosign(9, _checkpoint(other, 1), vkey, None)
