"""The administrator's floor: ``/etc/secpod/policy.toml``.

Refused unless the file and its folder are owned by root and writable by no one
else. It says, per user, per group, or for everyone::

    [floor]                      # for everyone without a more specific rule
    minimum = "strict"           # the least strict profile (compared axis by axis)
    allowed = ["strict", "ci"]   # or/and: an explicit list of profiles
    may_weaken = ["volume"]      # run flags allowed to take a run below the floor

    [floor.users.alice]          # a user's own rule replaces the others
    minimum = "default"
    [floor.groups.builders]      # rules of all the user's groups are united
    minimum = "default"
    may_weaken = ["cap-add", "read-only=false"]

    [mounts]
    # A path forbids itself, what is under it, and any source that contains it ("/"
    # forbids only the root itself); checked as given and symlink-resolved; ~ = home.
    never = ["/", "/etc", "/var/run/*.sock", "~/.ssh"]
    volumes = "ro"               # named volumes: "rw" (as asked), "ro" (only :ro) or "none"
    tmpfs_size_max = "256m"      # no tmpfs larger: a run's, or a profile's /tmp and /run

    [trust]
    policy = "/etc/secpod/trust-policy.json"   # users cannot replace it

    [pam]
    service = "secpod"           # its account stack must accept the user before anything runs

    [audit]
    collector = "/run/secpod/audit.sock"
    required = true

    [logs]
    size_max = "50m"             # no profile may keep a larger container log (for everyone)

    [runtimes]
    allowed = ["crun"]           # the OCI runtimes anyone may use (for everyone)

    [network]                    # for everyone; docs/networking.md
    modes = ["none", "private"]  # the network modes any run may have
    publish = true               # whether -p/-P may publish ports at all
    bind_addresses = ["127.0.0.1"]   # host addresses -p may bind ("0.0.0.0": any)
    ports = ["8000-8999"]        # host ports -p may bind

Run flags (the ``flag`` of :class:`~secpod.policies.confine.Weakening`, which
:func:`~secpod.policies.confine.weakenings` finds in the container spec):

- ``cap-add``: ``--cap-add`` adds a capability the profile does not grant;
- ``seccomp``: ``--security-opt seccomp=FILE`` replaces the profile's filter;
- ``seccomp=unconfined``: no seccomp filter where the profile has one;
- ``no-new-privileges=false``: setuid binaries may gain privilege;
- ``label=disable``: no SELinux label where the profile sets one;
- ``apparmor=unconfined``: no AppArmor profile where the profile sets one;
- ``read-only=false``: a writable root where the profile makes it read-only;
- ``network=host``: the host's network namespace;
- ``volume``: each bind mount (``-v``, ``--mount type=bind``);
- ``tmpfs-exec``: each tmpfs the run asks with ``exec`` (programs may run from it);
- ``pids-limit``, ``memory``, ``cpu-shares``: a ``--pids-limit``, ``-m`` or
  ``--cpu-shares`` above the profile's.

A flag passes where the rule lists it in ``may_weaken``, or where the profile with the
flag applied still meets the rule's ``minimum``. ``volume`` is governed by
``mounts.never`` and the profile's bind sources instead (a named volume by
``mounts.volumes`` and the profile's ``volumes``); a tmpfs larger than
``mounts.tmpfs_size_max`` is refused, never made smaller; ``tmpfs-exec`` has no axis in
the profile comparison, so it passes only through ``may_weaken``; ``network=host`` is
refused unless listed (and without any policy file). A request below the floor is
refused with the rule that refused it; it is never raised silently to meet the floor.
"""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

from secpod import paths
from secpod._record import field, record, replace
from secpod.errors import AdminPolicyError, FloorRefused, NotFound, Refused
from secpod.policies import capabilities as caps_mod

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

    from secpod.policies.confine import Weakening
    from secpod.policies.profile import Profile
    from secpod.spec import ContainerSpec

POLICY_FILE = paths.ADMIN_DIR / "policy.toml"
FLAGS = ("cap-add", "seccomp", "seccomp=unconfined", "no-new-privileges=false",
         "label=disable", "apparmor=unconfined", "read-only=false", "network=host", "volume",
         "tmpfs-exec", "pids-limit", "memory", "cpu-shares", "ulimit")
