"""Whole-file checks of /etc/subuid and /etc/subgid (what `secpod doctor` reports)."""

from __future__ import annotations

from pathlib import Path

from secpod.sandbox.idmap import grant_problems


def _file(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "subuid"
    p.write_text(text)
    return p


def test_disjoint_ranges_are_fine(tmp_path: Path) -> None:
    bad, overlaps = grant_problems(_file(tmp_path, "alice:100000:65536\nbob:165536:65536\n"))
    assert bad == [] and overlaps == []


def test_two_users_sharing_host_ids_are_named(tmp_path: Path) -> None:
    text = "alice:100000:65536\nbob:165536:65536\ncarol:120000:1000\n"
    bad, overlaps = grant_problems(_file(tmp_path, text))
    assert bad == []
    assert [(a.owner, b.owner, a.line, b.line) for a, b in overlaps] == [("alice", "carol", 1, 3)]


def test_adjacent_ranges_do_not_overlap(tmp_path: Path) -> None:
    _, overlaps = grant_problems(_file(tmp_path, "a:100:10\nb:110:10\n"))
    assert overlaps == []


def test_one_users_overlapping_lines(tmp_path: Path) -> None:
    _, overlaps = grant_problems(_file(tmp_path, "alice:100000:65536\nalice:100500:10\n"))
    assert [(a.owner, b.owner) for a, b in overlaps] == [("alice", "alice")]


def test_malformed_lines_are_named_with_their_number(tmp_path: Path) -> None:
    text = "alice:100000:65536\n# a comment\n\nbob:x:10\ncarol:0:10\ndave:5000\neve:7000:0\n"
    bad, overlaps = grant_problems(_file(tmp_path, text))
    assert overlaps == []
    assert [m.split(": ")[0].rsplit(":", 1)[1] for m in bad] == ["4", "5", "6", "7"]
    assert "includes host id 0" in bad[1] and "count 0" in bad[3]


def test_a_missing_file_has_no_problems(tmp_path: Path) -> None:
    assert grant_problems(tmp_path / "absent") == ([], [])
