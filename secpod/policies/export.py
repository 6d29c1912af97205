"""Carry a profile to other tools: OCI, Kubernetes, seccomp JSON, AppArmor, SELinux CIL.

Each exporter is a pure function of the effective profile (and the host's
architecture for seccomp); nothing here loads anything into a kernel.
"""

from __future__ import annotations

import json

from secpod.errors import UsageError
from secpod.policies.capabilities import ALL_CAPS
from secpod.policies.confine import Confinement, confine_profile
from secpod.policies.profile import Profile

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

    from secpod.sandbox.host import HostFeatures

FORMATS = ("oci", "k8s", "seccomp", "apparmor", "selinux-cil")


def oci_config(conf: Confinement, *, args: tuple[str, ...] = ("/bin/sh",)) -> dict[str, Any]:
    """A complete OCI runtime config carrying a confinement (rootfs ``rootfs``, uid map 0->1000).

    The process, root path and id mappings are placeholders a runtime's caller
    replaces; the security settings are the profile's.
    """
    linux = dict(conf.linux)
    linux["namespaces"] = [*conf.linux["namespaces"], {"type": "user"}]
    linux["uidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
    linux["gidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "bind", "source": "/sys",
         "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]},
        *conf.mounts,
    ]
    return {
        "ociVersion": "1.0.2",
        "process": {"terminal": False, "user": {"uid": 0, "gid": 0}, "args": list(args),
                    "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                    "cwd": "/", **conf.process},
        "root": {"path": "rootfs", "readonly": conf.root_readonly},
        "hostname": "secpod",
        "mounts": mounts,
        "linux": linux,
        "annotations": {"io.secpod.profile": conf.profile,
                        "io.secpod.profile-hash": conf.profile_hash},
    }


def confinement_of(prof: Profile, host: HostFeatures) -> Confinement:
    """The profile's confinement on ``host``, with no run flags (and no floor: nothing runs)."""
    from secpod.spec import ContainerSpec

    return confine_profile(prof, ContainerSpec(image="", profile=prof.name), host)


def seccomp_json(prof: Profile, arch: str) -> dict[str, Any] | None:
    """The resolved filter in the Docker/Podman format (also valid OCI ``linux.seccomp``)."""
    if prof.seccomp is None:
        return None
    return prof.seccomp.to_oci(arch, prof.capabilities)


def k8s(prof: Profile, arch: str) -> dict[str, Any]:
    """A Pod spec fragment with the profile's securityContext, and the localhost seccomp file.

    Returns ``{"pod": {...}, "seccomp_file": "secpod-NAME.json", "seccomp": {...} | None}``;
    the seccomp file goes to the kubelet's ``seccomp/profiles/`` folder on each node.
    """
    seccomp_file = f"secpod-{prof.name}.json"
    container_ctx: dict[str, Any] = {
        "privileged": False,
        "allowPrivilegeEscalation": not prof.no_new_privileges,
        "readOnlyRootFilesystem": prof.read_only_root,
        "capabilities": {"drop": ["ALL"],
                         "add": [c.removeprefix("CAP_") for c in prof.capabilities]},
        "procMount": "Default",
    }
    if prof.seccomp is not None:
        container_ctx["seccompProfile"] = {"type": "Localhost",
                                           "localhostProfile": f"profiles/{seccomp_file}"}
    else:
        container_ctx["seccompProfile"] = {"type": "Unconfined"}
    if prof.apparmor_enforce != "off":
        container_ctx["appArmorProfile"] = {"type": "Localhost",
                                            "localhostProfile": prof.apparmor_profile}
    if prof.selinux_enforce != "off":
        container_ctx["seLinuxOptions"] = {"type": prof.selinux_type}
    if not container_ctx["capabilities"]["add"]:
        del container_ctx["capabilities"]["add"]
    resources: dict[str, Any] = {}
    if prof.memory_limit is not None:
        resources["limits"] = {"memory": str(prof.memory_limit)}
    container: dict[str, Any] = {"name": "main", "image": "IMAGE",
                                 "securityContext": container_ctx}
    if resources:
        container["resources"] = resources
    spec: dict[str, Any] = {
        "hostNetwork": prof.network == "host",
        "hostPID": "pid" not in prof.namespaces,
        "hostIPC": "ipc" not in prof.namespaces,
        "hostUsers": False,
        "automountServiceAccountToken": False,
        "securityContext": {
            "seccompProfile": container_ctx["seccompProfile"],
            **({"sysctls": [{"name": k, "value": v} for k, v in prof.sysctls]}
               if prof.sysctls else {}),
        },
        "containers": [container],
    }
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": f"secpod-{prof.name}",
                        "annotations": {"secpod.io/profile": prof.name}},
           "spec": spec}
    return {"pod": pod, "seccomp_file": seccomp_file, "seccomp": seccomp_json(prof, arch)}