# Flags the profile comparison has no axis for: only may_weaken lets them pass.
_ONLY_BY_NAME = ("tmpfs-exec",)
# How a refusal names a flag where it is not --FLAG (e.g. --cap-add).
_SPELLED = {
    "seccomp": "--security-opt seccomp=FILE",
    **{f: f"--security-opt {f}" for f in ("seccomp=unconfined", "no-new-privileges=false",
                                            "label=disable", "apparmor=unconfined")},
    "read-only=false": "--read-only=false",
    "tmpfs-exec": "--tmpfs with exec",
}
_TOP = {"floor", "mounts", "trust", "pam", "audit", "logs", "runtimes", "network"}
_NETWORK_KEYS = {"modes", "publish", "bind_addresses", "ports", "egress"}
_RULE = {"minimum", "allowed", "may_weaken"}


@record(frozen=True)
class FloorRule:
    """The floor for one scope (``floor``, ``floor.users.NAME``, ``floor.groups.NAME``)."""

    scope: str
    minimum: str | None = None
    allowed: tuple[str, ...] | None = None
    may_weaken: tuple[str, ...] = ()


@record(frozen=True)
class NetworkFloor:
    """``[network]``: what no run may exceed, whatever its profile says."""

    modes: tuple[str, ...] | None = None          # None: any mode
    publish: bool = True
    bind_addresses: tuple[str, ...] | None = None  # None: any the profile allows
    port_ranges: tuple[tuple[int, int], ...] | None = None
    # The widest egress a pasta run may have: every entry of its profile's list inside
    # one of these (network, port range, protocol); and a pasta run without a list is
    # refused. None: any list, or none.
    egress: tuple[str, ...] | None = None


@record(frozen=True)
class AdminPolicy:
    """The administrator's policy, validated. Exposed to the runner, signing and audit."""

    path: Path
    default: FloorRule | None
    users: dict[str, FloorRule] = field(default_factory=dict)
    groups: dict[str, FloorRule] = field(default_factory=dict)
    never_mount: tuple[str, ...] = ()
    volumes: str = "rw"                          # mounts.volumes: "rw" | "ro" | "none"
    tmpfs_size_max: int | None = None            # mounts.tmpfs_size_max, bytes
    trust_policy_path: Path | None = None
    pam_service: str | None = None
    audit_collector: Path | None = None
    audit_required: bool = False
    log_size_max: int | None = None
    runtimes: tuple[str, ...] | None = None      # None: any runtime secpod supports
    network: NetworkFloor | None = None           # None: no [network] table

    def rules_for(self, user: str) -> list[FloorRule]:
        """The rules that apply to ``user``: their own, else their groups', else the default."""
        if user in self.users:
            return [self.users[user]]
        mine = [self.groups[g] for g in sorted(user_groups(user)) if g in self.groups]
        if mine:
            return mine
        return [self.default] if self.default else []


def user_groups(user: str) -> set[str]:
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        return set()
    import grp

    names = set()
    for gid in os.getgrouplist(user, pw.pw_gid):
        try:
            names.add(grp.getgrgid(gid).gr_name)
        except KeyError:
            continue
    return names


def _err(path: Path, what: str, hint: str | None = None) -> AdminPolicyError:
    return AdminPolicyError(f"{path}: {what}",
                            hint=hint or "ask the administrator to fix the secpod policy")


def check_admin_file(path: Path) -> None:
    """Refuse an administrator's file (the floor, the trust policy it names) that is a
    symbolic link, or that (or whose folder) is not root's or is writable by group or
    others. Raises AdminPolicyError."""
    for p in (path, path.parent):
        st = p.lstat()
        if stat.S_ISLNK(st.st_mode):
            raise _err(p, "is a symbolic link", f"as root: replace {p} with a real file")
        if st.st_uid != 0 or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise AdminPolicyError(
                f"refusing the administrator's policy: {p} is not owned by root or is "
                "writable by group or others",
                hint=f"as root: chown root:root {p} && chmod go-w {p}")


