"""The one entry point the runner calls: a container spec and the host in; OCI settings out.

``confine`` applies, in order: the profile (with inheritance); the spec's requests
that change confinement, each weakening listed and judged by the administrator's floor
(which sees the spec as asked and refuses it rather than raising it); then one generator
per hardening layer (:mod:`secpod.policies.layers`), each of which refuses what this
host cannot enforce (``required``) or records it in ``unenforced`` (``if-available``),
never dropping it silently.
"""

from __future__ import annotations

import hashlib

from secpod._record import field, record, replace
from secpod.policies import capabilities as caps_mod
from secpod.policies import profile as profile_mod
from secpod.policies.layers import (
    apparmor,
    capabilities,
    mounts,
    namespaces,
    resources,
    seccomp,
    selinux,
)

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

    from secpod.policies.layers import Fragment
    from secpod.policies.seccomp import SeccompReport
    from secpod.sandbox.host import HostFeatures
    from secpod.spec import ContainerSpec


# eq=False: instances are never compared; spares the generated __eq__ and
# __hash__ that every start-up would compile.
@record(frozen=True, eq=False)
class Confinement:
    """The resolved confinement: OCI fragments for the bundle builder, and a summary."""

    profile: str
    profile_hash: str
    process: dict[str, Any]
    linux: dict[str, Any]
    root_readonly: bool
    mounts: tuple[dict[str, Any], ...]
    require_signed: bool
    unenforced: tuple[str, ...]
    summary: dict[str, Any]
    seccomp_report: SeccompReport | None = field(default=None, compare=False)
    # Each way the run's flags weaken the profile, one line each (every added capability
    # its own): the container's profile is shown as NAME+N with N = len(weakened).
    weakened: tuple[str, ...] = ()

    @property
    def profile_label(self) -> str:
        """``strict``, or ``strict+2`` when two flags weakened it."""
        return f"{self.profile}+{len(self.weakened)}" if self.weakened else self.profile


# eq=False: instances are never compared; spares the generated __eq__ and
# __hash__ that every start-up would compile.
@record(frozen=True, eq=False)
class Weakening:
    """One way a request is weaker than its profile (the floor decides on each)."""

    flag: str        # the run flag, one of floor.FLAGS, e.g. "cap-add", "volume"
    detail: str      # what exactly, for the refusal message


def weakenings(prof: profile_mod.Profile, spec: ContainerSpec) -> list[Weakening]:
    """Each way ``spec`` weakens ``prof`` (what the floor's ``may_weaken`` rules see).

    Raises UsageError for an unknown capability name."""
    sec = spec.security
    out = []
    added = [c for c in caps_mod.apply(prof.capabilities, sec.cap_add, sec.cap_drop)
             if c not in prof.capabilities]
    if added:
        out.append(Weakening("cap-add", ", ".join(added)))
    if sec.seccomp == "unconfined" and prof.seccomp is not None:
        out.append(Weakening("seccomp=unconfined", "no seccomp filter"))
    elif sec.seccomp is not None and sec.seccomp != "unconfined":
        out.append(Weakening("seccomp", f"seccomp profile {sec.seccomp}"))
    if sec.no_new_privileges is False and prof.no_new_privileges:
        out.append(Weakening("no-new-privileges=false", "setuid binaries may gain privilege"))
    if sec.label_disable and prof.selinux_enforce != "off":
        out.append(Weakening("label=disable", "no SELinux label"))
    if sec.apparmor == "unconfined" and prof.apparmor_enforce != "off":
        out.append(Weakening("apparmor=unconfined", "no AppArmor profile"))
    if sec.read_only is False and prof.read_only_root:
        out.append(Weakening("read-only=false", "writable root filesystem"))
    if spec.network == "host" and prof.network != "host":
        out.append(Weakening("network=host", "the host's network namespace"))
    for m in spec.mounts:
        if m.kind in ("bind", "volume"):
            out.append(Weakening("volume", f"{m.source}:{m.destination}"
                                           f"{':ro' if m.read_only else ''}"))
        elif m.exec_:
            out.append(Weakening("tmpfs-exec", f"programs may run from the tmpfs at "
                                               f"{m.destination}"))
    req = spec.resources
    for flag, asked, has, what in (
            ("pids-limit", req.pids_limit, prof.pids_limit, "pids limit"),
            ("memory", req.memory, prof.memory_limit, "memory limit"),
            ("cpu-shares", req.cpu_shares, prof.cpu_shares, "cpu shares")):
        if asked is not None and has is not None and asked > has:
            out.append(Weakening(flag, f"{what} {asked}, above the profile's {has}"))
    hard_limits = {n: h for n, _, h in prof.rlimits}
    for name, _, hard in req.ulimits:
        if name in hard_limits and hard > hard_limits[name]:
            out.append(Weakening("ulimit", f"{name} hard limit {hard}, above the profile's "
                                           f"{hard_limits[name]}"))
    return out


