"""crun, secpod's default runtime (Debian 12: crun 1.8.1).

With no cgroup delegation (this includes the hybrid layout) crun runs with
``--cgroup-manager=disabled`` so that it does not try to make cgroups it cannot
write; the bundle then carries no resource limits (policies/layers/resources).
crun 1.8.1 has no ``features`` subcommand: what it supports is known of it.
"""

from __future__ import annotations

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