def _rule(path: Path, scope: str, value: Any) -> FloorRule:
    if not isinstance(value, dict):
        raise _err(path, f"[{scope}] must be a table")
    for k in value:
        if k not in _RULE:
            raise _err(path, f"unknown key {scope}.{k}", "rule keys: minimum, allowed, may_weaken")
    minimum = value.get("minimum")
    if minimum is not None and not isinstance(minimum, str):
        raise _err(path, f"{scope}.minimum must be a profile name")
    allowed = value.get("allowed")
    if allowed is not None and (not isinstance(allowed, list)
                                or not all(isinstance(a, str) for a in allowed)):
        raise _err(path, f"{scope}.allowed must be a list of profile names")
    weaken = value.get("may_weaken", [])
    if not isinstance(weaken, list) or not all(isinstance(w, str) for w in weaken):
        raise _err(path, f"{scope}.may_weaken must be a list of run flags")
    for w in weaken:
        if w not in FLAGS:
            raise _err(path, f"{scope}.may_weaken: unknown run flag {w!r}",
                       "run flags: " + ", ".join(FLAGS))
    if minimum is None and allowed is None and not weaken:
        raise _err(path, f"[{scope}] is empty", "give minimum, allowed or may_weaken")
    return FloorRule(scope, minimum, tuple(allowed) if allowed is not None else None,
                     tuple(weaken))


def parse_admin_policy(path: Path, text: str) -> AdminPolicy:
    """Validate the policy text. Raises AdminPolicyError naming the file and key."""
    import tomllib

    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise _err(path, f"not valid TOML: {e}") from e
    for k in doc:
        if k not in _TOP:
            raise _err(path, f"unknown key {k!r}", "top-level tables: " + ", ".join(sorted(_TOP)))
    floor = doc.get("floor", {})
    if not isinstance(floor, dict):
        raise _err(path, "[floor] must be a table")
    users = floor.get("users", {})
    groups = floor.get("groups", {})
    if not isinstance(users, dict) or not isinstance(groups, dict):
        raise _err(path, "floor.users and floor.groups must be tables")
    base = {k: v for k, v in floor.items() if k not in ("users", "groups")}
    default = _rule(path, "floor", base) if base else None
    mounts = doc.get("mounts", {})
    if not isinstance(mounts, dict) or set(mounts) - {"never", "volumes", "tmpfs_size_max"}:
        raise _err(path, "[mounts] takes the keys never, volumes and tmpfs_size_max")
    never = mounts.get("never", [])
    if not isinstance(never, list) or not all(isinstance(n, str) and
                                              (n.startswith("/") or n == "~" or
                                               n.startswith("~/")) for n in never):
        raise _err(path, "mounts.never must be a list of absolute paths (or ~/...)")
    trust = doc.get("trust", {})
    if not isinstance(trust, dict) or set(trust) - {"policy"}:
        raise _err(path, "[trust] takes one key: policy")
    tp = trust.get("policy")
    if tp is not None and (not isinstance(tp, str) or not tp.startswith("/")):
        raise _err(path, "trust.policy must be an absolute path")
    pam = doc.get("pam", {})
    if not isinstance(pam, dict) or set(pam) - {"service"}:
        raise _err(path, "[pam] takes one key: service")
    service = pam.get("service")
    if service is not None and (not isinstance(service, str) or not service
                                or "/" in service or service.startswith(".")):
        raise _err(path, "pam.service must be a service name in /etc/pam.d")
    audit = doc.get("audit", {})
    if not isinstance(audit, dict) or set(audit) - {"collector", "required"}:
        raise _err(path, "[audit] takes the keys collector and required")
    collector = audit.get("collector")
    if collector is not None and (not isinstance(collector, str) or not collector.startswith("/")):
        raise _err(path, "audit.collector must be an absolute path to a socket")
    required = audit.get("required", False)
    if not isinstance(required, bool):
        raise _err(path, "audit.required must be true or false")
    return AdminPolicy(
        path=path, default=default,
        log_size_max=_log_size_max(path, doc.get("logs", {})),
        users={u: _rule(path, f"floor.users.{u}", r) for u, r in users.items()},
        groups={g: _rule(path, f"floor.groups.{g}", r) for g, r in groups.items()},
        never_mount=tuple(never),
        **_mount_limits(path, mounts),
        trust_policy_path=Path(tp) if tp else None,
        pam_service=service,
        audit_collector=Path(collector) if collector else None,
        audit_required=required,
        runtimes=_runtimes(path, doc.get("runtimes", {})),
        network=_network(path, doc.get("network")),
    )


