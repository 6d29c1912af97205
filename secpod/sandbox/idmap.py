"""User namespace id mappings: container root is the invoking user, the rest
comes from the user's subordinate ranges (/etc/subuid, /etc/subgid).

Host uid 0 never appears in a mapping: the ranges are checked, not trusted.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from secpod._record import record
from secpod.errors import HostError


@record(frozen=True)
class Range:
    start: int
    count: int


@record(frozen=True)
class IdMap:
    """One OCI idMapping: ``container_id`` .. +size maps to ``host_id`` .. +size."""

    container_id: int
    host_id: int
    size: int

    def as_oci(self) -> dict[str, int]:
        return {"containerID": self.container_id, "hostID": self.host_id, "size": self.size}


def subordinate_ranges(path: Path, user: str, uid: int) -> list[Range]:
    """The ranges ``path`` (subuid or subgid format) grants ``user`` (by name or number)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    except OSError as e:
        raise HostError(f"cannot read {path}: {e.strerror}") from e
    ranges = []
    for line in text.splitlines():
        parts = line.strip().split(":")
        if len(parts) != 3 or parts[0] not in (user, str(uid)):
            continue
        try:
            start, count = int(parts[1]), int(parts[2])
        except ValueError:
            continue
        if start > 0 and count > 0:
            ranges.append(Range(start, count))
    return ranges


@record(frozen=True)
class Grant:
    """One line of /etc/subuid or /etc/subgid: ``owner`` (name or number) gets a range."""

    line: int
    owner: str
    start: int
    count: int

    @property
    def end(self) -> int:
        return self.start + self.count


def grant_problems(path: Path) -> tuple[list[str], list[tuple[Grant, Grant]]]:
    """What is wrong with a whole subuid/subgid file: malformed lines and overlapping grants.

    Returns (one message per malformed line, each pair of grants whose ranges overlap).
    Two users whose ranges overlap share host ids: files one user's containers create are
    the other's too, and a user whose own lines overlap gets ``newuidmap: write to uid_map
    failed: Invalid argument`` on every run. Raises HostError when ``path`` cannot be read.
    """
    try:
        text = path.read_text()
    except FileNotFoundError:
        return [], []
    except (OSError, UnicodeDecodeError) as e:
        raise HostError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from e
    bad: list[str] = []
    grants: list[Grant] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) != 3 or not parts[0] or not parts[1].isdigit() or not parts[2].isdigit():
            bad.append(f"{path}:{n}: {line!r} is not NAME:START:COUNT")
            continue
        start, count = int(parts[1]), int(parts[2])
        if count == 0:
            bad.append(f"{path}:{n}: {line!r} grants no ids (count 0)")
            continue
        if start == 0:
            bad.append(f"{path}:{n}: {line!r} includes host id 0 (root)")
            continue
        grants.append(Grant(n, _owner_name(parts[0]), start, count))
    overlaps = []
    ordered = sorted(grants, key=lambda g: g.start)
    for i, g in enumerate(ordered):  # sorted by start: only later grants starting below g.end
        for h in ordered[i + 1:]:
            if h.start >= g.end:
                break
            overlaps.append((g, h))
    return bad, overlaps


def _owner_name(owner: str) -> str:
    """A numeric owner as its user name where one exists (files may use either)."""
    if owner.isdigit():
        try:
            return pwd.getpwuid(int(owner)).pw_name
        except KeyError:
            return owner
    return owner


def mappings(own_id: int, ranges: list[Range]) -> list[IdMap]:
    """Container id 0 -> ``own_id``; container ids 1.. -> the subordinate ranges in order.

    Raises HostError when a range would map host id 0 or overlaps the user's own id.
    """
    maps = [IdMap(0, own_id, 1)]
    next_id = 1
    for r in ranges:
        if r.start <= 0 or r.start <= own_id < r.start + r.count:
            raise HostError(
                f"subordinate range {r.start}:{r.count} includes host id 0 or your own id",
                hint="fix /etc/subuid and /etc/subgid: ranges start above the real users' ids",
            )
        maps.append(IdMap(next_id, r.start, r.count))
        next_id += r.count
    return maps


def current_user() -> tuple[str, int, int]:
    uid, gid = os.getuid(), os.getgid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    return name, uid, gid
