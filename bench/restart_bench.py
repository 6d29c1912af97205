"""Resident memory of a restarting container's monitor side (issue 15).

A `-d --restart always` container that exits every 0.5 s. For 15 s, every 10 ms, the
resident memory (VmRSS) of every process of the monitor side is summed: conmon, and the
exit callback chain (`secpod container-cleanup`, then `sh` + `sleep` for the backoff, then
`secpod container-cleanup --restart`). The container's own processes are not counted.
Printed: the steady state (conmon alone, while the container runs), the backoff (sh and
sleep), and the peak with the Python callback that records the exit and starts the next
run, with how long that callback lives.

Run through `scripts/bench.sh restart` (as root; it drops to the test user).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common  # noqa: E402  (bench/ is sys.path[0] when a script runs)

from secpod.images.build import busybox_rootfs, write_layout  # noqa: E402

HOME = Path(os.environ["HOME"])
SECONDS = float(os.environ.get("BENCH_SECONDS", "15"))


def sh(*argv: str) -> str:
    return subprocess.run(argv, check=True, text=True, capture_output=True).stdout


def monitor_side(cid: str, conmon_pid_file: Path) -> dict[str, int]:
    """kind -> summed VmRSS (KiB) of the monitor side's processes now."""
    out: dict[str, int] = {}
    try:
        conmon = int(conmon_pid_file.read_text())
    except (OSError, ValueError):
        conmon = -1
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        text = b" ".join(argv)
        if pid == conmon:
            kind = "conmon"
        elif b"container-cleanup" in text and cid.encode() in text:
            kind = "sh" if argv[0].endswith(b"sh") else "python"
        elif argv[0].endswith(b"sleep") and not text.startswith(b"sleep 0.5"):
            kind = "sleep" if _common.rss_kb(pid) and _parent_is_cleanup(pid, cid) else ""
        else:
            kind = ""
        if kind:
            out[kind] = out.get(kind, 0) + _common.rss_kb(pid)
    return out


def _parent_is_cleanup(pid: int, cid: str) -> bool:
    try:
        ppid = int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
        return cid.encode() in Path(f"/proc/{ppid}/cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return False


def main() -> None:
    layout = HOME / "layout"
    busybox_rootfs(HOME / "rootfs")
    write_layout(HOME / "rootfs", layout, cmd=["/bin/true"])
    sh("secpod", "image", "import", str(layout), "--name", "bench/busybox:1")
    cid = sh("secpod", "run", "-d", "--restart", "always", "bench/busybox:1",
             "sh", "-c", "sleep 0.5; exit 1").strip()
    try:
        pidfile = HOME / "data" / "secpod" / "containers" / cid / "conmon.pid"
        steady = backoff = peak = 0
        python_samples = 0
        deadline = time.monotonic() + SECONDS
        while time.monotonic() < deadline:
            kinds = monitor_side(cid, pidfile)
            total = sum(kinds.values())
            peak = max(peak, total)
            if set(kinds) == {"conmon"}:
                steady = max(steady, total)
            elif "python" not in kinds and kinds.keys() & {"sh", "sleep"}:
                # the wait itself (the old conmon may still be finishing beside it)
                backoff = max(backoff, kinds.get("sh", 0) + kinds.get("sleep", 0))
            if "python" in kinds:
                python_samples += 1
            time.sleep(0.01)
        restarts = sh("secpod", "inspect", "--format", "{{.RestartCount}}", cid).strip()
    finally:  # an always-restarting container must not outlive the benchmark
        subprocess.run(["secpod", "rm", "-f", cid], capture_output=True, check=False)
    print("| what | resident memory |")
    print("|---|---|")
    print(f"| conmon alone, while the container runs | {steady / 1024:.1f} MB |")
    print(f"| the backoff wait (sh + sleep) | {backoff / 1024:.1f} MB |")
    print(f"| peak, with the Python exit callback (about {python_samples * 10} ms in "
          f"{SECONDS:.0f} s, {restarts} restarts) | {peak / 1024:.1f} MB |")


if __name__ == "__main__":
    main()
