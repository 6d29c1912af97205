"""``secpod info``: this host and this user's store as Podman's ``info`` shows them.

The keys are Podman 4's (``host``, ``store``, ``version``; ``host.security``,
``host.ociRuntime``, ``store.graphRoot``, ...), so a script that reads
``podman info --format json`` finds what it reads; secpod's own facts (the runtimes it
may use, whether resource limits are enforced, what this host does not enforce) are
under ``secpod``. Every value is read from this host now; nothing is invented, and
what cannot be read is left out.
"""

from __future__ import annotations

import os
import platform
import shutil

from secpod.errors import Error

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

# Go's field names where they are not the JSON key with a capital (for --format).
_GO_NAMES = {"ociRuntime": "OCIRuntime", "idMappings": "IDMappings", "uidmap": "UIDMap",
             "gidmap": "GIDMap", "memTotal": "MemTotal", "cpus": "CPUs",
             "graphRoot": "GraphRoot", "runRoot": "RunRoot"}


def _meminfo() -> dict[str, int]:
    out = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                words = value.split()
                if words and words[0].isdigit():
                    out[key] = int(words[0]) * (1024 if words[1:] == ["kB"] else 1)
    except OSError:
        pass
    return out


def _distribution() -> dict[str, str]:
    try:
        text = open("/etc/os-release").read()  # noqa: SIM115 - one small read
    except OSError:
        return {}
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key] = value.strip('"')
    return {"distribution": fields.get("ID", ""), "version": fields.get("VERSION_ID", ""),
            "codename": fields.get("VERSION_CODENAME", "")}


def _version_of(binary: str | None) -> str:
    if binary is None:
        return ""
    from secpod.sandbox.doctor import _version

    return _version([binary, "--version"])


def _uptime() -> str:
    try:
        seconds = int(float(open("/proc/uptime").read().split()[0]))  # noqa: SIM115
    except (OSError, ValueError, IndexError):
        return ""
    return f"{seconds // 3600}h {seconds % 3600 // 60}m {seconds % 60}s"


def collect() -> dict[str, Any]:
    """The facts, as JSON-ready values. Raises nothing for a host that cannot run
    containers: what is missing is said (``secpod doctor`` says how to fix it)."""
    from secpod import __version__, paths, runtime
    from secpod.runtime.runc import runc_path
    from secpod.sandbox import host as hostmod
    from secpod.sandbox import operations, preflight

    features = hostmod.probe()
    mem = _meminfo()
    try:
        default_runtime = runtime.choose(None, None)
    except Error:
        default_runtime = runtime.DEFAULT
    binaries = {"crun": shutil.which("crun"), "runc": runc_path()}
    conmon = shutil.which("conmon", path=os.environ.get("PATH", "") + ":/usr/bin")
    try:
        ident = preflight.identity()
        idmaps: dict[str, Any] = {
            "uidmap": [m.as_oci() for m in ident.uid_map],
            "gidmap": [m.as_oci() for m in ident.gid_map]}
    except Error as e:
        idmaps = {"error": e.message}
    rows = operations.listing(True)
    counts = {s: sum(1 for r in rows if r["status"] == s)
              for s in ("running", "paused", "created", "exited")}
    try:
        from secpod.images import Store

        images = len(Store.open().list())
    except Error:
        images = 0
    cgroup = features.cgroup_mode.value
    limits = features.can_limit_resources
    rt_binary = binaries.get(default_runtime)
    return {
        "host": {
            "arch": features.arch,
            "os": "linux",
            "kernel": platform.release(),
            "hostname": platform.node(),
            "cpus": os.cpu_count() or 0,
            "memTotal": mem.get("MemTotal", 0),
            "memFree": mem.get("MemAvailable", mem.get("MemFree", 0)),
            "swapTotal": mem.get("SwapTotal", 0),
            "swapFree": mem.get("SwapFree", 0),
            "uptime": _uptime(),
            "distribution": _distribution(),
            "cgroupVersion": cgroup,
            "cgroupManager": "cgroupfs" if limits else "disabled",
            "conmon": {"path": conmon or "", "version": _version_of(conmon)},
            "ociRuntime": {"name": default_runtime, "path": rt_binary or "",
                           "version": _version_of(rt_binary)},
            "idMappings": idmaps,
            "security": {
                "rootless": True,
                "seccompEnabled": features.seccomp,
                "selinuxEnabled": features.selinux_enabled,
                "apparmorEnabled": features.apparmor_enabled,
            },
        },
        "store": {
            "graphRoot": str(paths.data_dir()),
            "runRoot": str(paths.runtime_dir()),
            "configFile": str(paths.config_dir() / "secpod.toml"),
            "containerStore": {"number": len(rows), "running": counts["running"],
                               "paused": counts["paused"],
                               "stopped": counts["exited"] + counts["created"]},
            "imageStore": {"number": images},
        },
        "version": {
            "Version": __version__,
            "PythonVersion": platform.python_version(),
            "Os": "linux",
            "OsArch": f"linux/{features.arch}",
        },
        "secpod": {
            "daemon": False,
            "runtimes": {name: {"path": path or "", "version": _version_of(path),
                                "default": name == default_runtime}
                         for name, path in binaries.items()},
            "resourceLimitsEnforced": limits,
            "cgroupDelegated": features.cgroup_delegated,
            "cgroupControllers": sorted(features.cgroup_controllers),
            "landlock": hostmod.landlock_available(),
            "apparmorProfiles": len(features.apparmor_profiles),
            "notEnforced": _not_enforced(features),
        },
    }


def _not_enforced(features: Any) -> list[str]:
    out = []
    if not features.can_limit_resources:
        why = (f"this user's cgroup offers no {', '.join(features.missing_controllers)} "
               "controller" if features.cgroup_delegated
               else "no cgroup is delegated to this user")
        out.append(f"pids, memory and cpu limits: {why} (cgroups: "
                   f"{features.cgroup_mode.value}; crun runs with its cgroup manager disabled)")
        out.append("pause and unpause: no cgroup freezer for this user")
    if not features.selinux_enabled:
        out.append("SELinux labels: SELinux is off")
    if not features.apparmor_enabled:
        out.append("AppArmor profiles: AppArmor is not in this kernel")
    return out


def go_view(value: Any) -> Any:
    """``value`` with Go's field names as ``--format`` templates read them (Podman's
    ``{{.Host.Arch}}`` where the JSON says ``host.arch``)."""
    if isinstance(value, dict):
        return {_GO_NAMES.get(k, k[:1].upper() + k[1:]): go_view(v) for k, v in value.items()}
    if isinstance(value, list):
        return [go_view(v) for v in value]
    return value


def as_text(value: Any, indent: int = 0) -> str:
    """The facts as Podman's text ``info`` shows them: ``key: value``, nested indented."""
    pad = "  " * indent
    lines = []
    for key, item in value.items():
        if isinstance(item, dict):
            lines.append(f"{pad}{key}:")
            lines.append(as_text(item, indent + 1))
        elif isinstance(item, list):
            lines.append(f"{pad}{key}:" + ("" if item else " []"))
            for entry in item:
                if isinstance(entry, dict):
                    first, *rest = as_text(entry, indent + 2).splitlines()
                    lines.append(f"{pad}  - {first.strip()}")
                    lines += rest
                else:
                    lines.append(f"{pad}  - {entry}")
        else:
            text = str(item).lower() if isinstance(item, bool) else str(item)
            lines.append(f"{pad}{key}: {text}")
    return "\n".join(line for line in lines if line)