def _network(path: Path, table: Any) -> NetworkFloor | None:
    if table is None:
        return None
    if not isinstance(table, dict) or set(table) - _NETWORK_KEYS:
        raise _err(path, "[network] takes the keys " + ", ".join(sorted(_NETWORK_KEYS)))
    modes = table.get("modes")
    if modes is not None:
        if not isinstance(modes, list) or not all(
                m in ("none", "private", "loopback", "pasta", "host") for m in modes):
            raise _err(path, "network.modes must be a list of none, private, pasta, host")
        modes = tuple("private" if m == "loopback" else m for m in modes)
    publish = table.get("publish", True)
    if not isinstance(publish, bool):
        raise _err(path, "network.publish must be true or false")
    addrs = table.get("bind_addresses")
    if addrs is not None:
        import ipaddress

        try:
            if not isinstance(addrs, list):
                raise ValueError(addrs)
            addrs = tuple(str(ipaddress.ip_address(a)) for a in addrs)
        except (ValueError, TypeError) as e:
            raise _err(path, "network.bind_addresses must be a list of IP addresses") from e
    ranges = table.get("ports")
    if ranges is not None:
        from secpod.network.ports import parse_port_range

        try:
            if not isinstance(ranges, list) or not all(isinstance(r, str) for r in ranges):
                raise ValueError("network.ports must be a list of strings")
            ranges = tuple(parse_port_range(r, "network.ports") for r in ranges)
        except ValueError as e:
            raise _err(path, str(e), 'e.g. ports = ["8000-8999"]') from e
    egress = table.get("egress")
    if egress is not None:
        from secpod.network.ports import parse_egress

        try:
            if not isinstance(egress, list) or not all(isinstance(e, str) for e in egress):
                raise ValueError("network.egress must be a list of strings")
            for entry in egress:
                parse_egress(entry, "network.egress")
        except ValueError as e:
            raise _err(path, str(e), 'e.g. egress = ["192.0.2.0/24:443/tcp"]') from e
        egress = tuple(egress)
    return NetworkFloor(modes=modes, publish=publish, bind_addresses=addrs,
                        port_ranges=ranges, egress=egress)


def _mount_limits(path: Path, mounts: dict[str, Any]) -> dict[str, Any]:
    from secpod.errors import ProfileError
    from secpod.policies.profile import VOLUME_MODES, parse_size

    volumes = mounts.get("volumes", "rw")
    if volumes not in VOLUME_MODES:
        raise _err(path, 'mounts.volumes must be "rw", "ro" or "none"')
    size = mounts.get("tmpfs_size_max")
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, str | int):
            raise _err(path, 'mounts.tmpfs_size_max must be a size, e.g. "256m"')
        try:
            size = parse_size(size, "mounts.tmpfs_size_max")
        except ProfileError as e:
            raise _err(path, e.message, e.hint) from e
    return {"volumes": volumes, "tmpfs_size_max": size}


def check_volumes_and_tmpfs(policy: AdminPolicy, user: str, prof: Profile,
                            spec: ContainerSpec) -> None:
    """Refuse a named volume ``mounts.volumes`` forbids (or a writable one where it says
    ``ro``), and a tmpfs above ``mounts.tmpfs_size_max``: the run's (its size, else the
    profile's ``tmpfs_size``) and the profile's own (``/tmp``, ``/run``)."""
    for m in spec.volumes:
        if policy.volumes == "none":
            raise _refuse(policy, "mounts.volumes", user,
                          f"named volumes are not allowed (volume {m.source} at "
                          f"{m.destination})", "bind a host folder the floor allows instead")
        if policy.volumes == "ro" and not m.read_only:
            raise _refuse(policy, "mounts.volumes", user,
                          f"only read-only named volumes are allowed (volume {m.source} at "
                          f"{m.destination})", f"-v {m.source}:{m.destination}:ro")
    limit = policy.tmpfs_size_max
    if limit is None:
        return
    shown = f"{limit >> 20}m" if limit % (1 << 20) == 0 else str(limit)
    for m in spec.mounts:
        size = m.size or prof.tmpfs_size
        if m.kind == "tmpfs" and size > limit:
            whose = "" if m.size else f", the default size of profile {prof.name},"
            raise _refuse(policy, "mounts.tmpfs_size_max", user,
                          f"the tmpfs at {m.destination} would be {size} bytes{whose} above "
                          f"the maximum of {limit}",
                          f"ask for at most that: --tmpfs {m.destination}:size={shown}")
    for t in prof.tmpfs:
        if t.size > limit:
            raise _refuse(policy, "mounts.tmpfs_size_max", user,
                          f"profile {prof.name} mounts a tmpfs of {t.size} bytes at {t.path}, "
                          f"above the maximum of {limit}",
                          "use a profile whose [filesystem.tmpfs] sizes are at most "
                          f"{shown}")


