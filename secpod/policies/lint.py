"""Lint an OCI runtime config against the CIS Docker Benchmark's container-runtime items.

Any ``config.json`` will do: secpod's, one ``podman`` or ``runc spec`` wrote, or a
hand-written one. Item ids are those of CIS Docker Benchmark v1.6.0, section 5
(Container Runtime); the items that concern daemons, ports, restart policies or
health checks do not apply to a runtime config and are not checked. With a
profile, the config is also checked against that profile's effective settings
(ids ``PROFILE-...``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from secpod._record import asdict, record
from secpod.errors import MalformedInput

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

    from secpod.policies.profile import Profile

HIGH, MEDIUM, LOW = "high", "medium", "low"
_SEVERITY_ORDER = {HIGH: 0, MEDIUM: 1, LOW: 2}

# Docker's default capability set: anything beyond it is a 5.3 finding.
DOCKER_DEFAULT_CAPS = frozenset({
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
})
DANGEROUS_CAPS = frozenset({
    "CAP_SYS_ADMIN", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_PTRACE", "CAP_SYS_BOOT",
    "CAP_NET_ADMIN", "CAP_DAC_READ_SEARCH", "CAP_BPF", "CAP_PERFMON", "CAP_SYSLOG",
    "CAP_MAC_ADMIN", "CAP_MAC_OVERRIDE", "CAP_SYS_TIME", "CAP_LINUX_IMMUTABLE",
    "CAP_CHECKPOINT_RESTORE", "CAP_AUDIT_CONTROL",
})
SENSITIVE_DIRS = ("/", "/boot", "/dev", "/etc", "/lib", "/lib64", "/proc", "/sys", "/usr",
                  "/var/lib", "/root", "/home")
_RUNTIME_SOCKETS = ("docker.sock", "podman.sock", "containerd.sock", "crio.sock",
                    "buildkitd.sock")


@record(frozen=True)
class Finding:
    """One lint finding."""

    id: str          # "CIS-5.25", "PROFILE-capabilities", ...
    severity: str    # "high" | "medium" | "low"
    title: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def _caps(config: Mapping[str, Any]) -> set[str]:
    c = (config.get("process") or {}).get("capabilities") or {}
    out: set[str] = set()
    for key in ("bounding", "effective", "permitted", "ambient"):
        out.update(c.get(key) or [])
    return out


def _namespaces(config: Mapping[str, Any]) -> dict[str, str | None]:
    """type -> path (None: a new namespace; a path: joined, e.g. the host's)."""
    out: dict[str, str | None] = {}
    for ns in (config.get("linux") or {}).get("namespaces") or []:
        if isinstance(ns, dict) and isinstance(ns.get("type"), str):
            out[ns["type"]] = ns.get("path")
    return out


def _own(ns: dict[str, str | None], kind: str) -> bool:
    return kind in ns and not ns[kind]


def _validate(config: Any) -> None:
    if not isinstance(config, dict):
        raise MalformedInput("an OCI runtime config is a JSON object",
                             hint="give the path of a bundle's config.json")
    for key, kind in (("process", dict), ("linux", dict), ("mounts", list), ("root", dict)):
        if key in config and not isinstance(config[key], kind):
            raise MalformedInput(f"config field {key!r} must be a {kind.__name__}",
                                 hint="check the file against the OCI runtime spec")


def lint_config(config: dict[str, Any], profile: str | None = None) -> list[Finding]:
    """CIS container-runtime findings on an OCI config (and against ``profile`` if named).

    Raises MalformedInput if ``config`` is not shaped like an OCI config, NotFound
    or ProfileError for a bad profile name.
    """
    _validate(config)
    f: list[Finding] = []
    process = config.get("process") or {}
    linux = config.get("linux") or {}
    caps = _caps(config)
    ns = _namespaces(config)
    seccomp = linux.get("seccomp")
    unconfined = seccomp is None or seccomp.get("defaultAction") in ("SCMP_ACT_ALLOW",
                                                                      "SCMP_ACT_LOG")

    if not process.get("apparmorProfile") or process.get("apparmorProfile") == "unconfined":
        f.append(Finding("CIS-5.1", MEDIUM, "AppArmor profile is not set",
                         "process.apparmorProfile is empty: no AppArmor confinement"))
    if not process.get("selinuxLabel"):
        f.append(Finding("CIS-5.2", MEDIUM, "SELinux label is not set",
                         "process.selinuxLabel is empty: no SELinux confinement"))
    extra = sorted(caps - DOCKER_DEFAULT_CAPS)
    if extra:
        sev = HIGH if set(extra) & DANGEROUS_CAPS else MEDIUM
        f.append(Finding("CIS-5.3", sev, "capabilities beyond the default set",
                         "grants " + ", ".join(extra)))
    from secpod.policies.capabilities import ALL_CAPS

    if (caps >= set(ALL_CAPS) - {"CAP_CHECKPOINT_RESTORE", "CAP_PERFMON", "CAP_BPF"}
            and unconfined and not linux.get("maskedPaths")):
        f.append(Finding("CIS-5.4", HIGH, "privileged container",
                         "all capabilities, no seccomp filter and no masked paths"))
    for m in config.get("mounts") or []:
        if not isinstance(m, dict):
            continue
        opts = m.get("options") or []
        if m.get("type") != "bind" and "bind" not in opts and "rbind" not in opts:
            continue
        src = os.path.normpath(str(m.get("source", "")))
        writable = "ro" not in opts
        if src == "/sys" and m.get("destination") == "/sys" and not writable:
            continue    # the runtime's read-only sysfs, as rootless runtimes bind it
        if src in SENSITIVE_DIRS or any(src.startswith(d + "/") for d in
                                        ("/etc", "/boot", "/proc", "/sys", "/usr", "/lib")):
            f.append(Finding("CIS-5.5", HIGH if writable else MEDIUM,
                             "sensitive host directory mounted",
                             f"{src} at {m.get('destination')} "
                             f"({'read-write' if writable else 'read-only'})"))
        if src.endswith(_RUNTIME_SOCKETS):
            f.append(Finding("CIS-5.31", HIGH, "container runtime socket mounted",
                             f"{src} at {m.get('destination')}"))
        if src.startswith("/dev/") and src not in ("/dev/null", "/dev/zero", "/dev/urandom",
                                                     "/dev/random", "/dev/full", "/dev/tty"):
            f.append(Finding("CIS-5.17", MEDIUM, "host device exposed",
                             f"{src} bound at {m.get('destination')}"))
        if any(o in ("shared", "rshared") for o in opts):
            f.append(Finding("CIS-5.19", MEDIUM, "shared mount propagation",
                             f"{m.get('destination')} is mounted {','.join(opts)}"))
    if linux.get("rootfsPropagation") in ("shared", "rshared"):
        f.append(Finding("CIS-5.19", MEDIUM, "shared mount propagation",
                         f"rootfsPropagation is {linux['rootfsPropagation']}"))
    if not _own(ns, "network"):
        f.append(Finding("CIS-5.9", HIGH, "host's network namespace shared",
                         "no new network namespace"))
    resources = linux.get("resources") or {}
    if not (resources.get("memory") or {}).get("limit"):
        f.append(Finding("CIS-5.10", LOW, "memory usage not limited",
                         "linux.resources.memory.limit is not set"))
    cpu = resources.get("cpu") or {}
    if not (cpu.get("shares") or cpu.get("quota") or cpu.get("weight")):
        f.append(Finding("CIS-5.11", LOW, "CPU priority not set",
                         "linux.resources.cpu has no shares, quota or weight"))
    if not (config.get("root") or {}).get("readonly"):
        f.append(Finding("CIS-5.12", MEDIUM, "root filesystem is writable",
                         "root.readonly is not true"))
    if not _own(ns, "pid"):
        f.append(Finding("CIS-5.15", HIGH, "host's PID namespace shared",
                         "no new pid namespace"))
    if not _own(ns, "ipc"):
        f.append(Finding("CIS-5.16", MEDIUM, "host's IPC namespace shared",
                         "no new ipc namespace"))
    devices = linux.get("devices") or []
    if devices:
        f.append(Finding("CIS-5.17", MEDIUM, "host devices exposed",
                         ", ".join(str(d.get("path")) for d in devices if isinstance(d, dict))))
    if not _own(ns, "uts"):
        f.append(Finding("CIS-5.20", MEDIUM, "host's UTS namespace shared",
                         "no new uts namespace"))
    if unconfined:
        f.append(Finding("CIS-5.21", HIGH, "seccomp profile disabled",
                         "no linux.seccomp, or its default action allows"))
    if not linux.get("cgroupsPath") and not resources:
        f.append(Finding("CIS-5.24", LOW, "cgroup usage not confirmed",
                         "no cgroupsPath and no resources: the container runs in the "
                         "caller's cgroup"))
    if not process.get("noNewPrivileges"):
        f.append(Finding("CIS-5.25", HIGH, "container may acquire additional privileges",
                         "process.noNewPrivileges is not true"))
    if not (resources.get("pids") or {}).get("limit"):
        f.append(Finding("CIS-5.28", MEDIUM, "PIDs cgroup limit not used",
                         "linux.resources.pids.limit is not set"))
    if not _own(ns, "user"):
        f.append(Finding("CIS-5.30", HIGH, "host's user namespace shared",
                         "no new user namespace: container root is host root"))
    if profile is not None:
        f.extend(_against_profile(config, profile))
    f.sort(key=lambda x: (_SEVERITY_ORDER[x.severity], _item_key(x.id)))
    return f


def _item_key(item: str) -> tuple[int, ...]:
    nums = item.removeprefix("CIS-").split(".")
    return tuple(int(n) for n in nums) if all(n.isdigit() for n in nums) else (99,)


def _against_profile(config: Mapping[str, Any], name: str) -> list[Finding]:
    from secpod.policies.profile import load

    prof = load(name)
    out = []
    process = config.get("process") or {}
    linux = config.get("linux") or {}
    extra = sorted(_caps(config) - set(prof.capabilities))
    if extra:
        out.append(Finding("PROFILE-capabilities", HIGH, f"capabilities beyond profile {name}",
                           "grants " + ", ".join(extra)))
    if prof.seccomp is not None and not linux.get("seccomp"):
        out.append(Finding("PROFILE-seccomp", HIGH, f"no seccomp filter, profile {name} has one",
                           f"profile seccomp: {os.path.basename(prof.seccomp_source)}"))
    elif prof.seccomp is not None:
        from secpod.policies.seccomp import GO_TO_SCMP

        arches = linux["seccomp"].get("architectures") or []
        arch = next((g for g, s in GO_TO_SCMP.items() if arches and s == arches[0]), "amd64")
        want = prof.seccomp.to_oci(arch, prof.capabilities)
        allowed = {n for e in linux["seccomp"].get("syscalls") or []
                   if e.get("action") in ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG")
                   for n in e.get("names") or []}
        ref = {n for e in want["syscalls"] if e["action"] in ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG")
               for n in e["names"]}
        more = sorted(allowed - ref)
        if more:
            out.append(Finding("PROFILE-seccomp", HIGH,
                               f"seccomp allows syscalls profile {name} does not",
                               ", ".join(more[:12]) + (" ..." if len(more) > 12 else "")))
    if prof.no_new_privileges and not process.get("noNewPrivileges"):
        out.append(Finding("PROFILE-no-new-privileges", HIGH,
                           f"noNewPrivileges off, profile {name} sets it", ""))
    if prof.read_only_root and not (config.get("root") or {}).get("readonly"):
        out.append(Finding("PROFILE-read-only-root", MEDIUM,
                           f"writable root, profile {name} makes it read-only", ""))
    for attr, key, what in (("masked_paths", "maskedPaths", "masked"),
                            ("readonly_paths", "readonlyPaths", "read-only")):
        missing = [p for p in getattr(prof, attr) if p not in (linux.get(key) or [])]
        if missing:
            out.append(Finding(f"PROFILE-{key}", MEDIUM,
                               f"paths profile {name} keeps {what} are not",
                               ", ".join(missing)))
    ns = _namespaces(config)
    missing_ns = [n for n in prof.namespaces if not _own(ns, n)]
    if prof.network != "host" and not _own(ns, "network"):
        missing_ns.append("network")
    if missing_ns:
        out.append(Finding("PROFILE-namespaces", HIGH,
                           f"namespaces profile {name} creates are shared",
                           ", ".join(missing_ns)))
    rl = {r.get("type"): r.get("hard") for r in process.get("rlimits") or []
          if isinstance(r, dict)}
    for rname, _, hard in prof.rlimits:
        have = rl.get(f"RLIMIT_{rname.upper()}")
        if have is None or have > hard:
            out.append(Finding("PROFILE-rlimits", MEDIUM, f"rlimit {rname} above profile {name}",
                               f"{have if have is not None else 'unset'} > {hard}"))
    return out


def lint_profile(prof: Profile) -> list[Finding]:
    """Lint what a profile asks for, as if on a host that can enforce everything.

    The config is built from the profile on an ideal host (SELinux and AppArmor
    enabled with the profile loaded, cgroup v2 delegated), so the findings are the
    profile's own, not this host's. Raises ProfileError if the profile does not
    convert (e.g. its seccomp filter does not compile).
    """
    from secpod.policies.export import confinement_of, oci_config
    from secpod.sandbox.host import LIMIT_CONTROLLERS, CgroupMode, HostFeatures, probe

    ideal = HostFeatures(cgroup_mode=CgroupMode.V2, cgroup_delegated=True,
                         cgroup_controllers=frozenset(LIMIT_CONTROLLERS),
                         selinux_enabled=True, apparmor_enabled=True,
                         apparmor_profiles=frozenset({prof.apparmor_profile}),
                         seccomp=True, arch=probe().arch)
    conf = confinement_of(prof, ideal)
    findings = lint_config(oci_config(conf))
    if conf.seccomp_report is not None and conf.seccomp_report.unresolved:
        findings.append(Finding(
            "PROFILE-seccomp-unresolved", LOW,
            "syscalls this host's libseccomp cannot resolve",
            ", ".join(conf.seccomp_report.unresolved) + ": crun here leaves them to the "
            "default action"))
    return findings
