"""The log on disk: tamper detection (one change per case), recovery, checkpoints, locking.

Each failure case copies tests/assets/audit/good (23 records, checkpoints at
5, 10, 15, 20), changes one thing, and asserts what `verify` names.
"""

from __future__ import annotations

import base64
import json
import multiprocessing
import os
import shutil
import stat
from pathlib import Path

import pytest

from secpod.audit import _note, _store
from secpod.audit._verify import verify_dir
from secpod.errors import AuditError

GOOD = Path(__file__).parent.parent / "assets" / "audit" / "good"
NAME = "test.example/secpod/audit/alice"


@pytest.fixture
def log(tmp_path: Path) -> Path:
    d = tmp_path / "audit"
    shutil.copytree(GOOD, d)
    d.chmod(0o700)
    for p in d.iterdir():
        p.chmod(0o600)
    return d


def lines(d: Path) -> list[bytes]:
    return (d / "log.jsonl").read_bytes().splitlines(keepends=True)


def write(d: Path, ls: list[bytes]) -> None:
    (d / "log.jsonl").write_bytes(b"".join(ls))


def kinds(d: Path, **kw: object) -> list[tuple[str, int | None]]:
    return [(p.kind, p.seq) for p in verify_dir(d, **kw).problems]  # type: ignore[arg-type]


def body(i: int = 0, **kw: object) -> dict[str, object]:
    b: dict[str, object] = {"time": f"2024-05-02T00:00:{i % 60:02d}.000000Z", "host": "h",
                            "uid": 1000, "user": "alice", "action": "image.import",
                            "outcome": "ok", "reason": None}
    b.update(kw)
    return b


def test_the_good_log_is_intact(log: Path) -> None:
    r = verify_dir(log)
    assert r.intact, r.problems
    assert (r.records, r.checkpoints, r.covered) == (23, 4, 20)


def test_a_modified_record_is_named(log: Path) -> None:
    ls = lines(log)
    ls[3] = ls[3].replace(b'"outcome":"ok"', b'"outcome":"refused"')
    write(log, ls)
    r = verify_dir(log)
    assert not r.intact
    first = r.problems[0]
    assert (first.kind, first.seq) == ("modified", 3)
    assert "record 3 was modified" in first.message
    assert any(p.kind == "checkpoint-mismatch" and "size 5" in p.message for p in r.problems)


def test_an_inserted_record_is_named(log: Path) -> None:
    ls = lines(log)
    write(log, [*ls[:8], ls[4], *ls[8:]])
    assert kinds(log)[0] == ("inserted", 8)


def test_a_deleted_record_is_named(log: Path) -> None:
    ls = lines(log)
    del ls[12]
    write(log, ls)
    r = verify_dir(log)
    assert (r.problems[0].kind, r.problems[0].seq) == ("deleted", 12)
    assert "record 12 missing" in r.problems[0].message


def test_reordered_records_are_named(log: Path) -> None:
    ls = lines(log)
    ls[6], ls[7] = ls[7], ls[6]
    write(log, ls)
    k = kinds(log)
    assert k[0] == ("deleted", 6) and ("inserted", 8) in k


def test_truncation_back_past_a_checkpoint_is_named(log: Path) -> None:
    write(log, lines(log)[:17])
    r = verify_dir(log)
    msgs = [p.message for p in r.problems if p.kind == "truncated"]
    assert any("holds 17 records" in m and "covers 20" in m and "truncated back past a "
               "checkpoint" in m for m in msgs)


def test_truncation_is_caught_by_a_checkpoint_kept_elsewhere(log: Path, tmp_path: Path) -> None:
    kept = tmp_path / "kept-checkpoint"
    shutil.copy(log / "checkpoint", kept)
    write(log, lines(log)[:12])
    for f in ("checkpoints.jsonl", "checkpoint", "state.json"):
        (log / f).unlink()
    assert verify_dir(log).intact  # nothing local left to tell
    r = verify_dir(log, checkpoint=kept)
    assert [p.kind for p in r.problems] == ["truncated"]
    assert str(kept) in r.problems[0].message


