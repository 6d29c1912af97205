"""What the benchmark scripts share (they run as root and time secpod as a test user)."""

from __future__ import annotations

import json
import pwd
import socket
import subprocess
from pathlib import Path


def as_user(user: str | None, argv: list[str], env: dict[str, str]) -> list[str]:
    """``argv`` with exactly ``env``, as ``user`` (through setpriv) when one is given."""
    envs = [f"{k}={v}" for k, v in sorted(env.items())]
    if user is None:
        return ["env", "-i", *envs, *argv]
    pw = pwd.getpwnam(user)
    return ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups",
            "--reset-env", "env", "-i", *envs, *argv]


def rss_kb(pid: int) -> int:
    """A process's resident memory (VmRSS) in KiB; 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def hyperfine(out: Path, command: str, *, runs: int, prepare: str | None = None) -> float:
    """Median seconds of ``command`` over ``runs`` runs; its JSON export goes to ``out``.
    Without ``prepare`` no shell runs in between (``-N``) and three warm-up runs come
    first; with it, each run is prepared by that shell command (one warm-up)."""
    argv = ["hyperfine", "-N", "-w", "3"] if prepare is None else [
        "hyperfine", "-w", "1", "--prepare", prepare]
    subprocess.run([*argv, "-r", str(runs), "--export-json", str(out), command], check=True,
                   stdout=subprocess.DEVNULL)
    return float(json.loads(out.read_text())["results"][0]["median"])
