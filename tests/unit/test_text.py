"""Text for a terminal: control characters from records are escaped (secpod/_text.py)."""

from __future__ import annotations

from secpod._text import printable, table_lines


def test_controls_are_escaped() -> None:
    assert printable("a\x1b[1A\x1b[2Kb") == "a\\x1b[1A\\x1b[2Kb"
    assert printable("x\ry\x7f\x9b") == "x\\x0dy\\x7f\\x9b"
    assert printable("evil\u202edcba") == "evil\\u202edcba"
    assert printable("one\ntwo") == "one\\x0atwo"
    assert printable("one\ntwo\t", keep_newlines=True) == "one\ntwo\\x09"
    assert printable("plain ünïcode, 東京") == "plain ünïcode, 東京"


def test_table_cells_are_escaped_and_aligned() -> None:
    lines = table_lines(["A", "B"], [["x\x1b]0;pwned\x07", None], ["yy", 3]])
    assert lines[1] == "x\\x1b]0;pwned\\x07"
    assert lines[0].index("B") == lines[2].index("3") == len(lines[1]) + 2
