"""Is one profile at least as strict as another? Axis by axis, with the reasons why not.

The floor uses this to decide whether a profile (or a profile with run flags
applied) is at or above the least strict profile a user may use; ``profile diff``
uses the same settings. A profile passes only if it is no weaker on any axis:
capabilities a subset, seccomp allowing nothing the reference does not, every
masked and read-only path kept, no namespace dropped, rlimits and cgroup limits
no higher, LSM enforcement no lower, signed images still required.
"""

from __future__ import annotations

import os
from pathlib import Path

from secpod.policies.profile import Profile

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

_ENFORCE_RANK = {"off": 0, "if-available": 1, "required": 2}
_UNCONFINED_TYPES = frozenset({"spc_t", "unconfined_t", "container_runtime_t", "kernel_t"})


_U64 = (1 << 64) - 1
# Actions that keep a syscall from running. Any other one lets it run, or hands it
# to someone who may run it: ALLOW, LOG, NOTIFY (a listener outside the filter,
# which may answer CONTINUE or act for the caller), TRACE (a tracer may let it
# through), TRAP (a SIGSYS handler: counted as a weakening, to stay on the safe side).
DENY_ACTIONS = frozenset({"SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                          "SCMP_ACT_KILL_THREAD"})
Cmp = tuple[int, str, int, int]          # (index, op, value, valueTwo)


def _allows(oci: dict[str, Any] | None) -> tuple[dict[str, list[list[Cmp]]], str]:
    """name -> the argument conditions under which it may run ([] = always).

    Every action outside :data:`DENY_ACTIONS` counts as allowing."""
    if oci is None:
        return {}, "SCMP_ACT_ALLOW"
    out: dict[str, list[list[Cmp]]] = {}
    for e in oci["syscalls"]:
        if e["action"] in DENY_ACTIONS:
            continue
        conds = [(a["index"], a["op"], a["value"], a.get("valueTwo", 0) or 0)
                 for a in e.get("args") or []]
        for n in e["names"]:
            out.setdefault(n, []).append(conds)
    return out, oci["defaultAction"]


def _holds(op: str, v: int, value: int, two: int) -> bool:
    return {"SCMP_CMP_EQ": v == value, "SCMP_CMP_NE": v != value, "SCMP_CMP_LT": v < value,
            "SCMP_CMP_LE": v <= value, "SCMP_CMP_GT": v > value, "SCMP_CMP_GE": v >= value,
            "SCMP_CMP_MASKED_EQ": (v & value) == two}[op]


def _range(op: str, value: int) -> tuple[int, int] | None:
    """The closed interval of values ``op value`` admits, for the ordering operators."""
    return {"SCMP_CMP_EQ": (value, value), "SCMP_CMP_LT": (0, value - 1),
            "SCMP_CMP_LE": (0, value), "SCMP_CMP_GT": (value + 1, _U64),
            "SCMP_CMP_GE": (value, _U64)}.get(op)


def _implies(a: Cmp, b: Cmp) -> bool:
    """Every argument value satisfying comparison ``a`` satisfies ``b`` (same index)."""
    _, op_a, va, ta = a
    _, op_b, vb, tb = b
    if a[1:] == b[1:]:
        return True
    if op_a == "SCMP_CMP_EQ":
        return _holds(op_b, va, vb, tb)
    if op_a == "SCMP_CMP_MASKED_EQ":
        # bits fixed by a's mask decide b when b's mask is within it
        return op_b == "SCMP_CMP_MASKED_EQ" and vb & ~va == 0 and (ta & vb) == tb
    ra, rb = _range(op_a, va), _range(op_b, vb)
    if ra is not None and rb is not None:
        return rb[0] <= ra[0] and ra[1] <= rb[1]
    if ra is not None and op_b == "SCMP_CMP_NE":
        return not ra[0] <= vb <= ra[1]
    return False


def _covered(cand: list[Cmp], ref: list[Cmp]) -> bool:
    """The candidate rule's conditions imply every condition of the reference rule."""
    return all(any(c[0] == r[0] and _implies(c, r) for c in cand) for r in ref)


def seccomp_weaker(candidate: Profile, reference: Profile, arch: str) -> list[str]:
    """Reasons the candidate's seccomp filter allows more than the reference's.

    A candidate rule is covered when the reference allows the syscall always, or
    has a rule whose argument conditions the candidate's imply (conservative:
    when in doubt, the candidate is reported as weaker).
    """
    if reference.seccomp is None:
        return []
    if candidate.seccomp is None:
        return ["seccomp: unconfined, where the reference filters syscalls"]
    candidate_oci = candidate.seccomp.to_oci(arch, candidate.capabilities)
    cand, cand_default = _allows(candidate_oci)
    ref, ref_default = _allows(reference.seccomp.to_oci(arch, reference.capabilities))
    if cand_default not in DENY_ACTIONS and ref_default in DENY_ACTIONS:
        return [f"seccomp: default action {cand_default}, where the reference denies"]
    extra = sorted(name for name, rules in cand.items()
                   if not all(any(_covered(r, rr) for rr in ref.get(name, [])) for r in rules))
    if extra:
        shown = ", ".join(extra[:8]) + (f" (+{len(extra) - 8} more)" if len(extra) > 8 else "")
        actions = sorted({e["action"] for e in candidate_oci["syscalls"]
                          if e["action"] not in DENY_ACTIONS and set(e["names"]) & set(extra)})
        return [f"seccomp: allows {shown} ({', '.join(actions)}), which the reference does not"]
    return []


def _real(source: str, home: Path | None) -> Path | None:
    """The real path an allowed bind source stands for (``~`` = ``home``), symlinks and
    ``..`` resolved as the runner resolves them; None for ``~`` without a home."""
    if source == "~" or source.startswith("~/"):
        if home is None:
            return None
        source = str(home) + source[1:]
    return Path(os.path.realpath(source))


def _wider_sources(candidate: Profile, reference: Profile, home: Path | None) -> list[str]:
    """The candidate's bind sources that are not inside one of the reference's, compared
    as real paths: ``~/../..`` or a link to ``/`` is what it leads to, not what it says."""
    bases = [b for b in (_real(r, home) for r in reference.allowed_bind_sources)
             if b is not None]
    out = []
    for s in candidate.allowed_bind_sources:
        real = _real(s, home)
        if real is not None and not any(real == b or b in real.parents for b in bases):
            out.append(s if str(real) == s else f"{s} (= {real})")
    return out


def weaker(candidate: Profile, reference: Profile, arch: str = "amd64",
           user: str | None = None) -> list[str]:
    """Each way ``candidate`` is weaker than ``reference`` (empty: at least as strict).

    ``user`` (default: the invoking user) is whose home ``~`` in bind sources means.
    """
    from secpod.policies.profile import home_of

    out: list[str] = []
    extra_caps = [c for c in candidate.capabilities if c not in reference.capabilities]
    if extra_caps:
        out.append("capabilities: adds " + ", ".join(extra_caps))
    out += seccomp_weaker(candidate, reference, arch)
    if reference.no_new_privileges and not candidate.no_new_privileges:
        out.append("noNewPrivileges: off")
    if reference.read_only_root and not candidate.read_only_root:
        out.append("root filesystem: writable")
    for attr, what in (("masked_paths", "masked path"), ("readonly_paths", "read-only path")):
        missing = [p for p in getattr(reference, attr) if p not in getattr(candidate, attr)]
        if missing:
            out.append(f"{what}s: drops " + ", ".join(missing))
    dropped = [n for n in reference.namespaces if n not in candidate.namespaces]
    if dropped:
        out.append("namespaces: shares the host's " + ", ".join(dropped))
    if reference.network != "host" and candidate.network == "host":
        out.append("network: the host's network namespace")
    cand_rl = {n: h for n, _, h in candidate.rlimits}
    for name, _, hard in reference.rlimits:
        if name not in cand_rl:
            out.append(f"rlimit {name}: not set (reference: {hard})")
        elif cand_rl[name] > hard:
            out.append(f"rlimit {name}: {cand_rl[name]} (reference: {hard})")
    for attr, what in (("pids_limit", "pids limit"), ("memory_limit", "memory limit"),
                       ("cpu_shares", "cpu shares")):
        ref_v, cand_v = getattr(reference, attr), getattr(candidate, attr)
        if ref_v is not None and (cand_v is None or cand_v > ref_v):
            out.append(f"{what}: {cand_v if cand_v is not None else 'none'} (reference: {ref_v})")
    for attr, what in (("limits_enforce", "limits enforcement"),
                       ("selinux_enforce", "SELinux enforcement"),
                       ("apparmor_enforce", "AppArmor enforcement")):
        ref_e, cand_e = getattr(reference, attr), getattr(candidate, attr)
        if _ENFORCE_RANK[cand_e] < _ENFORCE_RANK[ref_e]:
            out.append(f"{what}: {cand_e} (reference: {ref_e})")
    if reference.selinux_enforce != "off" and candidate.selinux_type in _UNCONFINED_TYPES:
        out.append(f"SELinux type: {candidate.selinux_type} is unconfined")
    if reference.apparmor_enforce != "off" and candidate.apparmor_profile == "unconfined":
        out.append("AppArmor profile: unconfined")
    ref_tmpfs = {t.path: t.size for t in reference.tmpfs}
    for t in candidate.tmpfs:
        if t.path in ref_tmpfs and t.size > ref_tmpfs[t.path]:
            out.append(f"tmpfs {t.path}: size {t.size} (reference: {ref_tmpfs[t.path]})")
    from secpod.policies.profile import VOLUME_MODES

    if VOLUME_MODES.index(candidate.volumes) < VOLUME_MODES.index(reference.volumes):
        out.append(f"named volumes: {candidate.volumes} (reference: {reference.volumes})")
    if candidate.tmpfs_size > reference.tmpfs_size:
        out.append(f"tmpfs default size: {candidate.tmpfs_size} "
                   f"(reference: {reference.tmpfs_size})")
    wider = _wider_sources(candidate, reference, home_of(user))
    if wider:
        out.append("bind-mount sources: also " + ", ".join(wider))
    devices = [d for d in candidate.devices if d not in reference.devices]
    if devices:
        out.append("devices: adds " + ", ".join(devices))
    ref_sysctl = dict(reference.sysctls)
    sysctls = [f"{k}={v}" for k, v in candidate.sysctls if ref_sysctl.get(k) != v]
    if sysctls:
        out.append("sysctls: sets " + ", ".join(sysctls))
    if reference.require_signed and not candidate.require_signed:
        out.append("trust: unsigned images accepted")
    return out


def diff(a: Profile, b: Profile) -> list[tuple[str, Any, Any]]:
    """(setting, value in a, value in b) for every effective setting that differs."""
    sa, sb = a.settings(), b.settings()
    out: list[tuple[str, Any, Any]] = []

    def walk(prefix: str, x: Any, y: Any) -> None:
        if isinstance(x, dict) and isinstance(y, dict):
            for k in sorted(set(x) | set(y)):
                walk(f"{prefix}.{k}" if prefix else k, x.get(k), y.get(k))
        elif x != y:
            out.append((prefix, x, y))

    for key in sorted(set(sa) | set(sb)):
        if key in ("name", "source"):
            continue
        walk(key, sa.get(key), sb.get(key))
    return out