# --- AppArmor -----------------------------------------------------------------

_AA_CAPS = {c: c.removeprefix("CAP_").lower() for c in ALL_CAPS}


def apparmor(prof: Profile) -> str:
    """An AppArmor profile in the spirit of docker-default, for ``prof``.

    @{PROC} comes from tunables/global. Denies mount (and umount without
    CAP_SYS_ADMIN), writes to /proc and /sys outside the container's own process
    entries, reads of the profile's masked paths; ptrace and signals only within
    the profile; raw and packet sockets unless the profile grants CAP_NET_RAW.
    """
    name = prof.apparmor_profile
    lines = [
        f"# AppArmor profile for secpod profile {prof.name!r}, written by",
        f"# `secpod profile export {prof.name} --format apparmor`.",
        "# Load it (as root) with `secpod system install-apparmor` or apparmor_parser -r.",
        "",
        "#include <tunables/global>",
        "",
        f"profile {name} flags=(attach_disconnected,mediate_deleted) {{",
        "  #include <abstractions/base>",
        "",
        "  file,",
    ]
    if "CAP_SYS_ADMIN" in prof.capabilities:
        lines.append("  umount,")
    caps = [_AA_CAPS[c] for c in prof.capabilities]
    if caps:
        lines.append("  capability " + " ".join(caps) + ",")
    else:
        lines.append("  # no capabilities: the profile grants none")
    lines += ["", "  # network"]
    if "CAP_NET_RAW" in prof.capabilities:
        lines.append("  network,")
    else:
        lines += ["  network unix,", "  network netlink,",
                  "  network inet stream,", "  network inet dgram,",
                  "  network inet6 stream,", "  network inet6 dgram,",
                  "  deny network raw,", "  deny network packet,"]
    lines += [
        "",
        "  # signals and ptrace only within this profile (and from the runtime)",
        "  signal (receive) peer=unconfined,",
        "  signal (receive) peer=crun,",
        f"  signal (send,receive) peer={name},",
        f"  ptrace (trace,tracedby,read,readby) peer={name},",
        "",
        "  deny mount,",
        "  deny pivot_root,",
        "",
        "  deny @{PROC}/* w,",
        "  deny @{PROC}/{[^1-9/],[^1-9/][^0-9/],[^1-9s/][^0-9y/][^0-9s/],"
        "[^1-9/][^0-9/][^0-9/][^0-9/]*}/** w,",
        "  deny @{PROC}/sys/** w,",
        "  deny @{PROC}/sysrq-trigger rwklx,",
        "  deny @{PROC}/kcore rwklx,",
        "",
        "  deny /sys/** wklx,",
        "  deny /sys/firmware/** rwklx,",
        "  deny /sys/devices/virtual/powercap/** rwklx,",
        "  deny /sys/kernel/security/** rwklx,",
    ]
    masked = [p for p in prof.masked_paths
              if p not in ("/proc/kcore", "/sys/firmware", "/sys/devices/virtual/powercap")]
    if masked:
        lines += ["", "  # the profile's masked paths"]
        for p in masked:
            lines += [f"  deny {p} rwklx,", f"  deny {p}/** rwklx,"]
    lines += ["}", ""]
    return "\n".join(lines)


# --- SELinux CIL ----------------------------------------------------------------

_CIL_CAP2 = {"CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
             "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
             "CAP_CHECKPOINT_RESTORE"}
_FILE_RW = "(ioctl read write create getattr setattr lock append map unlink link rename open)"
_FILE_RO = "(ioctl read getattr lock map open)"
_DIR_RW = ("(ioctl read write create getattr setattr lock unlink link rename open add_name "
           "remove_name reparent search rmdir)")
_DIR_RO = "(ioctl read getattr lock open search)"
_SOCK = ("(ioctl read write create getattr setattr lock append map bind connect listen accept "
         "getopt setopt shutdown)")


