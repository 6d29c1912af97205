"""The canonical line of a record, and the times in it.

A record is one line of compact JSON: ASCII only, no whitespace, keys
sorted at every level, except that the two chain fields come first,
``{"seq":N,"prev":"<hex>",...}``, so a verifier checks the chain by comparing
a line's prefix with the bytes it expects instead of parsing the line. The
same record always gives the same bytes; the Merkle leaf is exactly those
bytes without the newline.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

from secpod.errors import UsageError

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

ZERO_HASH = "0" * 64
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
PREFIX_RE = re.compile(rb'^\{"seq":(0|[1-9][0-9]*),"prev":"([0-9a-f]{64})",')


def encode(seq: int, prev: str, body: dict[str, Any]) -> bytes:
    """The canonical line (without newline) of the record ``body`` at ``seq`` after ``prev``."""
    rest = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False)
    return b'{"seq":%d,"prev":"%s",%s' % (seq, prev.encode(), rest[1:].encode())


def chain_prefix(seq: int, prev: bytes) -> bytes:
    """The bytes every line at ``seq`` after leaf hash hex ``prev`` starts with."""
    return b'{"seq":%d,"prev":"%s",' % (seq, prev)


def now() -> str:
    """The current time, RFC 3339 UTC with microseconds (sortable as a string)."""
    # isoformat with explicit microseconds is TIME_FORMAT up to the zone, and 3x faster.
    return datetime.now(UTC).isoformat(timespec="microseconds")[:26] + "Z"


def format_time(t: datetime) -> str:
    return t.astimezone(UTC).strftime(TIME_FORMAT)


_RELATIVE = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_time(text: str, *, now_: datetime | None = None) -> str:
    """Turn a user's time (RFC 3339, a date, or ``30m``/``24h``/``7d`` ago) into record form.

    Raises UsageError if ``text`` is none of those.
    """
    text = text.strip()
    m = _RELATIVE.match(text)
    if m:
        base = now_ or datetime.now(UTC)
        return format_time(base - timedelta(**{_UNITS[m.group(2)]: int(m.group(1))}))
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as e:
        raise UsageError(
            f"{text!r} is not a time",
            hint="give an RFC 3339 time (2024-05-01T12:00:00Z), a date (2024-05-01), "
                 "or an age such as 30m, 24h, 7d") from e
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return format_time(t)
