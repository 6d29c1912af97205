"""crun, secpod's default runtime (Debian 12: crun 1.8.1).

With no cgroup delegation (this includes the hybrid layout) crun runs with
``--cgroup-manager=disabled`` so that it does not try to make cgroups it cannot
write; the bundle then carries no resource limits (policies/layers/resources).
crun 1.8.1 has no ``features`` subcommand: what it supports is known of it.

``state`` and ``all_states`` read crun's own files as ``crun state`` does, with no crun
process (each one costs a fork, an exec and crun's parse of the container's
config.json, ~5 ms of every ``inspect``): the container's folder in the state root,
its ``status`` file (the init's pid and start time), that process's ``/proc/PID/stat``,
and the ``exec.fifo`` that exists until ``start``. What only crun can tell is asked of
crun: a container with a cgroup (paused is its freezer's state) and a status file not
as crun 1.x writes it.
"""

from __future__ import annotations

import json
import os

from secpod import paths
from secpod._files import which
from secpod.errors import HostError
from secpod.runtime import Features
from secpod.runtime._cli import CommandLineRuntime, seccomp_notify_rules

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

_SECCOMP_ACTIONS = ("SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL",
                    "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG",
                    "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP")


class CrunRuntime(CommandLineRuntime):
    name = "crun"
    console_socket_in_foreground = True

    __slots__ = ("cgroup_manager",)

    def __init__(self, binary: str, root: Path, cgroup_manager: str = "disabled") -> None:
        super().__init__(binary, root)
        self.cgroup_manager = cgroup_manager

    @classmethod
    def open(cls, *, can_limit_resources: bool = False) -> CrunRuntime:
        binary = which("crun")
        if binary is None:
            raise HostError("crun not found", hint="apt-get install crun")
        root = paths.ensure_private_dir(paths.runtime_dir()) / "crun"
        root.mkdir(mode=0o700, exist_ok=True)
        return cls(binary, root, "cgroupfs" if can_limit_resources else "disabled")

    def state(self, cid: str) -> dict[str, Any] | None:
        """crun's state of the container (as ``crun state`` prints it, less the
        annotations), or None when crun does not know it."""
        found = read_state(self.root, cid)
        return super().state(cid) if found is ASK_CRUN else found

    def all_states(self) -> dict[str, dict[str, Any]]:
        """As ``crun list``: every container in the state root with a status file."""
        try:
            names = [entry.name for entry in self.root.iterdir() if entry.name[0] != "."]
        except FileNotFoundError:
            return {}
        out = {}
        for cid in names:
            found = read_state(self.root, cid)
            if found is ASK_CRUN:
                return super().all_states()
            if found is not None:
                out[cid] = found
        return out

    def extra_global_args(self) -> list[str]:
        return [f"--cgroup-manager={self.cgroup_manager}"]

    def log_args(self, log: Path) -> list[str]:
        return [f"--log=file:{log}", "--log-format=json"]

    def features(self) -> Features:
        import subprocess
        proc = subprocess.run([self.binary, "--version"], capture_output=True, text=True,
                              check=False, timeout=30)
        first = (proc.stdout.splitlines() or ["crun"])[0]
        version = first.split()[-1] if first.startswith("crun version") else "unknown"
        return Features(name="crun", version=version, seccomp_actions=_SECCOMP_ACTIONS,
                        seccomp_flags=True, seccomp_notify=True, oci_annotations=True,
                        idmap_mounts=True, additional_gids=True,
                        source=f"known of crun {version} (it has no features command)")

    def precompile(self, config: dict[str, Any]) -> str | None:
        """The seccomp filter's BPF program, compiled once per distinct filter and kept
        (secpod.policies.seccomp_bpf), in ``run.oci.seccomp_bpf_data``: crun loads it
        instead of compiling the JSON again (12-20 ms for the default profile)."""
        oci = (config.get("linux") or {}).get("seccomp")
        if not oci:
            return None
        import base64

        from secpod.policies import seccomp_bpf

        program = seccomp_bpf.compiled(oci)
        if program is None:
            return None
        config.setdefault("annotations", {})[seccomp_bpf.ANNOTATION] = (
            base64.b64encode(program).decode())
        return seccomp_bpf.digest(program)

    def unenforced(self, config: dict[str, Any]) -> list[str]:
        seccomp = config.get("linux", {}).get("seccomp") or {}
        if seccomp_notify_rules(config) and not seccomp.get("listenerPath"):
            return ["seccomp SCMP_ACT_NOTIFY without a listenerPath: crun answers ENOSYS "
                    "to those calls instead"]
        return []


#: read_state's answer when the files do not settle it: crun itself is asked.
ASK_CRUN: dict[str, Any] = {}


def read_state(root: Path, cid: str) -> dict[str, Any] | None:
    """The container's state from crun's files in ``root``, as crun 1.x decides it: no
    folder or no status file, unknown (None: ``crun state`` fails); the init process
    gone, a zombie, or another process with its pid (its start time differs), stopped;
    else created while the exec fifo exists, running after. :data:`ASK_CRUN` when only
    crun can tell (a cgroup, whose freezer says paused) or the file is not crun's."""
    folder = root / cid
    try:
        with open(folder / "status", "rb") as f:
            status = json.loads(f.read())
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError):
        return ASK_CRUN
    if not isinstance(status, dict):
        return ASK_CRUN
    pid, started = status.get("pid"), status.get("process-start-time", 0)
    cgroup = status.get("cgroup-path")
    if (type(pid) is not int or type(started) is not int or not isinstance(cgroup, str)
            or cgroup or pid <= 0):
        return ASK_CRUN
    alive = _same_process(pid, started)
    if alive is None:
        return ASK_CRUN
    if not alive:
        now = "stopped"
    else:
        now = "created" if os.path.lexists(folder / "exec.fifo") else "running"
    return {"ociVersion": "1.0.0", "id": cid, "pid": pid if alive else 0, "status": now,
            "bundle": status.get("bundle"), "rootfs": status.get("rootfs"),
            "created": status.get("created"), "systemd-scope": status.get("scope") or "",
            "owner": status.get("owner")}


def _same_process(pid: int, started: int) -> bool | None:
    """Whether ``pid`` is still the process crun recorded (its start time, in clock
    ticks since boot; 0 in files of crun versions that did not record it), and has not
    ended (a zombie or a dead task has). None when it cannot be told (signalling it
    is not allowed: crun fails there too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return None
    if not started:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rpartition(b")")[2].split()
    except (FileNotFoundError, ProcessLookupError):
        return False
    try:
        letter, ticks = fields[0], int(fields[19])
    except (IndexError, ValueError):
        return None
    return ticks == started and letter not in (b"Z", b"X")
