"""The one entry point the runner calls: a run request and the host, in; OCI settings, out.

``confine`` applies, in order: the profile (with inheritance), the run flags that
change confinement (each checked against the administrator's floor, which sees
the request as asked and refuses it rather than raising it), then the host:
what the host cannot enforce is refused (``required``) or recorded in
``unenforced`` (``if-available``), never silently dropped.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from secpod._record import field, record, replace
from secpod.errors import HostError, ProfileError, Refused, UsageError
from secpod.policies import capabilities as caps_mod
from secpod.policies import profile as profile_mod
from secpod.policies import seccomp as seccomp_mod

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

    from secpod.sandbox.host import HostFeatures
    from secpod.spec import ContainerSpec

_RLIMIT_NAMES = {n: f"RLIMIT_{n.upper()}" for n in profile_mod.RLIMITS}
_SECURITY_OPTS = ("seccomp", "no-new-privileges", "label", "apparmor")


# eq=False: instances are never compared; spares the generated __eq__ and
# __hash__ that every start-up would compile.
@record(frozen=True, eq=False)
class RunRequest:
    """What the user asked on the command line that touches confinement."""

    profile: str = "default"
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    security_opts: tuple[str, ...] = ()     # seccomp=FILE|unconfined, no-new-privileges=false,
    #                                         label=disable, apparmor=NAME
    volumes: tuple[tuple[str, str, bool], ...] = ()   # (host_src, container_dst, read_only)
    read_only: bool | None = None           # None: as the profile says
    network: str | None = None              # None: as the profile says; "none" | "host"
    user: str | None = None                 # the invoking user's name, for the floor


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
    seccomp_report: seccomp_mod.SeccompReport | None = field(default=None, compare=False)
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

    flag: str        # the run flag, e.g. "cap-add", "seccomp=unconfined", "volume"
    detail: str      # what exactly, for the refusal message


# eq=False: instances are never compared; spares the generated __eq__ and
# __hash__ that every start-up would compile.
@record(eq=False)
class _Opts:
    """The parsed ``--security-opt`` values."""

    seccomp: str | None = None          # "unconfined" or a file path
    no_new_privileges: bool | None = None
    label_disable: bool = False
    apparmor: str | None = None


def _parse_security_opts(opts: tuple[str, ...]) -> _Opts:
    out = _Opts()
    for opt in opts:
        key, sep, value = opt.partition("=")
        if not sep:
            key, sep, value = opt.partition(":")   # Docker's older "seccomp:FILE"
        if not sep or key not in _SECURITY_OPTS or not value:
            raise UsageError(
                f"unsupported --security-opt {opt!r}",
                hint="use seccomp=FILE, seccomp=unconfined, no-new-privileges[=true|false], "
                     "label=disable or apparmor=NAME")
        if key == "seccomp":
            out.seccomp = value
        elif key == "no-new-privileges":
            if value not in ("true", "false"):
                raise UsageError(f"--security-opt {opt!r}: use no-new-privileges=true|false")
            out.no_new_privileges = value == "true"
        elif key == "label":
            if value != "disable":
                raise UsageError(f"--security-opt {opt!r}: only label=disable is supported",
                                 hint="the SELinux type comes from the profile")
            out.label_disable = True
        else:
            out.apparmor = value
    return out


def _resolve_source(src: str) -> Path:
    p = Path(src)
    if not p.is_absolute():
        raise UsageError(f"volume source {src!r} is not an absolute path",
                         hint="give the host path in full, e.g. -v $PWD/data:/data")
    try:
        return p.resolve(strict=True)
    except (OSError, RuntimeError) as e:
        raise UsageError(f"volume source {src} does not exist or cannot be resolved",
                         hint="create it first, or fix the path") from e


def _under(path: Path, base: Path) -> bool:
    return path == base or base in path.parents


def _bind_allowed(source: Path, allowed: tuple[str, ...], user: str | None) -> bool:
    home = profile_mod.home_of(user)
    for a in allowed:
        if a == "~" or a.startswith("~/"):
            if home is None:
                continue
            base = home / a[2:] if a.startswith("~/") else home
        else:
            base = Path(a)
        try:
            base = base.resolve()
        except (OSError, RuntimeError):
            continue
        if _under(source, base):
            return True
    return False


def _mcs_label() -> str:
    import secrets

    # Two distinct categories, c0..c1023, as container-selinux allocates them.
    a = secrets.randbelow(1024)
    b = secrets.randbelow(1023)
    b = b + 1 if b >= a else b
    lo, hi = sorted((a, b))
    return f"s0:c{lo},c{hi}"


def weakenings(prof: profile_mod.Profile, request: RunRequest) -> list[Weakening]:
    """Each way ``request`` weakens ``prof`` (what the floor's ``may_weaken`` rules see)."""
    opts = _parse_security_opts(request.security_opts)
    out = []
    added = [c for c in caps_mod.apply(prof.capabilities, request.cap_add, request.cap_drop)
             if c not in prof.capabilities]
    if added:
        out.append(Weakening("cap-add", ", ".join(added)))
    if opts.seccomp == "unconfined" and prof.seccomp is not None:
        out.append(Weakening("seccomp=unconfined", "no seccomp filter"))
    elif opts.seccomp is not None:
        out.append(Weakening("seccomp", f"seccomp profile {opts.seccomp}"))
    if opts.no_new_privileges is False and prof.no_new_privileges:
        out.append(Weakening("no-new-privileges=false", "setuid binaries may gain privilege"))
    if opts.label_disable and prof.selinux_enforce != "off":
        out.append(Weakening("label=disable", "no SELinux label"))
    if opts.apparmor == "unconfined" and prof.apparmor_enforce != "off":
        out.append(Weakening("apparmor=unconfined", "no AppArmor profile"))
    if request.read_only is False and prof.read_only_root:
        out.append(Weakening("read-only=false", "writable root filesystem"))
    if request.network == "host" and prof.network != "host":
        out.append(Weakening("network=host", "the host's network namespace"))
    for src, dst, ro in request.volumes:
        out.append(Weakening("volume", f"{src}:{dst}{':ro' if ro else ''}"))
    return out


def request_of(spec: ContainerSpec, user: str | None) -> RunRequest:
    """The confinement part of ``spec`` (what the floor and the profile judge)."""
    sec = spec.security
    opts = []
    if sec.seccomp is not None:
        opts.append(f"seccomp={sec.seccomp}")
    if sec.no_new_privileges is not None:
        opts.append(f"no-new-privileges={'true' if sec.no_new_privileges else 'false'}")
    if sec.label_disable:
        opts.append("label=disable")
    if sec.apparmor is not None:
        opts.append(f"apparmor={sec.apparmor}")
    return RunRequest(profile=spec.profile, cap_add=sec.cap_add, cap_drop=sec.cap_drop,
                      security_opts=tuple(opts),
                      volumes=tuple((m.source, m.destination, m.read_only) for m in spec.binds),
                      read_only=sec.read_only, network=spec.network, user=user)


def confine(spec: ContainerSpec, host: HostFeatures, *, user: str | None = None,
            mcs_in_use: frozenset[str] = frozenset()) -> Confinement:
    """Resolve ``request`` against its profile, the administrator's floor and ``host``.

    ``mcs_in_use``: MCS levels (``"s0:cX,cY"``) of the user's running containers,
    so that a new SELinux label does not reuse one.

    Raises NotFound (no such profile), ProfileError (a malformed profile or seccomp
    file), UsageError (a malformed flag or volume), FloorRefused (the
    administrator's floor refuses the request; nothing is raised silently),
    Refused (the profile itself refuses, e.g. a bind source outside its allowed
    list) and HostError (a ``required`` setting this host cannot enforce).
    """
    request = request_of(spec, user)
    prof = profile_mod.load(request.profile)
    if request.network not in (None, "none", "host", "loopback"):
        raise UsageError(f"unsupported --network {request.network!r}",
                         hint="use --network none (loopback only) or --network host")

    from secpod.policies import floor as floor_mod

    weak = weakenings(prof, request)
    floor_mod.check(prof, request, weak, host.arch)
    conf = confine_profile(prof, request, host, mcs_in_use=mcs_in_use)
    return replace(conf, weakened=weakened_lines(weak)) if weak else conf


def weakened_lines(weak: list[Weakening]) -> tuple[str, ...]:
    """One line per weakening, each added capability on its own ("cap-add SYS_ADMIN")."""
    lines: list[str] = []
    for w in weak:
        if w.flag == "cap-add":
            lines += [f"cap-add {cap}" for cap in w.detail.split(", ")]
        else:
            lines.append(f"{w.flag}: {w.detail}")
    return tuple(lines)


def confine_profile(prof: profile_mod.Profile, request: RunRequest, host: HostFeatures, *,
                    mcs_in_use: frozenset[str] = frozenset()) -> Confinement:
    """:func:`confine` for an already loaded profile, WITHOUT the administrator's floor.

    For ``profile lint`` and ``profile export``, which describe a profile and run
    nothing; never use it to run a container.
    """
    opts = _parse_security_opts(request.security_opts)
    unenforced: list[str] = []

    # 1. capabilities
    cap_set = caps_mod.apply(prof.capabilities, request.cap_add, request.cap_drop)
    caps = list(cap_set)
    process: dict[str, Any] = {
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps,
                         "inheritable": [], "ambient": []},
        "noNewPrivileges": (prof.no_new_privileges if opts.no_new_privileges is None
                            else opts.no_new_privileges),
        "rlimits": [{"type": _RLIMIT_NAMES[n], "soft": s, "hard": h}
                    for n, s, h in prof.rlimits],
    }

    # 2. seccomp
    linux: dict[str, Any] = {}
    seccomp_profile = prof.seccomp
    seccomp_source = prof.seccomp_source
    if opts.seccomp == "unconfined":
        seccomp_profile, seccomp_source = None, "unconfined"
    elif opts.seccomp is not None:
        seccomp_source = opts.seccomp
        seccomp_profile = seccomp_mod.load(Path(opts.seccomp))
    report = None
    if seccomp_profile is not None:
        if not host.seccomp:
            raise HostError("this kernel has no seccomp, which the profile needs",
                            hint="run on a kernel built with CONFIG_SECCOMP_FILTER")
        oci_seccomp = seccomp_profile.to_oci(host.arch, cap_set)
        report = _compile_cached(oci_seccomp, seccomp_source)
        linux["seccomp"] = oci_seccomp

    # 3. paths, namespaces, sysctls
    linux["maskedPaths"] = list(prof.masked_paths)
    linux["readonlyPaths"] = list(prof.readonly_paths)
    network = prof.network if request.network is None else request.network
    if network == "loopback":
        network = "none"
    namespaces = [{"type": n} for n in prof.namespaces]
    if network != "host":
        namespaces.insert(1, {"type": "network"})
    linux["namespaces"] = namespaces
    if prof.sysctls:
        if network == "host" and any(k.startswith("net.") for k, _ in prof.sysctls):
            raise ProfileError(f"profile {prof.name}: net.* sysctls need the container's own "
                               "network namespace, not the host's")
        linux["sysctl"] = dict(prof.sysctls)

    # 4. LSMs
    selinux_label = None
    if prof.selinux_enforce != "off" and not opts.label_disable:
        if host.selinux_enabled:
            level = _mcs_label()
            for _ in range(64):
                if level not in mcs_in_use:
                    break
                level = _mcs_label()
            selinux_label = f"system_u:system_r:{prof.selinux_type}:{level}"
            process["selinuxLabel"] = selinux_label
            linux["mountLabel"] = f"system_u:object_r:container_file_t:{level}"
        elif prof.selinux_enforce == "required":
            raise HostError(
                f"profile {prof.name} requires an SELinux label, and SELinux is not enabled "
                "on this host",
                hint="use a profile whose [selinux] enforce is \"if-available\", or run on a "
                     "host with SELinux enabled")
        else:
            unenforced.append(f"SELinux label ({prof.selinux_type}): SELinux is not enabled "
                              "on this host")
    apparmor_name = opts.apparmor or prof.apparmor_profile
    apparmor_profile = None
    if prof.apparmor_enforce != "off" and apparmor_name != "unconfined":
        if host.apparmor_enabled and apparmor_name in host.apparmor_profiles:
            apparmor_profile = apparmor_name
            process["apparmorProfile"] = apparmor_name
        else:
            why = ("AppArmor is not enabled in this kernel" if not host.apparmor_enabled
                   else f"the AppArmor profile {apparmor_name} is not loaded "
                        "(`secpod system install-apparmor`, as root)")
            if prof.apparmor_enforce == "required" or opts.apparmor is not None:
                raise HostError(f"profile {prof.name} requires the AppArmor profile "
                                f"{apparmor_name}, and {why}",
                                hint="use a profile whose [apparmor] enforce is "
                                     "\"if-available\", or load the AppArmor profile")
            unenforced.append(f"AppArmor profile {apparmor_name}: {why}")

    # 5. cgroup limits
    limits = []
    if prof.pids_limit is not None:
        limits.append(("pids", f"pids limit {prof.pids_limit}"))
    if prof.memory_limit is not None:
        limits.append(("memory", f"memory limit {prof.memory_limit} bytes"))
    if prof.cpu_shares is not None:
        limits.append(("cpu", f"cpu shares {prof.cpu_shares}"))
    if limits:
        if host.can_limit_resources:
            res: dict[str, Any] = {}
            if prof.pids_limit is not None:
                res["pids"] = {"limit": prof.pids_limit}
            if prof.memory_limit is not None:
                res["memory"] = {"limit": prof.memory_limit}
            if prof.cpu_shares is not None:
                res["cpu"] = {"shares": prof.cpu_shares}
            linux["resources"] = res
        else:
            why = _no_limits_reason(host)
            if prof.limits_enforce == "required":
                raise HostError(
                    f"profile {prof.name} requires {', '.join(d for _, d in limits)}, and "
                    f"this host cannot enforce them: {why}",
                    hint="use a profile whose [limits] enforce is \"if-available\", or a host "
                         "with cgroup v2 delegated to the user (systemd user session)")
            unenforced.extend(f"{d}: {why}" for _, d in limits)

    # 6. mounts
    root_readonly = prof.read_only_root if request.read_only is None else request.read_only
    mounts: list[dict[str, Any]] = []
    for t in prof.tmpfs:
        mounts.append({"destination": t.path, "type": "tmpfs", "source": "tmpfs",
                       "options": [*t.options, f"mode={t.mode}", f"size={t.size}"]})
    for dev in prof.devices:
        mounts.append({"destination": dev, "type": "bind", "source": dev,
                       "options": ["bind", "nosuid", "noexec"]})
    seen_dst = {m["destination"] for m in mounts}
    for src, dst, ro in request.volumes:
        source = _resolve_source(src)
        if not dst.startswith("/") or "/../" in f"{dst}/" or dst == "/":
            raise UsageError(f"volume destination {dst!r} must be an absolute path below /")
        if dst in seen_dst:
            raise UsageError(f"two mounts at {dst}")
        seen_dst.add(dst)
        if not _bind_allowed(source, prof.allowed_bind_sources, request.user):
            raise Refused(
                f"profile {prof.name} does not allow bind mounts from {source}",
                hint="allowed sources: " + ", ".join(prof.allowed_bind_sources)
                     + "; or use a profile that extends it with more")
        mounts.append({"destination": dst, "type": "bind", "source": str(source),
                       "options": ["rbind", "ro" if ro else "rw", "nosuid", "nodev",
                                   "rprivate"]})

    settings = {
        "profile": prof.name,
        "process": process,
        "linux": linux,
        "root_readonly": root_readonly,
        "mounts": mounts,
        "require_signed": prof.require_signed,
    }
    profile_hash = "sha256:" + hashlib.sha256(
        profile_mod.canonical_json(settings).encode()).hexdigest()
    summary = {
        "caps": caps,
        "seccomp": {
            "enabled": seccomp_profile is not None,
            "source": seccomp_source if seccomp_source == "unconfined"
            else os.path.basename(seccomp_source),
            "rules": report.rules if report else 0,
            "bpf_instructions": report.bpf_instructions if report else 0,
            "default": linux["seccomp"]["defaultAction"] if "seccomp" in linux else None,
            "unresolved": list(report.unresolved) if report else [],
        },
        "no_new_privileges": process["noNewPrivileges"],
        "selinux": selinux_label,
        "apparmor": apparmor_profile,
        "read_only_root": root_readonly,
        "namespaces": ["user", *(n["type"] for n in namespaces)],
        "network": "host" if network == "host" else "loopback",
        "rlimits": {n: [s, h] for n, s, h in prof.rlimits},
        "log_size_max": prof.log_size_max,
        "unenforced": list(unenforced),
    }
    return Confinement(
        profile=prof.name, profile_hash=profile_hash, process=process, linux=linux,
        root_readonly=root_readonly, mounts=tuple(mounts), require_signed=prof.require_signed,
        unenforced=tuple(unenforced), summary=summary, seccomp_report=report,
    )