def weakened_lines(weak: list[Weakening]) -> tuple[str, ...]:
    """One line per weakening, each added capability on its own ("cap-add SYS_ADMIN")."""
    lines: list[str] = []
    for w in weak:
        if w.flag == "cap-add":
            lines += [f"cap-add {cap}" for cap in w.detail.split(", ")]
        else:
            lines.append(f"{w.flag}: {w.detail}")
    return tuple(lines)


def confine(spec: ContainerSpec, host: HostFeatures, *, user: str | None = None,
            mcs_in_use: frozenset[str] = frozenset()) -> Confinement:
    """Resolve ``spec`` against its profile, the administrator's floor and ``host``.

    ``user``: the invoking user's name, for the floor and for ``~`` in bind sources.
    ``mcs_in_use``: MCS levels (``"s0:cX,cY"``) of the user's running containers,
    so that a new SELinux label does not reuse one.

    Raises NotFound (no such profile), ProfileError (a malformed profile or seccomp
    file), UsageError (a malformed request: a capability, network or mount), FloorRefused
    (the administrator's floor refuses the request; nothing is raised silently),
    Refused (the profile itself refuses, e.g. a bind source outside its allowed
    list) and HostError (a ``required`` setting this host cannot enforce).
    """
    from secpod.policies import floor as floor_mod

    prof = profile_mod.load(spec.profile)
    if spec.log_size_max is not None:  # --log-opt max-size: judged by the floor as a profile's
        prof = replace(prof, log_size_max=spec.log_size_max)
    weak = weakenings(prof, spec)
    floor_mod.check(prof, spec, weak, host.arch, user=user)
    conf = confine_profile(prof, spec, host, user=user, mcs_in_use=mcs_in_use)
    return replace(conf, weakened=weakened_lines(weak)) if weak else conf


def confine_profile(prof: profile_mod.Profile, spec: ContainerSpec, host: HostFeatures, *,
                    user: str | None = None,
                    mcs_in_use: frozenset[str] = frozenset()) -> Confinement:
    """:func:`confine` for an already loaded profile, WITHOUT the administrator's floor.

    For ``profile lint`` and ``profile export``, which describe a profile and run
    nothing; never use it to run a container.
    """
    # The order is the order of refusal: the first layer that cannot be had says why.
    parts: list[Fragment] = [
        capabilities.generate(prof, spec, host),
        seccomp.generate(prof, spec, host),
        namespaces.generate(prof, spec, host),
        selinux.generate(prof, spec, host, mcs_in_use=mcs_in_use),
        apparmor.generate(prof, spec, host),
        resources.generate(prof, spec, host),
        mounts.generate(prof, spec, host, user=user),
    ]
    process: dict[str, Any] = {}
    linux: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    oci_mounts: list[dict[str, Any]] = []
    unenforced: list[str] = []
    root_readonly = prof.read_only_root
    report = None
    for part in parts:
        process.update(part.process)
        linux.update(part.linux)
        summary.update(part.summary)
        oci_mounts += part.mounts
        unenforced += part.unenforced
        root_readonly = root_readonly if part.root_readonly is None else part.root_readonly
        report = report or part.seccomp_report
    summary["log_size_max"] = prof.log_size_max
    summary["unenforced"] = list(unenforced)
    # The hash covers exactly these settings (as it always has): the same profile and
    # request give the same hash across versions that split the work differently.
    settings = {
        "profile": prof.name,
        "process": process,
        "linux": linux,
        "root_readonly": root_readonly,
        "mounts": oci_mounts,
        "require_signed": prof.require_signed,
    }
    profile_hash = "sha256:" + hashlib.sha256(
        profile_mod.canonical_json(settings).encode()).hexdigest()
    return Confinement(
        profile=prof.name, profile_hash=profile_hash, process=process, linux=linux,
        root_readonly=root_readonly, mounts=tuple(oci_mounts),
        require_signed=prof.require_signed, unenforced=tuple(unenforced), summary=summary,
        seccomp_report=report,
    )
