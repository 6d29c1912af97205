"""Text for a terminal: control characters from records are escaped (secpod/_text.py)."""

from __future__ import annotations

import pytest

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


@pytest.mark.parametrize("seconds, said", [
    (0.2, "Less than a second"), (1, "1 second"), (59, "59 seconds"), (60, "About a minute"),
    (89, "About a minute"), (150, "2 minutes"), (3599, "About an hour"),
    (3 * 3600, "3 hours"), (47 * 3600, "47 hours"), (3 * 86400, "3 days"),
    (20 * 86400, "2 weeks"), (90 * 86400, "3 months"), (800 * 86400, "2 years"),
    (-5, "Less than a second")])
def test_ago_says_durations_as_docker_ps_does(seconds: float, said: str) -> None:
    from secpod._text import ago

    assert ago(seconds) == said
