"""Reading records back: parse a log's lines and select the ones a person asks for."""

from __future__ import annotations

import codecs
import fnmatch
import json
import json.scanner
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from secpod._record import record
from secpod.audit import _canon, _verify
from secpod.errors import AuditError

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any


@record(frozen=True)
class Selection:
    """Which records to show; every field given must match (times in record form)."""

    user: str | None = None
    container: str | None = None
    image: str | None = None
    action: str | None = None
    since: str | None = None
    until: str | None = None

    @classmethod
    def from_args(cls, *, user: str | None = None, container: str | None = None,
                  image: str | None = None, action: str | None = None,
                  since: str | None = None, until: str | None = None) -> Selection:
        """Build a selection from a person's words. Raises UsageError for a bad time."""
        return cls(user=user, container=container, image=image, action=action,
                   since=_canon.parse_time(since) if since else None,
                   until=_canon.parse_time(until) if until else None)

    def matches(self, rec: dict[str, Any]) -> bool:
        t = rec.get("time")
        if self.since and (not isinstance(t, str) or t < self.since):
            return False
        if self.until and (not isinstance(t, str) or t > self.until):
            return False
        if self.user and self.user not in (rec.get("user"), str(rec.get("uid"))):
            return False
        if self.action and not fnmatch.fnmatchcase(str(rec.get("action")), self.action):
            return False
        if self.container:
            cid, name = _pair(rec, "container", "id", "name")
            if not (name == self.container or (cid and cid.startswith(self.container))):
                return False
        if self.image:
            ref, digest = _pair(rec, "image", "ref", "digest")
            want = self.image
            if not (want in ref or (digest and (digest.startswith(want)
                                                or digest.startswith("sha256:" + want)))):
                return False
        return True


def _pair(rec: dict[str, Any], field: str, a: str, b: str) -> tuple[str, str]:
    """Two string members of ``rec[field]``, "" where missing or not strings (a hand-edited
    line may hold anything)."""
    obj = rec.get(field)
    if not isinstance(obj, dict):
        return "", ""
    x, y = obj.get(a), obj.get(b)
    return (x if isinstance(x, str) else ""), (y if isinstance(y, str) else "")


def warn(message: str) -> None:
    print(f"secpod: warning: {message}", file=sys.stderr)


LINE_MAX = 1 << 24  # far above any record the collector or a user's log takes


def iter_records(log: Path, *, on_bad: Callable[[str], None] = warn
                 ) -> Iterator[dict[str, Any]]:
    """Parse every record of the log file ``log``; lines that are not records go to ``on_bad``.

    Raises AuditError if the log cannot be read.
    """
    if not log.exists():
        raise AuditError(f"there is no audit log at {log}",
                         hint="a log starts with the first action secpod records")
    pending = ""
    n = 0
    # The C scanner behind json.loads, called directly: a report parses every line.
    scan = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]
    decode = codecs.getincrementaldecoder("utf-8")("replace").decode
    skipping = False  # inside a line longer than LINE_MAX: not held, said once
    try:
        for chunk in _verify.read_chunks(log):
            text = decode(chunk)
            if skipping:
                nl = text.find("\n")
                if nl < 0:
                    continue
                text, skipping = text[nl + 1:], False
            lines = (pending + text).split("\n")
            pending = lines.pop()
            if len(pending) > LINE_MAX:
                skipping, pending = True, ""
                lines.append("")  # counted and reported below as a line that is no record
            for line in lines:
                n += 1
                try:
                    rec, end = scan(line, 0)
                except (ValueError, StopIteration):
                    rec, end = None, -1
                if rec.__class__ is dict and end == len(line):
                    yield rec
                else:
                    on_bad(f"line {n} of {log} is not a record (run `secpod audit verify`)")
    except OSError as e:
        raise AuditError(f"cannot read {log}: {e.strerror}") from e
    if pending:
        on_bad(f"{log} ends in a torn line ({len(pending)} bytes; run `secpod audit verify`)")


def select(log: Path, selection: Selection) -> Iterator[dict[str, Any]]:
    """The records of ``log`` that ``selection`` matches, in log order."""
    return (r for r in iter_records(log) if selection.matches(r))
