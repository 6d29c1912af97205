"""The SELinux layer: the process label ``system_u:system_r:TYPE:s0:cX,cY``, its MCS
level (two categories no other container of the user holds), and the mountLabel that
gives the container's files the same level."""

from __future__ import annotations

from secpod.errors import HostError
from secpod.policies.layers import Fragment

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from secpod.policies.profile import Profile
    from secpod.sandbox.host import HostFeatures
    from secpod.spec import ContainerSpec

_TRIES = 64


def mcs_level(in_use: frozenset[str] = frozenset()) -> str:
    """A random ``s0:cX,cY`` (X < Y, c0..c1023, as container-selinux allocates them),
    avoiding the levels ``in_use``; after 64 draws that all hit, the last one."""
    import secrets

    level = ""
    for _ in range(_TRIES):
        a = secrets.randbelow(1024)
        b = secrets.randbelow(1023)
        b = b + 1 if b >= a else b
        lo, hi = sorted((a, b))
        level = f"s0:c{lo},c{hi}"
        if level not in in_use:
            break
    return level


def generate(prof: Profile, spec: ContainerSpec, host: HostFeatures, *,
             mcs_in_use: frozenset[str] = frozenset()) -> Fragment:
    """``process.selinuxLabel`` and ``linux.mountLabel`` where SELinux is enabled.

    ``[selinux] enforce = "off"`` or ``--security-opt label=disable``: no label. On a host
    without SELinux, ``required`` raises HostError and ``if-available`` records the label
    as unenforced."""
    if prof.selinux_enforce == "off" or spec.security.label_disable:
        return Fragment(summary={"selinux": None})
    if not host.selinux_enabled:
        if prof.selinux_enforce == "required":
            raise HostError(
                f"profile {prof.name} requires an SELinux label, and SELinux is not enabled "
                "on this host",
                hint="use a profile whose [selinux] enforce is \"if-available\", or run on a "
                     "host with SELinux enabled")
        return Fragment(summary={"selinux": None}, unenforced=(
            f"SELinux label ({prof.selinux_type}): SELinux is not enabled on this host",))
    level = mcs_level(mcs_in_use)
    label = f"system_u:system_r:{prof.selinux_type}:{level}"
    return Fragment(process={"selinuxLabel": label},
                    linux={"mountLabel": f"system_u:object_r:container_file_t:{level}"},
                    summary={"selinux": label})