def test_a_torn_final_line_is_reported_never_accepted(log: Path) -> None:
    with open(log / "log.jsonl", "ab") as f:
        f.write(b'{"seq":23,"prev":"ab')
    r = verify_dir(log)
    assert [(p.kind, p.seq) for p in r.problems] == [("torn", 23)]
    assert "20 bytes without a newline" in r.problems[0].message


def test_a_checkpoint_signed_by_another_key_is_named(log: Path) -> None:
    other = _note.SignerKey.generate(NAME)
    cps = (log / "checkpoints.jsonl").read_text().splitlines()
    note = json.loads(cps[1])["note"]
    cp = _note.parse_checkpoint(note)
    forged = other.sign_note(cp.text)
    cps[1] = json.dumps({"note": forged})
    (log / "checkpoints.jsonl").write_text("\n".join(cps) + "\n")
    r = verify_dir(log)
    assert [p.kind for p in r.problems] == ["checkpoint-signature"]
    assert "checkpoints.jsonl:2 (size 10" in r.problems[0].message
    assert f"expected {NAME} (key id" in r.problems[0].message


def test_verifying_with_the_wrong_key_fails_every_checkpoint(log: Path) -> None:
    other = _note.SignerKey.generate(NAME).verifier()
    r = verify_dir(log, key=str(other))
    assert r.problems and all(p.kind == "checkpoint-signature" for p in r.problems)


def test_a_missing_key_is_named(log: Path) -> None:
    (log / "key").unlink()
    (log / "key.vkey").unlink()
    assert kinds(log) == [("missing-key", None)]


def test_a_change_to_the_last_record_is_caught_by_the_writer_state(log: Path) -> None:
    ls = lines(log)
    ls[-1] = ls[-1].replace(b'"outcome":"ok"', b'"outcome":"error"')
    write(log, ls)
    assert kinds(log) == [("modified", 22)]


def test_a_hand_edited_line_is_named(log: Path) -> None:
    ls = lines(log)
    ls[9] = b'{"seq": 9, "oops": true}\n'
    write(log, ls)
    assert kinds(log)[0] == ("malformed", 9)


# --- appending and recovery ----------------------------------------------------


def test_append_continues_the_chain_and_checkpoints_on_request(log: Path) -> None:
    d = _store.LogDir(log, name=NAME, checkpoint_every=5)
    rec = d.append(body(), checkpoint=True)
    assert rec["seq"] == 23
    cp = _note.parse_checkpoint((log / "checkpoint").read_text())
    assert cp.size == 24
    r = verify_dir(log)
    assert r.intact and r.covered == 24


def test_the_next_append_moves_a_torn_line_aside_and_says_so(log: Path) -> None:
    torn = b'{"seq":23,"prev":"ab'
    with open(log / "log.jsonl", "ab") as f:
        f.write(torn)
    d = _store.LogDir(log, name=NAME, checkpoint_every=5)
    rec = d.append(body())
    assert rec["seq"] == 24
    recs = [json.loads(x) for x in lines(log)]
    recovery = recs[23]
    assert recovery["action"] == "audit.recover"
    assert "torn line (20 bytes" in recovery["reason"]
    moved = Path(recovery["details"]["moved_to"])
    assert moved.read_bytes() == torn
    assert verify_dir(log).intact


def test_records_removed_from_the_end_are_recorded_on_the_next_append(log: Path) -> None:
    write(log, lines(log)[:21])
    d = _store.LogDir(log, name=NAME, checkpoint_every=100)
    d.append(body())
    recovery = json.loads(lines(log)[21])
    assert recovery["action"] == "audit.recover"
    assert "holds 21 records but 23 were written" in recovery["reason"]