def _no_limits_reason(host: HostFeatures) -> str:
    mode = host.cgroup_mode.value
    if mode == "hybrid":
        return "cgroups are in hybrid mode, rootless limits are not enforced"
    if mode in ("v1", "none"):
        return f"cgroups are {mode}, rootless limits are not enforced"
    return "no cgroup is delegated to this user"


_REPORTS: dict[str, seccomp_mod.SeccompReport] = {}
# Bump when compile_oci counts differently: old entries then no longer match.
_REPORT_CACHE_FORMAT = "seccomp-report/1"


def _compile_cached(oci: dict[str, Any], source: str) -> seccomp_mod.SeccompReport:
    """:func:`seccomp.compile_oci`, remembered per process and in the user's cache.

    The compile is a pure function of the OCI JSON and the libseccomp version (3-30 ms
    on every run otherwise). A cached report only says what an identical compile said
    before (libseccomp accepted it, and its BPF length); crun compiles the filter
    itself, so a wrong entry cannot loosen it.
    """
    digest = hashlib.sha256(profile_mod.canonical_json(oci).encode()).hexdigest()
    if digest in _REPORTS:
        return _REPORTS[digest]
    from secpod.policies import _cache

    version = seccomp_mod.libseccomp_version()
    key = hashlib.sha256(f"{_REPORT_CACHE_FORMAT}\0{version}\0{digest}".encode()).hexdigest()
    report = None
    if version != "unknown":
        report = _report_from_cache(_cache.get("seccomp-report", key), oci, version)
    if report is None:
        report = seccomp_mod.compile_oci(oci, source)
        if version != "unknown":
            _cache.put("seccomp-report", key, report.as_dict())
    _REPORTS[digest] = report
    return report


def _report_from_cache(value: Any, oci: dict[str, Any],
                       version: str) -> seccomp_mod.SeccompReport | None:
    """A cached report if it is well formed and fits ``oci``; else None (compile again).

    The rule count and the unresolved names are recounted (libseccomp's name lookup,
    well under a millisecond) and must agree; only the BPF length is taken on trust.
    """
    if not isinstance(value, dict):
        return None
    bpf = value.get("bpf_instructions")
    if (not isinstance(bpf, int) or isinstance(bpf, bool) or bpf <= 0
            or value.get("architectures") != list(oci.get("architectures") or ())
            or value.get("libseccomp") != version):
        return None
    rules, unresolved = seccomp_mod.resolution(oci)
    if value.get("rules") != rules or value.get("unresolved") != list(unresolved):
        return None
    return seccomp_mod.SeccompReport(rules=rules, bpf_instructions=bpf,
                                     architectures=tuple(oci.get("architectures") or ()),
                                     unresolved=unresolved, libseccomp=version)