def check_network(policy: AdminPolicy, user: str, prof: Profile, spec: ContainerSpec) -> None:
    """Refuse a network mode or a published port beyond the floor's ``[network]``."""
    from secpod.policies.layers.namespaces import ANY_ADDRESS, check_port_allowed, network_mode

    net = policy.network
    if net is None:
        return
    where = f"network in {policy.path}"
    mode = network_mode(prof, spec)
    if net.modes is not None and mode not in net.modes:
        raise _refuse(policy, "network.modes", user, f"the network mode {mode} is not allowed",
                      "allowed modes: " + ", ".join(net.modes))
    if (spec.ports or spec.network_options.publish_all) and not net.publish:
        raise _refuse(policy, "network.publish", user, "publishing ports (-p/-P) is not allowed",
                      "run without -p/-P")
    if net.egress is not None and mode == "pasta":
        outside = egress_beyond(prof.egress, net.egress)
        if not prof.egress:
            raise _refuse(policy, "network.egress", user,
                          f"--network pasta needs an egress allow list, and profile "
                          f"{prof.name} has none",
                          "use a profile whose [network] egress is within the floor's: "
                          + ", ".join(net.egress))
        if outside:
            raise _refuse(policy, "network.egress", user,
                          f"profile {prof.name} lets out {', '.join(outside)}, beyond the "
                          "floor's egress list",
                          "the floor allows at most: " + ", ".join(net.egress))
    for p in spec.ports:
        try:
            check_port_allowed("floor", "the administrator's",
                               net.bind_addresses or ANY_ADDRESS,
                               net.port_ranges or ((1, 65535),), p)
        except Refused as e:
            raise _refuse(policy, where, user, e.message.replace(
                "the administrator's floor does not allow", "it does not allow"),
                e.hint or "") from e


def egress_beyond(asked: tuple[str, ...], allowed: tuple[str, ...]) -> list[str]:
    """The entries of ``asked`` that no entry of ``allowed`` contains (network within
    its network, ports within its range, the same protocol)."""
    import ipaddress

    from secpod.network.ports import parse_egress

    def parsed(text: str) -> tuple[Any, int, int, str]:
        e = parse_egress(text, "egress")
        return (ipaddress.ip_network(e["network"]), e["ports"][0], e["ports"][1],
                e["protocol"])

    wide = [parsed(a) for a in allowed]
    out = []
    for text in asked:
        net, lo, hi, proto = parsed(text)
        if not any(proto == p and lo >= wlo and hi <= whi and net.version == w.version
                   and net.subnet_of(w) for w, wlo, whi, p in wide):
            out.append(text)
    return out


def _runtimes(path: Path, table: Any) -> tuple[str, ...] | None:
    if not isinstance(table, dict) or set(table) - {"allowed"}:
        raise _err(path, "[runtimes] takes one key: allowed")
    allowed = table.get("allowed")
    if allowed is None:
        return None
    if (not isinstance(allowed, list) or not allowed
            or not all(isinstance(a, str) and a and "/" not in a for a in allowed)):
        raise _err(path, "runtimes.allowed must be a non-empty list of runtime names",
                   'e.g. allowed = ["crun"]')
    return tuple(allowed)