def selinux_cil(prof: Profile) -> str:
    """A container policy module in CIL, udica-like: a domain for this profile.

    The block ``secpod_NAME`` declares a ``process`` type (the container's domain,
    ``secpod_NAME.process``) with the profile's capabilities in its user
    namespace, full access to its own files (``container_file_t``), read access
    to the bind-mount sources the profile allows (home, /tmp), and sockets as
    its network mode permits: no raw or packet sockets without CAP_NET_RAW.
    """
    block = "secpod_" + "".join(ch if ch.isalnum() else "_" for ch in prof.name)
    caps = [c.removeprefix("CAP_").lower() for c in prof.capabilities if c not in _CIL_CAP2]
    caps2 = [c.removeprefix("CAP_").lower() for c in prof.capabilities if c in _CIL_CAP2]
    out = [
        f"; SELinux policy module (CIL) for secpod profile {prof.name!r}, written by",
        f"; `secpod profile export {prof.name} --format selinux-cil`. Install with",
        f"; `semodule -i {block}.cil` on a host whose policy provides container_t and",
        "; container_file_t (container-selinux); run with the label",
        f"; system_u:system_r:{block}.process:s0:cX,cY.",
        f"(block {block}",
        "    (type process)",
        "    (roletype system_r process)",
        "    (typeattributeset domain (process))",
        "    (typeattributeset svirt_sandbox_domain (process))",
        "    (allow container_runtime_t process (process (transition)))",
        "    (allow process self (process (fork sigchld sigkill sigstop signull signal "
        "getsched setsched getsession getpgid setpgid getcap setcap getattr setrlimit "
        "getrlimit)))",
        "    (allow process self (fifo_file " + _FILE_RW + "))",
        "    (allow process self (unix_stream_socket " + _SOCK + "))",
        "    (allow process self (unix_dgram_socket " + _SOCK + "))",
        "    (allow process container_file_t (file " + _FILE_RW[:-1] + " execute "
        "execute_no_trans entrypoint)))",
        "    (allow process container_file_t (dir " + _DIR_RW + "))",
        "    (allow process container_file_t (lnk_file " + _FILE_RW + "))",
        "    (allow process container_file_t (sock_file " + _FILE_RW + "))",
        "    (allow process container_file_t (fifo_file " + _FILE_RW + "))",
        "    (allow process proc_t (file " + _FILE_RO + "))",
        "    (allow process proc_t (dir " + _DIR_RO + "))",
        "    (allow process sysfs_t (file " + _FILE_RO + "))",
        "    (allow process sysfs_t (dir " + _DIR_RO + "))",
    ]
    if caps:
        out.append(f"    (allow process self (cap_userns ({' '.join(caps)})))")
    if caps2:
        out.append(f"    (allow process self (cap2_userns ({' '.join(caps2)})))")
    sources = set(prof.allowed_bind_sources)
    if "/" in sources or "~" in sources or any(s.startswith("~/") for s in sources):
        out += ["    ; bind mounts from the user's home",
                "    (allow process user_home_dir_t (dir " + _DIR_RO + "))",
                "    (allow process user_home_t (dir " + _DIR_RW + "))",
                "    (allow process user_home_t (file " + _FILE_RW + "))"]
    if sources & {"/", "/tmp", "/var/tmp"}:  # noqa: S108 - paths named, not used
        out += ["    ; bind mounts from /tmp and /var/tmp",
                "    (allow process tmp_t (dir " + _DIR_RW + "))",
                "    (allow process tmp_t (file " + _FILE_RW + "))"]
    out += ["    ; network: " + ("the host's" if prof.network == "host" else "loopback only")]
    out += ["    (allow process self (tcp_socket " + _SOCK[:-1] + " name_connect)))",
            "    (allow process self (udp_socket " + _SOCK + "))",
            "    (allow process node_t (tcp_socket (node_bind)))",
            "    (allow process node_t (udp_socket (node_bind)))",
            "    (allow process port_t (tcp_socket (name_bind name_connect)))",
            "    (allow process self (netlink_route_socket " + _SOCK[:-1] + " nlmsg_read)))"]
    if "CAP_NET_RAW" in prof.capabilities:
        out += ["    (allow process self (rawip_socket " + _SOCK + "))",
                "    (allow process self (packet_socket " + _SOCK + "))"]
    out.append(")")
    return "\n".join(out) + "\n"


def export(prof: Profile, fmt: str, host: HostFeatures) -> str:
    """The text of ``prof`` in ``fmt`` (one of :data:`FORMATS`). Raises UsageError."""
    if fmt == "oci":
        return json.dumps(oci_config(confinement_of(prof, host)), indent=2) + "\n"
    if fmt == "seccomp":
        data = seccomp_json(prof, host.arch)
        if data is None:
            raise UsageError(f"profile {prof.name} has no seccomp filter (unconfined)",
                             hint="there is nothing to export in this format")
        return json.dumps(data, indent=2) + "\n"
    if fmt == "k8s":
        return json.dumps(k8s(prof, host.arch)["pod"], indent=2) + "\n"
    if fmt == "apparmor":
        return apparmor(prof)
    if fmt == "selinux-cil":
        return selinux_cil(prof)
    raise UsageError(f"unknown export format {fmt!r}", hint="formats: " + ", ".join(FORMATS))
