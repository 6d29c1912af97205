"""runc, the second runtime (Debian 12: runc 1.1.5), as docs/runc-notes.md found it.

Rootless runc has no cgroup-manager flag: with nothing delegated it runs only a
config that asks for no cgroup (no ``cgroupsPath``, no resources), which is what
secpod writes on such a host. It logs with ``--log FILE`` (not ``file:``), lives in
``/usr/sbin`` (not on a user's PATH), wants a terminal as its own stdio in the
foreground, and ignores crun's ``run.oci.*`` annotations and idmapped mounts.
What it would refuse is refused by secpod first, with the reason (:meth:`refuses`);
what it would do otherwise is recorded as not enforced (:meth:`unenforced`).
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


def runc_path() -> str | None:
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    return which("runc", path=search)


class RuncRuntime(CommandLineRuntime):
    name = "runc"
    console_socket_in_foreground = False

    __slots__ = ("can_limit_resources",)

    def __init__(self, binary: str, root: Path, can_limit_resources: bool = False) -> None:
        super().__init__(binary, root)
        self.can_limit_resources = can_limit_resources

    @classmethod
    def open(cls, *, can_limit_resources: bool = False) -> RuncRuntime:
        binary = runc_path()
        if binary is None:
            raise HostError("runc not found (looked in PATH and /usr/sbin)",
                            hint="apt-get install runc, or use --runtime crun")
        root = paths.ensure_private_dir(paths.runtime_dir()) / "runc"
        root.mkdir(mode=0o700, exist_ok=True)
        return cls(binary, root, can_limit_resources)

    def log_args(self, log: Path) -> list[str]:
        return [f"--log={log}", "--log-format=json"]

    def features(self) -> Features:
        import subprocess
        proc = subprocess.run([self.binary, "features"], capture_output=True, text=True,
                              check=False, timeout=30)
        try:
            data = json.loads(proc.stdout) if proc.returncode == 0 else {}
        except json.JSONDecodeError:
            data = {}
        seccomp = data.get("linux", {}).get("seccomp", {}) or {}
        version = (data.get("annotations") or {}).get("org.opencontainers.runc.version",
                                                       "unknown")
        return Features(
            name="runc", version=version,
            seccomp_actions=tuple(seccomp.get("actions") or ()),
            seccomp_flags=False,   # 1.1.5 refuses any; its features do not list them
            seccomp_notify="SCMP_ACT_NOTIFY" in (seccomp.get("actions") or ()),
            oci_annotations=False,
            idmap_mounts="idmap" in (data.get("mountOptions") or ()),
            additional_gids=False,  # rootless runc refuses any
            source="runc features" if data else "runc features failed",
        )

    def refuses(self, config: dict[str, Any]) -> list[str]:
        linux = config.get("linux", {})
        seccomp = linux.get("seccomp") or {}
        out = []
        if seccomp.get("flags"):
            out.append(f"seccomp flags {', '.join(seccomp['flags'])} (runc 1.1 refuses any "
                       "seccomp flag)")
        if seccomp_notify_rules(config) and not seccomp.get("listenerPath"):
            out.append("a seccomp SCMP_ACT_NOTIFY rule without a listenerPath")
        if config.get("process", {}).get("user", {}).get("additionalGids"):
            out.append("supplementary groups for the process (rootless runc refuses "
                       "additionalGids)")
        if not self.can_limit_resources:
            asked = {k for k, v in (linux.get("resources") or {}).items()
                     if v and k != "devices"}
            if asked or linux.get("cgroupsPath"):
                out.append("cgroup resources or a cgroupsPath without a cgroup this user "
                           "can write (runc fails where crun ignores them)")
        if any("idmap" in m.get("options", ()) or m.get("uidMappings")
               for m in config.get("mounts", [])):
            out.append("idmapped mounts (runc 1.1 makes a plain bind instead)")
        return out

    def unenforced(self, config: dict[str, Any]) -> list[str]:
        out = []
        ignored = sorted(k for k in config.get("annotations", {}) if k.startswith("run.oci."))
        if ignored:
            out.append(f"annotations {', '.join(ignored)} (crun's; runc ignores them)")
        extra = sorted(set(os.getgroups()) - {os.getgid()})
        if extra:
            out.append("supplementary groups: rootless runc does not drop the caller's "
                       f"groups ({', '.join(map(str, extra))}); crun does")
        return out
