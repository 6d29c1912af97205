"""RFC 6962 hashing and C2SP signed notes, against published vectors and by property."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secpod.audit import _merkle, _note, _proof
from secpod.audit._verify import _BatchTree
from secpod.errors import AuditError, CheckpointError, MalformedInput

VECTORS = json.loads((Path(__file__).parent.parent / "assets" / "audit" /
                      "rfc6962-vectors.json").read_text())
LEAVES = [_merkle.leaf_hash(bytes.fromhex(x)) for x in VECTORS["leaves"]]


@pytest.mark.parametrize("size", range(9))
def test_roots_match_rfc6962(size: int) -> None:
    want = bytes.fromhex(VECTORS["roots"][size])
    assert _merkle.frontier_root(_merkle.frontier_of(LEAVES[:size])) == want
    assert _merkle.subtree_root(LEAVES, 0, size) == want
    tree = _BatchTree()
    tree.extend(LEAVES[:3])
    tree.extend(LEAVES[3:size])
    assert tree.root() == want or size < 3


@pytest.mark.parametrize("case", VECTORS["inclusion"], ids=lambda c: f"{c['index']}of{c['size']}")
def test_inclusion_paths_match_rfc6962(case: dict[str, object]) -> None:
    index, size = int(case["index"]), int(case["size"])  # type: ignore[call-overload]
    want = [bytes.fromhex(h) for h in case["path"]]  # type: ignore[attr-defined]
    assert _merkle.inclusion_path(LEAVES, index, size) == want
    root = _merkle.root_from_inclusion(index, size, LEAVES[index], want)
    assert root == bytes.fromhex(VECTORS["roots"][size])


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 70), data=st.data())
def test_every_inclusion_proof_verifies_and_a_changed_one_does_not(n: int, data: st.DataObject
                                                                    ) -> None:
    leaves = [_merkle.leaf_hash(b"record %d" % i) for i in range(n)]
    root = _merkle.frontier_root(_merkle.frontier_of(leaves))
    i = data.draw(st.integers(0, n - 1))
    path = _merkle.inclusion_path(leaves, i, n)
    assert _merkle.root_from_inclusion(i, n, leaves[i], path) == root
    if path:
        j = data.draw(st.integers(0, len(path) - 1))
        bad = list(path)
        bad[j] = bytes(32)
        assert _merkle.root_from_inclusion(i, n, leaves[i], bad) != root
    other = leaves[(i + 1) % n]
    if other != leaves[i]:
        assert _merkle.root_from_inclusion(i, n, other, path) != root


@settings(max_examples=40, deadline=None)
@given(cuts=st.lists(st.integers(0, 40), max_size=6))
def test_batched_tree_equals_leaf_by_leaf(cuts: list[int]) -> None:
    leaves = [_merkle.leaf_hash(b"%d" % i) for i in range(sum(cuts))]
    tree = _BatchTree()
    done = 0
    for c in cuts:
        tree.extend(leaves[done:done + c])
        done += c
        assert tree.root() == _merkle.frontier_root(_merkle.frontier_of(leaves[:done]))


def test_a_proof_of_the_wrong_shape_is_refused() -> None:
    path = _merkle.inclusion_path(LEAVES, 5, 8)
    with pytest.raises(AuditError, match="longer"):
        _merkle.root_from_inclusion(5, 8, LEAVES[5], [*path, bytes(32)])
    with pytest.raises(AuditError, match="shorter"):
        _merkle.root_from_inclusion(5, 8, LEAVES[5], path[:-1])
    with pytest.raises(AuditError, match="outside"):
        _merkle.root_from_inclusion(8, 8, LEAVES[5], path)


# --- signed notes --------------------------------------------------------------


def test_go_note_vector_signs_byte_for_byte() -> None:
    v = VECTORS["note"]
    key = _note.SignerKey.parse(v["skey"])
    assert str(key) == v["skey"]
    assert str(key.verifier()) == v["vkey"]
    assert key.sign_note(v["text"]) == v["text"] + "\n" + v["signature_line"]
    vk = _note.VerifierKey.parse(v["vkey"])
    assert vk.key_id.hex() == "c74f20a3"


@pytest.mark.parametrize("bad", [
    "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",   # wrong id
    "PeterNeumann+c74f20a3+AhpjZQcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",   # wrong type
    "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # space in name
    "PeterNeumann+c74f20a3",
    "PeterNeumann+zz+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
])
def test_malformed_verifier_keys_are_refused(bad: str) -> None:
    with pytest.raises(CheckpointError):
        _note.VerifierKey.parse(bad)


def test_checkpoint_round_trip_and_failures() -> None:
    key = _note.SignerKey.generate("example.org/secpod/audit/alice")
    root = _merkle.frontier_root(_merkle.frontier_of(LEAVES))
    note = key.sign_note(_note.checkpoint_text(key.name, 8, root, "2024-05-01T00:00:00.000000Z"))
    cp = _note.parse_checkpoint(note)
    assert (cp.origin, cp.size, cp.root, cp.time) == (key.name, 8, root,
                                                      "2024-05-01T00:00:00.000000Z")
    cp.verify(key.verifier())

    other = _note.SignerKey.generate(key.name)
    with pytest.raises(CheckpointError, match="signed by another key"):
        cp.verify(other.verifier())
    changed = _note.parse_checkpoint(note.replace("\n8\n", "\n9\n"))
    with pytest.raises(CheckpointError, match="does not verify"):
        changed.verify(key.verifier())
    for broken in (note.replace("\u2014", "-"), note.rstrip("\n"), "x\n", note + "\x01"):
        with pytest.raises(CheckpointError):
            _note.parse_checkpoint(broken)


def test_verify_proof_is_pure_and_names_each_failure() -> None:
    key = _note.SignerKey.generate("example.org/log")
    lines = [b'{"seq":%d,"prev":"%s","x":1}' % (i, b"0" * 64) for i in range(5)]
    leaves = [_merkle.leaf_hash(x) for x in lines]
    root = _merkle.frontier_root(_merkle.frontier_of(leaves))
    note = key.sign_note(_note.checkpoint_text(key.name, 5, root, "t"))
    import base64

    proof = {"format": _proof.FORMAT, "seq": 3, "tree_size": 5, "record": lines[3].decode(),
             "path": [base64.b64encode(h).decode()
                      for h in _merkle.inclusion_path(leaves, 3, 5)],
             "checkpoint": note}
    assert _proof.verify_proof(proof, key.verifier())["x"] == 1
    with pytest.raises(AuditError, match="not in the log"):
        _proof.verify_proof({**proof, "record": lines[3].decode().replace("1}", "2}")},
                            key.verifier())
    with pytest.raises(AuditError, match="is not record 2"):
        _proof.verify_proof({**proof, "seq": 2}, key.verifier())
    with pytest.raises(CheckpointError, match="another key"):
        _proof.verify_proof(proof, _note.SignerKey.generate("example.org/log").verifier())
    with pytest.raises(MalformedInput):
        _proof.verify_proof({**proof, "path": ["%%%"]}, key.verifier())
    one = {**proof, "record": lines[1].decode(),
           "path": [base64.b64encode(h).decode() for h in _merkle.inclusion_path(leaves, 1, 5)]}
    assert _proof.verify_proof({**one, "seq": 1}, key.verifier())["seq"] == 1
    with pytest.raises(MalformedInput, match="needs seq"):  # JSON true is not record 1
        _proof.verify_proof({**one, "seq": True}, key.verifier())


@pytest.mark.parametrize("case", VECTORS["consistency"],
                         ids=lambda c: f"{c['old_size']}to{c['size']}")
def test_consistency_proofs_match_rfc6962(case: dict[str, object]) -> None:
    m, n = int(case["old_size"]), int(case["size"])  # type: ignore[call-overload]
    want = [bytes.fromhex(h) for h in case["path"]]  # type: ignore[attr-defined]
    assert _merkle.consistency_path(LEAVES, m, n) == want
    _merkle.verify_consistency(m, n, bytes.fromhex(VECTORS["roots"][m]),
                               bytes.fromhex(VECTORS["roots"][n]), want)


@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 90), data=st.data())
def test_every_consistency_proof_verifies_and_a_rewritten_log_does_not(
        n: int, data: st.DataObject) -> None:
    leaves = [_merkle.leaf_hash(b"record %d" % i) for i in range(n)]
    m = data.draw(st.integers(0, n))
    root, old_root = _merkle.subtree_root(leaves, 0, n), _merkle.subtree_root(leaves, 0, m)
    path = _merkle.consistency_path(leaves, m, n)
    _merkle.verify_consistency(m, n, old_root, root, path)
    if 0 < m < n:
        # A record the old checkpoint covers is rewritten: its root no longer fits.
        i = data.draw(st.integers(0, m - 1))
        forged = [*leaves[:i], _merkle.leaf_hash(b"forged"), *leaves[i + 1:]]
        with pytest.raises(AuditError):
            _merkle.verify_consistency(m, n, _merkle.subtree_root(forged, 0, m), root, path)
        # Any changed, dropped or added path element is refused.
        if path:
            j = data.draw(st.integers(0, len(path) - 1))
            for bad in ([*path[:j], _merkle.leaf_hash(path[j]), *path[j + 1:]], path[:-1],
                        [*path, path[0]]):
                with pytest.raises(AuditError):
                    _merkle.verify_consistency(m, n, old_root, root, bad)
    with pytest.raises(AuditError, match="cannot extend"):
        _merkle.verify_consistency(n + 1, n, root, root, [])


def test_verify_consistency_is_pure_and_names_each_failure() -> None:
    import base64

    key = _note.SignerKey.generate("example.org/log")
    leaves = [_merkle.leaf_hash(b'{"seq":%d}' % i) for i in range(9)]

    def note(size: int, signer: _note.SignerKey = key) -> str:
        root = _merkle.frontier_root(_merkle.frontier_of(leaves[:size]))
        return signer.sign_note(_note.checkpoint_text(signer.name, size, root, f"t{size}"))

    proof = {"format": _proof.CONSISTENCY_FORMAT, "old_size": 5, "tree_size": 9,
             "path": [base64.b64encode(h).decode()
                      for h in _merkle.consistency_path(leaves, 5, 9)],
             "old_checkpoint": note(5), "checkpoint": note(9)}
    assert _proof.verify_consistency(proof, key.verifier()) == {
        "old_size": 5, "tree_size": 9, "old_time": "t5", "time": "t9"}
    # The old checkpoint a verifier kept can stand in for the proof's.
    assert _proof.verify_consistency(proof, key.verifier(), note(5))["old_size"] == 5
    with pytest.raises(AuditError, match="from 5 to 9 records but the checkpoints are for 4"):
        _proof.verify_consistency(proof, key.verifier(), note(4))
    other = _note.SignerKey.generate("example.org/log")
    with pytest.raises(CheckpointError):
        _proof.verify_consistency(proof, other.verifier())
    with pytest.raises(AuditError, match="changed or removed|does not extend"):
        _proof.verify_consistency({**proof, "path": list(reversed(proof["path"]))},
                                  key.verifier())
    with pytest.raises(MalformedInput, match="not a secpod audit consistency proof"):
        _proof.verify_consistency({**proof, "format": _proof.FORMAT}, key.verifier())
    with pytest.raises(MalformedInput, match="old_size, tree_size and path"):
        _proof.verify_consistency({**proof, "old_size": "5"}, key.verifier())
    with pytest.raises(MalformedInput, match="not base64"):
        _proof.verify_consistency({**proof, "path": ["!!"]}, key.verifier())