@pytest.mark.parametrize("damage", ["missing", "garbage", "stale"])
def test_a_missing_or_stale_state_file_is_rebuilt_from_the_log(log: Path, damage: str) -> None:
    d = _store.LogDir(log, name=NAME, checkpoint_every=5)
    old = (log / "state.json").read_bytes()
    d.append(body(1))
    if damage == "missing":
        (log / "state.json").unlink()
    elif damage == "garbage":
        (log / "state.json").write_bytes(b"not a state")
    else:
        (log / "state.json").write_bytes(old)
    d2 = _store.LogDir(log, name=NAME, checkpoint_every=5)
    assert d2.append(body(2))["seq"] == 24
    assert [json.loads(x)["action"] for x in lines(log)[-2:]] == ["image.import"] * 2
    assert verify_dir(log).intact


def test_a_new_log_makes_its_key_and_private_files(tmp_path: Path) -> None:
    d = _store.LogDir(tmp_path / "new" / "audit", name="h/secpod/audit/u")
    d.append(body())
    root = tmp_path / "new" / "audit"
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert stat.S_IMODE((root / "log.jsonl").stat().st_mode) == 0o600
    assert stat.S_IMODE((root / "key").stat().st_mode) == 0o600
    assert (root / "key.vkey").read_text().startswith("h/secpod/audit/u+")
    assert verify_dir(root).intact


def test_a_key_that_cannot_be_written_leaves_no_temp_file(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    real_fsync = os.fsync

    def full_disk(fd: int) -> None:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full_disk)
    root = tmp_path / "audit"
    with pytest.raises(AuditError, match="No space left"):
        _store.LogDir(root, name="h/x").append(body())
    assert sorted(p.name for p in root.iterdir()) == ["log.jsonl"]


def test_a_directory_others_can_write_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "audit"
    root.mkdir(mode=0o777)
    root.chmod(0o777)
    with pytest.raises(AuditError, match="writable by other users"):
        _store.LogDir(root, name="h/x").append(body())


def _writer(path: str, who: int, n: int) -> None:
    d = _store.LogDir(Path(path), name="h/x", checkpoint_every=7)
    for i in range(n):
        d.append(body(i, user=f"w{who}", details={"i": i}))


def test_concurrent_writers_lose_and_interleave_nothing(tmp_path: Path) -> None:
    path = tmp_path / "audit"
    _store.LogDir(path, name="h/x").ensure_key()
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(path), w, 25)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    r = verify_dir(path)
    assert r.intact, r.problems
    recs = [json.loads(x) for x in lines(path)]
    assert len(recs) == 100
    for w in range(4):
        assert [x["details"]["i"] for x in recs if x["user"] == f"w{w}"] == list(range(25))
    assert os.path.exists(path / "checkpoint")


def test_signatures_checked_in_a_child_process_give_the_same_verdict(log: Path) -> None:
    from secpod.audit._verify import (
        _beside,
        load_checkpoints,
        load_key,
        read_chunks,
        read_written,
        verify_stream,
    )

    cps = (log / "checkpoints.jsonl").read_text().splitlines()
    cp = _note.parse_checkpoint(json.loads(cps[2])["note"])
    # Same name and key id, a signature that is not the key's: only Ed25519 can tell.
    forged = base64.b64encode(cp.signatures[0].key_id + bytes(64)).decode()
    bad = f"{cp.text}\n\u2014 {NAME} {forged}\n"
    cps[2] = json.dumps({"note": bad})
    (log / "checkpoints.jsonl").write_text("\n".join(cps) + "\n")
    key = load_key(None, log)
    assert key is not None
    notes, _ = load_checkpoints(log)
    results = [verify_stream(read_chunks(log / "log.jsonl"), key=key, checkpoints=notes,
                             written=read_written(log), signatures=s)
               for s in (None, _beside(key, threshold=1))]
    assert results[0].problems == results[1].problems
    assert [(p.kind, "size 15" in p.message) for p in results[0].problems] == [
        ("checkpoint-signature", True)]
    assert "does not verify" in results[0].problems[0].message


