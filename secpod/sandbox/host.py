"""What this host can enforce: probed once per command, cheaply, with no side effects.

The policy engine receives a :class:`HostFeatures` and decides, setting by
setting, whether to enforce, refuse (``required``) or record as not
enforced (``if-available``). ``secpod doctor`` prints the same facts.
"""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path

from secpod._record import record

#: The cgroup v2 controllers that pids, memory and cpu limits are written into.
LIMIT_CONTROLLERS = ("cpu", "memory", "pids")


class CgroupMode(Enum):
    V2 = "v2"  # unified hierarchy only
    HYBRID = "hybrid"  # v1 controllers plus a v2 mount at /sys/fs/cgroup/unified
    V1 = "v1"  # legacy v1 only
    NONE = "none"


# eq=False: instances are never compared; spares the generated __eq__ and
# __hash__ that every start-up would compile.
@record(frozen=True, eq=False)
class HostFeatures:
    """Facts about the host that decide what a profile can enforce."""

    cgroup_mode: CgroupMode
    cgroup_delegated: bool  # a cgroup the user may write limits into exists
    selinux_enabled: bool
    apparmor_enabled: bool  # the kernel has AppArmor and it is enabled
    apparmor_profiles: frozenset[str]  # profiles loaded in the kernel (names)
    seccomp: bool
    arch: str
    # The controllers the user's own cgroup offers (its cgroup.controllers), cgroup v2
    # only: a cgroup2 mount beside v1 hierarchies (hybrid layouts, or one mounted in a
    # private namespace) offers a writable cgroup without the controllers v1 holds.
    cgroup_controllers: frozenset[str] = frozenset()

    @property
    def missing_controllers(self) -> tuple[str, ...]:
        """The controllers limits need that the user's cgroup does not offer."""
        return tuple(c for c in LIMIT_CONTROLLERS if c not in self.cgroup_controllers)

    @property
    def can_limit_resources(self) -> bool:
        """Whether pids/memory/cpu limits would be enforced for a rootless container:
        a delegated cgroup v2 that offers every controller they need."""
        return (self.cgroup_mode is CgroupMode.V2 and self.cgroup_delegated
                and not self.missing_controllers)


def _cgroup_mode(mountinfo: str) -> CgroupMode:
    mounts = {}
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) >= 5 and right:
            mounts[fields[4]] = right.split()[0]
    top = mounts.get("/sys/fs/cgroup")
    if top == "cgroup2":
        return CgroupMode.V2
    v1 = any(fs == "cgroup" for fs in mounts.values())
    if mounts.get("/sys/fs/cgroup/unified") == "cgroup2":
        return CgroupMode.HYBRID if v1 else CgroupMode.V2
    return CgroupMode.V1 if v1 else CgroupMode.NONE


def _own_cgroup(proc_cgroup: str, root: Path) -> Path | None:
    """The process's cgroup v2 folder under ``root``, from /proc/self/cgroup's ``0::``
    line (other lines are v1 hierarchies)."""
    for line in proc_cgroup.splitlines():
        if line.startswith("0::"):
            return root / line[3:].strip().lstrip("/")
    return None


def cgroup_delegation(mode: CgroupMode, proc_cgroup: str,
                      root: Path = Path("/sys/fs/cgroup")) -> tuple[bool, frozenset[str]]:
    """Whether the user may write into its own cgroup (and make children there), and
    the controllers that cgroup offers. Reads the cgroup tree under ``root`` only."""
    cg = _own_cgroup(proc_cgroup, root) if mode is CgroupMode.V2 else None
    if cg is None:
        return False, frozenset()
    delegated = os.access(cg, os.W_OK) and os.access(cg / "cgroup.subtree_control", os.W_OK)
    try:
        controllers = frozenset((cg / "cgroup.controllers").read_text().split())
    except OSError:
        controllers = frozenset()
    return delegated, controllers


def _apparmor() -> tuple[bool, frozenset[str]]:
    try:
        enabled = Path("/sys/module/apparmor/parameters/enabled").read_text().strip() == "Y"
    except OSError:
        return False, frozenset()
    names: set[str] = set()
    try:
        for line in Path("/sys/kernel/security/apparmor/profiles").read_text().splitlines():
            names.add(line.rsplit(" (", 1)[0])
    except OSError:
        pass
    return enabled, frozenset(names)


def _selinux() -> bool:
    # selinuxfs is mounted wherever SELinux is enabled: without it, skip the binding.
    if not Path("/sys/fs/selinux").is_dir():
        return False
    try:
        import selinux  # type: ignore[import-untyped]  # Debian's python3-selinux

        return bool(selinux.is_selinux_enabled())
    except ImportError:
        return Path("/sys/fs/selinux/enforce").exists()


def landlock_available() -> bool:
    """Whether the kernel offers Landlock (doctor reports it; nothing depends on it yet)."""
    try:
        return "landlock" in Path("/sys/kernel/security/lsm").read_text().split(",")
    except OSError:
        pass
    # securityfs is not always mounted: ask the kernel for the Landlock ABI version
    # (landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION), syscall 444).
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    return int(libc.syscall(444, None, ctypes.c_size_t(0), ctypes.c_uint32(1))) > 0


def probe() -> HostFeatures:
    """Probe the host. Reads /proc and /sys only."""
    try:
        mountinfo = Path("/proc/self/mountinfo").read_text()
    except OSError:
        mountinfo = ""
    mode = _cgroup_mode(mountinfo)
    aa_enabled, aa_profiles = _apparmor()
    try:
        seccomp = "Seccomp:" in Path("/proc/self/status").read_text()
    except OSError:
        seccomp = False
    machine = os.uname().machine
    try:
        proc_cgroup = Path("/proc/self/cgroup").read_text()
    except OSError:
        proc_cgroup = ""
    delegated, controllers = cgroup_delegation(mode, proc_cgroup)
    return HostFeatures(
        cgroup_mode=mode,
        cgroup_delegated=delegated,
        cgroup_controllers=controllers,
        selinux_enabled=_selinux(),
        apparmor_enabled=aa_enabled,
        apparmor_profiles=aa_profiles,
        seccomp=seccomp,
        arch={"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine),
    )
