"""Preflight: is this a user and a host secpod may run containers for?

1. not root, not a setuid/setgid invocation (real and effective ids equal)
2. subordinate uid and gid ranges for the user
3. newuidmap/newgidmap present and setuid (or with file capabilities)
4. unprivileged user namespaces allowed
5. crun present; the cgroup layout is one rootless crun accepts

Each failure names the fix. ``secpod doctor`` runs the same checks and
reports all of them instead of stopping at the first.
"""

from __future__ import annotations

import os
from pathlib import Path

from secpod._files import which
from secpod._record import record
from secpod.errors import HostError, RootRefused
from secpod.sandbox import host as hostmod
from secpod.sandbox.idmap import IdMap, current_user, mappings, subordinate_ranges

SUBUID = Path("/etc/subuid")
SUBGID = Path("/etc/subgid")

HYBRID_HINT = (
    "this kernel mounts cgroups in hybrid mode (v1 controllers plus /sys/fs/cgroup/unified), "
    "which rootless crun refuses. Either boot with systemd.unified_cgroup_hierarchy=1, or run "
    "secpod in a private mount namespace without the v2 mount, as root: "
    "unshare -m --propagation private sh -c 'umount /sys/fs/cgroup/unified && exec su - USER'. "
    "The host's own mounts stay as they are; resource limits are then not enforced."
)


def refuse_setid_invocation() -> None:
    """Raise RootRefused when started through a setuid or setgid wrapper, after dropping
    to the real ids: nothing is opened for writing with the borrowed ids, so the refusal
    (and its audit record) is written as the user who ran the wrapper, in what that user
    may write anyway. Called first, for every command."""
    ruid, euid, suid = os.getresuid()
    rgid, egid, sgid = os.getresgid()
    if len({ruid, euid, suid}) == 1 and len({rgid, egid, sgid}) == 1:
        return
    # Group first: after the uid drops, a setuid-root process could no longer change it.
    # Setting all three ids to the real one is allowed to any process.
    os.setresgid(rgid, rgid, rgid)
    os.setresuid(ruid, ruid, ruid)
    raise RootRefused(
        "secpod was started through a setuid or setgid wrapper (real and effective ids differ)",
        hint="run secpod directly as your own user; it needs no privilege",
    )


def refuse_root() -> None:
    """Raise RootRefused when secpod runs as root or through a setuid/setgid wrapper."""
    ruid, euid, suid = os.getresuid()
    rgid, egid, sgid = os.getresgid()
    if len({ruid, euid, suid}) != 1 or len({rgid, egid, sgid}) != 1:
        raise RootRefused(
            "secpod was started through a setuid or setgid wrapper (real and effective ids differ)",
            hint="run secpod directly as your own user; it needs no privilege",
        )
    if euid == 0:
        raise RootRefused(
            "secpod does not run containers as root",
            hint="run it as an ordinary user with subuid/subgid ranges "
            "(usermod --add-subuids 100000-165535 --add-subgids 100000-165535 USER), "
            "e.g. `su - USER -c 'secpod ...'`",
        )


# eq=False: instances are never compared; spares the generated __eq__ and
# __hash__ that every start-up would compile.
@record(frozen=True, eq=False)
class Identity:
    """Who runs the container and how ids map into it."""

    user: str
    uid: int
    gid: int
    uid_map: tuple[IdMap, ...]
    gid_map: tuple[IdMap, ...]


def _setuid_helper(name: str) -> Path:
    path = which(name, path="/usr/bin:/bin:/usr/sbin:/sbin")
    if path is None:
        raise HostError(f"{name} not found", hint="apt-get install uidmap")
    st = os.stat(path)
    has_caps = False
    try:
        has_caps = bool(os.getxattr(path, "security.capability"))
    except OSError:
        pass
    if not (st.st_mode & 0o4000 and st.st_uid == 0) and not has_caps:
        raise HostError(
            f"{path} is neither setuid root nor has file capabilities",
            hint="reinstall the uidmap package",
        )
    return Path(path)


def identity() -> Identity:
    """The invoking user's id mappings. Raises HostError naming the missing piece."""
    user, uid, gid = current_user()
    uranges = subordinate_ranges(SUBUID, user, uid)
    granges = subordinate_ranges(SUBGID, user, uid)
    for kind, ranges, path in (("uid", uranges, SUBUID), ("gid", granges, SUBGID)):
        if not ranges:
            raise HostError(
                f"no subordinate {kind} range for {user} in {path}",
                hint=f"as root: usermod --add-sub{kind}s 100000-165535 {user}",
            )
    _setuid_helper("newuidmap")
    _setuid_helper("newgidmap")
    return Identity(user, uid, gid, tuple(mappings(uid, uranges)), tuple(mappings(gid, granges)))


def userns_allowed() -> bool:
    for path, bad in (
        ("/proc/sys/kernel/unprivileged_userns_clone", "0"),
        ("/proc/sys/user/max_user_namespaces", "0"),
    ):
        try:
            if Path(path).read_text().strip() == bad:
                return False
        except OSError:
            continue
    return True


def check_host(features: hostmod.HostFeatures) -> None:
    """Raise HostError when the kernel or the cgroup layout stops rootless crun."""
    if not userns_allowed():
        raise HostError(
            "unprivileged user namespaces are disabled on this host",
            hint="as root: sysctl -w user.max_user_namespaces=15000 "
            "(and kernel.unprivileged_userns_clone=1 where it exists)",
        )
    if features.cgroup_mode is hostmod.CgroupMode.HYBRID:
        raise HostError(
            "cgroups in hybrid mode: rootless crun cannot run containers here", hint=HYBRID_HINT
        )