@pytest.mark.parametrize("damage", ["none", "first-half", "second-half", "seam", "torn",
                                    "cut"])
def test_the_two_process_walk_agrees_with_the_single_one(log: Path, damage: str,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    from secpod.audit import _verify

    ls = lines(log)
    half = sum(map(len, ls)) // 2
    at_seam = next(i for i in range(len(ls)) if sum(map(len, ls[:i + 1])) > half)
    if damage == "first-half":
        ls[3] = ls[3].replace(b'"ok"', b'"error"')
    elif damage == "second-half":
        ls[19] = ls[19].replace(b'"ok"', b'"error"')
    elif damage == "seam":
        del ls[at_seam + 1]
    elif damage == "torn":
        ls.append(b'{"seq":23,"pr')
    elif damage == "cut":
        ls = ls[:16]
    write(log, ls)
    single = verify_dir(log)
    monkeypatch.setattr(_verify, "PARALLEL_MIN", 0)
    assert _verify._split_point(log / "log.jsonl") is not None
    double = verify_dir(log)
    assert double == single
    assert double.intact == (damage == "none")


def test_a_binary_checkpoint_or_key_file_is_named_malformed(log: Path, tmp_path: Path) -> None:
    from secpod.audit import _proof
    from secpod.audit._verify import load_key
    from secpod.errors import CheckpointError

    junk = tmp_path / "junk"
    junk.write_bytes(b"\x88\xff\x00not utf-8")
    with pytest.raises(CheckpointError):
        _proof.prove_consistency(log, junk)
    with pytest.raises(CheckpointError):
        load_key(str(junk), log)


def test_deferred_records_are_written_at_once_and_synced_by_the_next_durable_one(
        log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Group commit: durable=False writes the record (a killed process loses nothing
    already appended) and leaves its sync to the next durable record."""
    synced: list[int] = []
    real = os.fdatasync
    monkeypatch.setattr(_store.os, "fdatasync", lambda fd: (synced.append(fd), real(fd)))
    d = _store.LogDir(log, name=NAME, checkpoint_every=100)
    before = len(lines(log))
    d.append(body(1), durable=False)
    d.append(body(2), durable=False)
    assert len(lines(log)) == before + 2 and synced == []
    d.append(body(3))
    assert len(synced) == 1
    d.flush()  # nothing left to sync
    assert len(synced) == 1
    assert verify_dir(log).intact


def test_flush_syncs_deferred_records_and_a_checkpoint_covers_them(
        log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real = os.fdatasync
    monkeypatch.setattr(_store.os, "fdatasync", lambda fd: (synced.append(fd), real(fd)))
    d = _store.LogDir(log, name=NAME, checkpoint_every=100)
    d.append(body(1), durable=False)
    d.flush()
    assert len(synced) == 1
    d.flush()
    assert len(synced) == 1
    d.append(body(2), durable=False)
    d.append(body(3), checkpoint=True)  # the log is synced before it is signed
    n = len(synced)
    d.flush()
    assert len(synced) == n
    cp = _note.parse_checkpoint((log / "checkpoint").read_text())
    assert cp.size == len(lines(log))
    assert verify_dir(log).intact


def test_a_command_whose_deferred_records_cannot_be_synced_does_not_succeed(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from secpod import cli
    from secpod.audit import _log

    def broken() -> None:
        raise AuditError("cannot write the audit log x: Input/output error", hint="fix it")

    monkeypatch.setattr(_log, "flush", broken)
    assert cli._flush_audit(0) != 0
    assert cli._flush_audit(3) == 3  # a failure already reported keeps its own code
    err = capsys.readouterr().err
    assert "cannot write the audit log" in err and "hint: fix it" in err
