"""Times and durations as Docker's command line takes them.

- :func:`parse_duration`: Go's ``time.ParseDuration`` (``10s``, ``1m30s``, ``1.5h``,
  ``250ms``): ``--health-interval``, ``--restart`` backoff, ``logs --since 10m``.
- :func:`parse_point`: Docker's ``--since``/``--until`` (``timetypes.GetTimestamp``): a
  duration back from now, a Unix time (``1700000000`` or ``1700000000.5``), or an
  RFC 3339 time or date (``2026-12-03T10:00:00Z``, ``2026-12-03``); a time without a zone
  is local time, as Docker reads it.

Each raises UsageError naming the flag and the forms it takes.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from secpod.errors import UsageError

__all__ = ["parse_duration", "parse_point"]

_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
         "h": 3600.0}
_TERM = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_DURATION_LIKE = re.compile(r"^[+-]?[\d.]+[a-zµμ]+([\d.]+[a-zµμ]+)*$")
_UNIX = re.compile(r"^\d{1,12}(\.\d{1,9})?$")


def parse_duration(text: str, flag: str, *, allow_negative: bool = False) -> float:
    """Go's duration syntax in seconds. ``0`` alone needs no unit."""
    s = text.strip()
    sign = 1.0
    if s[:1] in ("+", "-"):
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    total, pos = 0.0, 0
    while pos < len(s):
        m = _TERM.match(s, pos)
        if m is None:
            break
        total += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    if not s or pos != len(s) or (sign < 0 and not allow_negative):
        raise UsageError(f"{flag}: invalid duration {text!r}",
                         hint="a Go duration: a number and a unit (ns, us, ms, s, m, h), "
                              "e.g. 30s, 1m30s, 1.5h")
    return sign * total


def parse_point(text: str, flag: str, *, now: datetime | None = None) -> datetime:
    """A point in time (aware, UTC) from Docker's ``--since``/``--until`` forms."""
    s = text.strip()
    base = now or datetime.now(UTC)
    if _UNIX.match(s):
        return datetime.fromtimestamp(float(s), UTC)
    if _DURATION_LIKE.match(s):
        return base - timedelta(seconds=parse_duration(s, flag, allow_negative=True))
    try:
        t = datetime.fromisoformat(s.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{flag}: {text!r} is not a time",
            hint="give a duration back from now (10m, 1h30m), a Unix time (1700000000), "
                 "or an RFC 3339 time (2026-12-03T10:00:00Z) or date") from None
    if t.tzinfo is None:
        t = t.astimezone()  # local time, as Docker reads a time without a zone
    return t.astimezone(UTC)


_FRACTION = re.compile(r"\.(\d+)")


def parse_point_nanos(text: str, flag: str, *, now: datetime | None = None) -> int:
    """:func:`parse_point` in nanoseconds since the epoch, keeping all nine digits of an
    RFC 3339 time (``docker logs -t`` prints nanoseconds; ``--since`` takes them back)."""
    s = text.strip()
    m = _FRACTION.search(s)
    if m is None or _UNIX.match(s) or _DURATION_LIKE.match(s):
        t = parse_point(s, flag, now=now)
        return int(t.timestamp()) * 1_000_000_000 + t.microsecond * 1000
    digits = m.group(1)
    t = parse_point(s[:m.start()] + s[m.end():], flag, now=now)
    return int(t.timestamp()) * 1_000_000_000 + int((digits + "0" * 9)[:9])
