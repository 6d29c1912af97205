"""Text for a person's terminal: what came from a record, a log or an image is escaped.

A record's fields are written by whoever caused the action (a container name, an image
reference, a reason quoting a file). Printed raw, an escape sequence in one of them can
erase the lines above it, retitle the terminal or hide text (bidirectional overrides), so
every table and report secpod prints as text goes through :func:`printable`. JSON output
is escaped by the encoder already.
"""

from __future__ import annotations

import re

__all__ = ["printable", "table_lines"]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

# C0 and C1 controls, DEL, and the bidirectional embeddings, overrides and isolates.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_UNSAFE_KEEP_NL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escape(m: re.Match[str]) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with every control character written as ``\\xNN`` (``\\uNNNN`` for the
    bidirectional controls); newlines kept when ``keep_newlines``."""
    return (_UNSAFE_KEEP_NL if keep_newlines else _UNSAFE).sub(_escape, text)


def table_lines(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """Aligned columns, two spaces apart, each cell escaped by :func:`printable`."""
    cells = [[printable(str(c)) for c in headers]] + [
        ["" if c is None else printable(str(c)) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            for r in cells]


def ago(seconds: float) -> str:
    """A duration as Docker's ps says it: "5 seconds", "About a minute", "3 hours"."""
    s = max(int(seconds), 0)
    if s < 1:
        return "Less than a second"
    if s < 60:
        return f"{s} second" + ("s" if s != 1 else "")
    m = round(s / 60)
    if m == 1:
        return "About a minute"
    if m < 60:
        return f"{m} minutes"
    h = round(s / 3600)
    if h == 1:
        return "About an hour"
    if h < 48:
        return f"{h} hours"
    d = s // 86400
    if d < 14:
        return f"{d} days"
    if d < 60:
        return f"{d // 7} weeks"
    if d < 730:
        return f"{d // 30} months"
    return f"{d // 365} years"


def clock(seconds: float) -> str:
    """A duration as ps prints TIME and ELAPSED: ``[DD-]HH:MM:SS``."""
    s = max(int(seconds), 0)
    days, s = divmod(s, 86400)
    text = f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"
    return f"{days}-{text}" if days else text
