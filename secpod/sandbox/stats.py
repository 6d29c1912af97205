"""``stats``: a running container's CPU and memory use, from /proc.

Where no cgroup is delegated to the user a container has no cgroup of its own to read
counters from, so its processes are found as ``top`` finds them
(:mod:`secpod.sandbox.processes`) and added up: CPU time from ``/proc/PID/stat``
(two samples, so the share is of the time between them; 100 % is one CPU, as
Docker's), resident memory from ``/proc/PID/status``. The limit shown is the host's
memory: a ``-m`` this host does not enforce is no limit. Network and block I/O are not
measured (``/proc/PID/io`` of a process under a subordinate uid is not readable); they
are reported as unknown, never as zero.
"""

from __future__ import annotations

import time
from pathlib import Path

from secpod._record import record

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

    from secpod.sandbox.state import Container

#: What stats says of itself once (stderr), on a host without delegated cgroups.
SOURCE_NOTE = ("CPU and memory are added up from /proc (no cgroup is delegated to this "
               "user); network and block I/O are not measured")


# eq=False: instances are never compared; spares the generated __eq__ and __hash__.
@record(frozen=True, eq=False)
class Stats:
    id: str
    name: str
    cpu_percent: float
    memory: int           # bytes resident
    memory_limit: int     # bytes: the host's (no limit is enforced here)
    pids: int
    running: bool

    def as_dict(self) -> dict[str, Any]:
        from secpod.images import human_size

        return {"ID": self.id[:12], "Name": self.name,
                "CPUPerc": f"{self.cpu_percent:.2f}%",
                "MemUsage": f"{human_size(self.memory)} / {human_size(self.memory_limit)}",
                "MemPerc": f"{100 * self.memory / self.memory_limit:.2f}%"
                if self.memory_limit else "0.00%",
                "NetIO": "--", "BlockIO": "--", "PIDs": str(self.pids),
                "CPU": self.cpu_percent, "MemBytes": self.memory,
                "MemLimitBytes": self.memory_limit}


def _host_memory() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _rss(host_pid: int) -> int:
    try:
        for line in Path(f"/proc/{host_pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _sample(pid: int | None) -> tuple[float, int, int]:
    """(CPU seconds, resident bytes, process count) of the container whose init is
    ``pid`` (zeros when it does not run)."""
    from secpod.sandbox import processes

    if not pid:
        return 0.0, 0, 0
    procs = processes.of_container(pid)
    return (sum(p.cpu_seconds for p in procs), sum(_rss(p.host_pid) for p in procs),
            len(procs))


def collect(containers: list[tuple[Container, int | None]], *,
            interval: float = 0.5) -> list[Stats]:
    """One reading of each ``(container, init pid or None)``: CPU over ``interval``."""
    limit = _host_memory()
    first = [_sample(pid) for _, pid in containers]
    start = time.monotonic()
    if any(pid for _, pid in containers):
        time.sleep(interval)
    second = [_sample(pid) for _, pid in containers]
    wall = max(time.monotonic() - start, 1e-6)
    return [Stats(ctr.id, ctr.name, max(0.0, 100 * (b[0] - a[0]) / wall), b[1], limit, b[2],
                  pid is not None)
            for (ctr, pid), a, b in zip(containers, first, second, strict=True)]
