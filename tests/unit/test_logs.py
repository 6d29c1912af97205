"""The k8s-file log writer and reader (secpod.sandbox.logs): streaming, rotation, follow."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import pytest

from secpod.errors import AdminPolicyError, FloorRefused, ProfileError
from secpod.policies import floor
from secpod.policies.profile import build
from secpod.sandbox import logs
from secpod.sandbox.logs import RECORD_MAX, LogWriter


def _read(path: Path) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for stream, data in logs.read(path):
        out[stream] = out.get(stream, b"") + data
    return out


def _records(path: Path) -> list[list[bytes]]:
    return [ln.split(b" ", 3)[1:] for ln in path.read_bytes().splitlines()]


def _feed(path: Path, chunks: int, size: int) -> tuple[int, int]:
    """Write ``chunks`` chunks of one line without a newline; (peak bytes allocated,
    most bytes held), checking after each write that the file grew by what came in."""
    log = LogWriter(path, size_max=1 << 40)
    chunk = b"x" * size
    most_held = 0
    tracemalloc.start()
    try:
        for i in range(1, chunks + 1):
            log.write(b"stdout", chunk)
            most_held = max(most_held, log.held())
            # Streamed: all but what is held is in the file already.
            assert path.stat().st_size >= i * size - RECORD_MAX
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    log.close()
    return peak, most_held


def test_a_long_line_is_streamed_in_bounded_records_with_linear_work(tmp_path: Path) -> None:
    # The work per write is bounded by the chunk, not by the line so far: what is held
    # is at most one record, and memory in use does not grow with the line (holding
    # the line, as before, made 8x the chunks cost 8x the memory and 64x the copying).
    small_peak, small_held = _feed(tmp_path / "a", 25, 64 * 1024)
    big_peak, big_held = _feed(tmp_path / "b", 200, 64 * 1024)
    assert small_held <= RECORD_MAX and big_held <= RECORD_MAX
    assert big_peak < 2 * small_peak + 64 * 1024, (small_peak, big_peak)
    assert big_peak < 1 << 20
    assert _read(tmp_path / "b") == {"stdout": b"x" * (200 * 64 * 1024)}
    recs = _records(tmp_path / "b")
    assert all(len(r[2]) <= RECORD_MAX for r in recs)
    assert {r[1] for r in recs} == {b"P"}        # no newline ever: partial pieces only


def test_pieces_of_a_line_end_with_a_final_record(tmp_path: Path) -> None:
    log = LogWriter(tmp_path / "log")
    log.write(b"stdout", b"y" * (RECORD_MAX + 10))
    log.write(b"stdout", b"z\nnext\n")
    log.close()
    recs = _records(tmp_path / "log")
    assert [r[:2] for r in recs] == [[b"stdout", b"P"], [b"stdout", b"F"], [b"stdout", b"F"]]
    assert recs[1][2] == b"y" * 10 + b"z"
    assert _read(tmp_path / "log") == {"stdout": b"y" * (RECORD_MAX + 10) + b"z\nnext\n"}


def test_rotation_keeps_two_halves_and_reading_crosses_them(tmp_path: Path) -> None:
    path = tmp_path / "ctr.log"
    size_max = 64 * 1024
    log = LogWriter(path, size_max=size_max)
    lines = [f"line {i:06d}\n".encode() for i in range(20000)]
    for ln in lines:
        log.write(b"stdout", ln)
    log.close()
    rotated = logs.rotated(path)
    assert rotated.exists()
    assert path.stat().st_size <= size_max // 2 and rotated.stat().st_size <= size_max // 2
    kept = _read(path)["stdout"]
    # The newest lines, whole and in order, as much as the limit holds.
    assert b"".join(lines).endswith(kept) and kept.startswith(b"line ")
    assert kept.count(b"\n") == len(_records(path)) + len(_records(rotated))
    assert path.stat().st_size + rotated.stat().st_size > size_max // 2


def test_follow_reads_a_record_cut_at_the_exit_to_its_end(tmp_path: Path) -> None:
    path = tmp_path / "ctr.log"
    path.write_bytes(b"T stdout F first\nT stdout P hal")
    calls = []

    def alive() -> bool:
        # The monitor finishes the record, then the container is gone.
        if not calls:
            with open(path, "ab") as f:
                f.write(b"f a line\nT stderr F bye\n")
        calls.append(1)
        return False

    got = list(logs.read(path, alive=alive, poll=0))
    assert b"".join(d for s, d in got if s == "stdout") == b"first\nhalf a line"
    assert b"".join(d for s, d in got if s == "stderr") == b"bye\n"


def test_follow_goes_across_a_rotation(tmp_path: Path) -> None:
    path = tmp_path / "ctr.log"
    path.write_bytes(b"T stdout F one\n")
    steps = iter(range(3))

    def alive() -> bool:
        step = next(steps)
        if step == 0:   # conmon's way: a new file renamed over the old one
            with open(path, "ab") as f:
                f.write(b"T stdout F two\n")
            tmp = tmp_path / "ctr.log.tmp"
            tmp.write_bytes(b"T stdout F three\n")
            os.replace(tmp, path)
        return step < 1

    got = b"".join(d for _, d in logs.read(path, alive=alive, poll=0))
    assert got == b"one\ntwo\nthree\n"


def test_rotate_for_restart_keeps_the_last_run(tmp_path: Path) -> None:
    path = tmp_path / "ctr.log"
    path.write_bytes(b"T stdout F run1\n")
    logs.rotate_for_restart(path)
    assert path.read_bytes() == b"" and logs.rotated(path).read_bytes() == b"T stdout F run1\n"
    logs.rotate_for_restart(path)      # an empty log is left as it is
    assert logs.rotated(path).read_bytes() == b"T stdout F run1\n"


def _profile(size: object = None) -> object:
    doc: dict[str, object] = {}
    if size is not None:
        doc["logs"] = {"size_max": size}
    return build(doc, "p", "p.toml", ("p",))


def test_profile_log_size_default_and_bounds() -> None:
    assert _profile().log_size_max == 10 << 20      # type: ignore[attr-defined]
    assert _profile("1m").log_size_max == 1 << 20   # type: ignore[attr-defined]
    with pytest.raises(ProfileError, match="below the smallest log size"):
        _profile("4k")


def test_floor_log_size_max_refuses_a_larger_profile(tmp_path: Path) -> None:
    policy = floor.parse_admin_policy(tmp_path / "policy.toml", '[logs]\nsize_max = "5m"\n')
    assert policy.log_size_max == 5 << 20
    floor.check_log_size(policy, "alice", _profile("5m"))  # type: ignore[arg-type]
    with pytest.raises(FloorRefused, match=r"logs\.size_max in .*above the floor's maximum"):
        floor.check_log_size(policy, "alice", _profile())  # type: ignore[arg-type]
    with pytest.raises(AdminPolicyError, match="takes one key: size_max"):
        floor.parse_admin_policy(tmp_path / "policy.toml", '[logs]\nmax = "5m"\n')
    with pytest.raises(AdminPolicyError, match="not a size"):
        floor.parse_admin_policy(tmp_path / "policy.toml", '[logs]\nsize_max = "lots"\n')