def _log_size_max(path: Path, logs: Any) -> int | None:
    from secpod.errors import ProfileError
    from secpod.policies.profile import parse_size

    if not isinstance(logs, dict) or set(logs) - {"size_max"}:
        raise _err(path, "[logs] takes one key: size_max")
    value = logs.get("size_max")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _err(path, 'logs.size_max must be a size, e.g. "50m"')
    try:
        return parse_size(value, "logs.size_max")
    except ProfileError as e:
        raise _err(path, e.message, e.hint) from e


def check_log_size(policy: AdminPolicy, user: str, prof: Profile) -> None:
    """Refuse a profile that keeps more container log than the floor's ``logs.size_max``."""
    if policy.log_size_max is not None and prof.log_size_max > policy.log_size_max:
        raise _refuse(policy, "logs.size_max", user,
                      f"profile {prof.name} keeps up to {prof.log_size_max} bytes of container "
                      f"log, above the floor's maximum of {policy.log_size_max}",
                      "use a profile whose [logs] size_max is at most "
                      f"{policy.log_size_max} bytes")


def load_admin_policy(path: Path | None = None) -> AdminPolicy | None:
    """The administrator's policy, or None where there is none.

    Raises AdminPolicyError when the file (or its folder) is not root's or is
    writable by others, is malformed, or names an unknown key.
    """
    path = path or POLICY_FILE
    try:
        path.lstat()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise _err(path, f"cannot be read: {e.strerror}") from e
    check_admin_file(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise _err(path, f"cannot be read: {e}") from e
    return parse_admin_policy(path, text)


# --- checks ------------------------------------------------------------------


def _refuse(policy: AdminPolicy, rule: str, user: str, what: str, hint: str) -> FloorRefused:
    return FloorRefused(f"refused by the administrator's floor ({rule} in {policy.path}) "
                        f"for user {user}: {what}", hint=hint)


def _at_or_above(prof: Profile, rule: FloorRule, arch: str,
                 user: str | None = None) -> list[str]:
    """Empty if ``prof`` satisfies ``rule``; else the reasons it does not."""
    from secpod.policies import compare
    from secpod.policies.profile import load

    reasons: list[str] = []
    if rule.allowed is not None and prof.name not in rule.allowed:
        reasons.append(f"profile {prof.name} is not one of {', '.join(rule.allowed)}")
    if rule.minimum is not None:
        try:
            minimum = load(rule.minimum)
        except NotFound as e:
            raise AdminPolicyError(
                f"the floor names the profile {rule.minimum!r} ({rule.scope}), which does "
                "not exist", hint="ask the administrator to fix /etc/secpod/policy.toml") from e
        reasons += compare.weaker(prof, minimum, arch, user)
    return reasons


def applied(prof: Profile, spec: ContainerSpec, weakenings: list[Weakening]) -> Profile:
    """``prof`` with every weakening run flag of ``spec`` applied: what the container
    really runs with, for a comparison with another profile (a pod's floor)."""
    for w in weakenings:
        prof = _with_flag(prof, w, spec)
    return prof


def _with_flag(prof: Profile, w: Weakening, spec: ContainerSpec) -> Profile:
    """``prof`` with one weakening run flag applied (for the floor's comparison)."""
    from secpod.policies import seccomp as seccomp_mod

    sec = spec.security
    if w.flag == "cap-add":
        return replace(prof, capabilities=caps_mod.apply(prof.capabilities, sec.cap_add,
                                                         sec.cap_drop))
    if w.flag == "seccomp=unconfined":
        return replace(prof, seccomp=None, seccomp_source="unconfined")
    if w.flag == "seccomp" and sec.seccomp is not None:
        return replace(prof, seccomp=seccomp_mod.load(Path(sec.seccomp)),
                       seccomp_source=sec.seccomp)
    if w.flag == "no-new-privileges=false":
        return replace(prof, no_new_privileges=False)
    if w.flag == "label=disable":
        return replace(prof, selinux_enforce="off")
    if w.flag == "apparmor=unconfined":
        return replace(prof, apparmor_enforce="off")
    if w.flag == "read-only=false":
        return replace(prof, read_only_root=False)
    if w.flag == "network=host":
        return replace(prof, network="host")
    if w.flag == "pids-limit":
        return replace(prof, pids_limit=spec.resources.pids_limit)
    if w.flag == "memory":
        return replace(prof, memory_limit=spec.resources.memory)
    if w.flag == "cpu-shares":
        return replace(prof, cpu_shares=spec.resources.cpu_shares)
    if w.flag == "ulimit":
        from secpod.policies.layers.resources import run_rlimits

        return replace(prof, rlimits=tuple(run_rlimits(prof, spec)))
    return prof


def _expand(pattern: str, homes: list[Path]) -> list[str]:
    if pattern == "~" or pattern.startswith("~/"):
        return [x for h in homes for x in _expand(str(h) + pattern[1:], [])]
    out = [pattern.rstrip("/") or "/"]
    # The symlink-resolved form of the pattern's literal part (/var/run -> /run).
    literal, _, rest = pattern.partition("*")
    head = os.path.dirname(literal) if rest or "*" in pattern else literal
    try:
        resolved = str(Path(head or "/").resolve())
    except (OSError, RuntimeError):
        resolved = head
    if resolved != head:
        tail = pattern[len(head):]
        out.append((resolved.rstrip("/") + tail).rstrip("/") or "/")
    return out


def _hits(source: str, pattern: str) -> bool:
    import fnmatch

    if pattern == "/":
        return source == "/"     # "/" forbids the root itself, not everything under it
    if fnmatch.fnmatchcase(source, pattern):
        return True
    # The source is inside a forbidden path, or contains it.
    literal = pattern.split("*", 1)[0].rstrip("/") if "*" in pattern else pattern
    if "*" not in pattern and (source == pattern or source.startswith(pattern.rstrip("/") + "/")):
        return True
    base = os.path.dirname(literal) if "*" in pattern else literal
    return source == "/" or (base + "/").startswith(source.rstrip("/") + "/")


def check_mount(policy: AdminPolicy, user: str, source: str) -> None:
    """Refuse a bind source the policy never allows (as given and symlink-resolved)."""
    from secpod.policies.profile import home_of

    # ~ is both the passwd home and $HOME: forbidding more is the safe side here.
    homes = [h for h in (home_of(user), Path(os.environ.get("HOME", "") or "/nonexistent"))
             if h is not None and str(h) not in ("/", "/nonexistent")]
    forms = {os.path.normpath(source)}
    try:
        forms.add(str(Path(source).resolve(strict=True)))
    except (OSError, RuntimeError):
        pass
    for pattern in policy.never_mount:
        for pat in _expand(pattern, homes):
            for form in forms:
                if _hits(form, pat):
                    raise _refuse(policy, "mounts.never", user,
                                  f"the host path {source} may not be mounted "
                                  f"(it matches {pattern})",
                                  "mount a folder that holds only what the container needs")


def check_runtime(name: str, user: str | None, *, policy: AdminPolicy | None = None) -> None:
    """Refuse an OCI runtime that the policy's ``[runtimes] allowed`` does not list.

    ``name``: the runtime that would run the container (``crun``, ``runc``), the
    configured default already resolved; ``user``: the invoking user (default: the real
    user); ``policy``: the parsed policy (default: :data:`POLICY_FILE`'s). Without a
    policy or a ``[runtimes]`` table, every runtime secpod supports is allowed. Raises
    FloorRefused naming the rule and the runtimes allowed, AdminPolicyError for a
    malformed or unsafe policy file.
    """
    policy = policy if policy is not None else load_admin_policy()
    if policy is None or policy.runtimes is None or name in policy.runtimes:
        return
    allowed = ", ".join(policy.runtimes)
    raise _refuse(policy, "runtimes.allowed", invoking_user(user),
                  f"the OCI runtime {name} is not allowed (allowed: {allowed})",
                  f"use --runtime {policy.runtimes[0]}, or ask the administrator")


def check_pam(policy: AdminPolicy, user: str) -> None:
    """Ask the PAM service's account stack whether ``user`` may run containers."""
    if not policy.pam_service:
        return
    try:
        import PAM  # type: ignore[import-not-found]  # Debian python3-pam
    except ImportError as e:
        from secpod.errors import HostError

        raise HostError("the administrator's policy needs a PAM check, and the PAM Python "
                        "module is missing", hint="apt-get install python3-pam") from e
    if not (Path("/etc/pam.d") / policy.pam_service).is_file():
        raise AdminPolicyError(f"{policy.path}: pam.service {policy.pam_service!r} has no file "
                               f"/etc/pam.d/{policy.pam_service}",
                               hint="ask the administrator to install the PAM service file")
    handle = PAM.pam()
    try:
        handle.start(policy.pam_service, user)
        handle.acct_mgmt()
    except PAM.error as e:
        text = e.args[0] if e.args else str(e)
        raise _refuse(policy, f"pam.service {policy.pam_service}", user,
                      f"the PAM account check refuses this user ({text})",
                      "ask the administrator for access") from e


def invoking_user(request_user: str | None) -> str:
    if request_user:
        return request_user
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def check(prof: Profile, spec: ContainerSpec, weakenings: list[Weakening], arch: str, *,
          user: str | None = None, policy: AdminPolicy | None = None) -> AdminPolicy | None:
    """Apply the floor to a container spec and its weakenings of ``prof``; return the policy.

    ``user``: the invoking user's name (default: the real user's); ``policy``: the parsed
    policy (default: :data:`POLICY_FILE`'s). Without an administrator's policy, only
    ``--network host`` is refused. Raises FloorRefused naming the rule, AdminPolicyError
    for a malformed or unsafe policy file.
    """
    policy = policy if policy is not None else load_admin_policy()
    user = invoking_user(user)
    if policy is None:
        if any(w.flag == "network=host" for w in weakenings):
            raise FloorRefused("--network host is refused: no administrator's policy allows it",
                               hint="use the default loopback-only network (--network none)")
        return None
    check_pam(policy, user)
    check_log_size(policy, user, prof)
    check_network(policy, user, prof, spec)
    for m in spec.binds:
        check_mount(policy, user, m.source)
    check_volumes_and_tmpfs(policy, user, prof, spec)
    rules = policy.rules_for(user)
    if not rules:
        if any(w.flag == "network=host" for w in weakenings):
            raise _refuse(policy, "floor", user, "--network host is not allowed",
                          'allow it with may_weaken = ["network=host"]')
        return policy
    # The profile itself must satisfy at least one applicable rule (groups unite).
    failures = []
    passing = []
    for rule in rules:
        reasons = _at_or_above(prof, rule, arch, user)
        (failures.append((rule, reasons)) if reasons else passing.append(rule))
    if not passing:
        rule, reasons = failures[0]
        raise _refuse(policy, rule.scope, user,
                      f"profile {prof.name} is below the floor: " + "; ".join(reasons[:4]),
                      f"use --profile {rule.minimum or (rule.allowed or ['strict'])[0]} "
                      "or a profile that extends it without weakening it")
    may = {f for r in passing for f in r.may_weaken}
    for w in weakenings:
        if w.flag in may:
            continue
        if w.flag == "network=host":
            raise _refuse(policy, passing[0].scope, user, "--network host is not allowed",
                          'the administrator may allow it with may_weaken = ["network=host"]')
        if w.flag == "volume":
            continue    # mounts are governed by mounts.never and the profile's bind sources
        # Without may_weaken, a flag passes only if the run it makes still meets a
        # rule's minimum; an allowed-list rule cannot judge a flag, so it refuses, and
        # neither can a minimum judge a flag the comparison has no axis for.
        weakened = _with_flag(prof, w, spec)
        still = [] if w.flag in _ONLY_BY_NAME else [
            r for r in passing
            if r.minimum is not None and not _at_or_above(weakened, r, arch, user)]
        if not still:
            why = next((_at_or_above(weakened, r, arch, user) for r in passing
                        if r.minimum is not None), [])
            raise _refuse(policy, passing[0].scope, user,
                          f"{_SPELLED.get(w.flag, '--' + w.flag)} "
                          f"weakens profile {prof.name} ({w.detail}), and the floor does not "
                          "let this flag weaken it" + (": " + "; ".join(why[:4]) if why else ""),
                          f'the administrator may allow it with may_weaken = ["{w.flag}"]')
    return policy
