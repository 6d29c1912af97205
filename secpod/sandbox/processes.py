"""The processes of a running container, as its own pid namespace sees them (``top``).

Without a cgroup of its own (none is delegated on a host like this one) a container's
processes are found from /proc: its init and every descendant, plus any process in the
same pid namespace that is not (what ``exec`` started: its parent is outside). Each
is shown with its pid and parent pid inside the container (the last ``NSpid`` entry)
and its user as the container knows it (the host uid mapped back through the
container's ``uid_map``).
"""

from __future__ import annotations

import os
from pathlib import Path

from secpod._record import record

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from collections.abc import Iterator


# eq=False: instances are never compared; spares the generated __eq__ and __hash__.
@record(frozen=True, eq=False)
class Process:
    pid: int            # in the container's pid namespace
    ppid: int           # likewise; 0 when the parent is outside (init, exec'd processes)
    host_pid: int
    uid: int            # as the container sees it (-1: not mapped)
    elapsed: float      # seconds since it started
    cpu_seconds: float  # user + system time
    command: str


def _stat(pid: str) -> tuple[int, float, float] | None:
    """(ppid, start ticks, cpu ticks) from /proc/PID/stat, None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[1]), float(fields[19]), float(fields[11]) + float(fields[12])


def _status(pid: int) -> dict[str, str]:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def _pid_ns(pid: int | str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:  # another uid's (a subordinate id): not readable, found as descendant
        return None


def _all() -> Iterator[tuple[int, tuple[int, float, float]]]:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(entry)
            if st is not None:
                yield int(entry), st


def _uid_in(host_uid: int, uid_map: list[tuple[int, int, int]]) -> int:
    for inside, outside, count in uid_map:
        if outside <= host_uid < outside + count:
            return inside + host_uid - outside
    return -1


def of_container(init_pid: int) -> list[Process]:
    """The container's processes, init first then by pid; empty when init is gone."""
    table = dict(_all())
    if init_pid not in table:
        return []
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), [init_pid]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo += children.get(pid, [])
    ns = _pid_ns(init_pid)
    if ns is not None:
        found |= {pid for pid in table if pid not in found and _pid_ns(pid) == ns}
    uid_map: list[tuple[int, int, int]] = []
    try:
        for line in Path(f"/proc/{init_pid}/uid_map").read_text().splitlines():
            inside, outside, count = (int(x) for x in line.split())
            uid_map.append((inside, outside, count))
    except (OSError, ValueError):
        uid_map = []
    ticks = os.sysconf("SC_CLK_TCK")
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    inner: dict[int, int] = {}
    rows = []
    for pid in sorted(found):
        status = _status(pid)
        if not status:
            continue
        inner[pid] = int(status.get("NSpid", str(pid)).split()[-1])
        rows.append((pid, status))
    out = []
    for pid, status in rows:
        ppid, start, cpu = table[pid]
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            raw = b""
        command = raw.rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
        host_uid = int(status.get("Uid", "-1").split()[0])
        out.append(Process(
            pid=inner[pid], ppid=inner.get(ppid, 0), host_pid=pid,
            uid=_uid_in(host_uid, uid_map),
            elapsed=max(0.0, uptime - start / ticks), cpu_seconds=cpu / ticks,
            command=command or f"[{status.get('Name', '?')}]"))
    out.sort(key=lambda p: (p.host_pid != init_pid, p.pid))
    return out
