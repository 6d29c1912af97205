"""The resources layer: rlimits, and the cgroup limits (pids, memory, cpu shares).

A run's request (``--pids-limit``, ``-m``, ``--cpu-shares``) replaces the profile's
value: a tighter one simply applies, a looser one is a weakening that the floor judged
before this layer runs. Where this host cannot enforce cgroup limits (no cgroup v2
delegated to the user), a profile whose ``[limits] enforce`` is ``required`` refuses;
otherwise each limit is recorded as unenforced.
"""

from __future__ import annotations

from secpod.errors import HostError
from secpod.policies import profile as profile_mod
from secpod.policies.layers import Fragment

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

    from secpod.policies.profile import Profile
    from secpod.sandbox.host import HostFeatures
    from secpod.spec import ContainerSpec

_RLIMIT_NAMES = {n: f"RLIMIT_{n.upper()}" for n in profile_mod.RLIMITS}


def limits(prof: Profile, spec: ContainerSpec) -> tuple[int | None, int | None, int | None]:
    """(pids, memory bytes, cpu shares) the run gets: the request where it gives one,
    else the profile's (None: no limit)."""
    req = spec.resources
    return (prof.pids_limit if req.pids_limit is None else req.pids_limit,
            prof.memory_limit if req.memory is None else req.memory,
            prof.cpu_shares if req.cpu_shares is None else req.cpu_shares)


def generate(prof: Profile, spec: ContainerSpec, host: HostFeatures) -> Fragment:
    """``process.rlimits``, and ``linux.resources`` where the host can enforce it.

    Raises HostError when a ``required`` limit cannot be enforced here."""
    pids, memory, shares = limits(prof, spec)
    rlimits = run_rlimits(prof, spec)
    process = {"rlimits": [{"type": _RLIMIT_NAMES[n], "soft": s, "hard": h}
                           for n, s, h in rlimits]}
    summary: dict[str, Any] = {"rlimits": {n: [s, h] for n, s, h in rlimits},
                               "limits": {"pids": pids, "memory": memory, "cpu_shares": shares}}
    req = spec.resources
    res: dict[str, Any] = {}
    said = []
    if pids is not None:
        res["pids"] = {"limit": pids}
        said.append(f"pids limit {pids}")
    if memory is not None:
        res["memory"] = {"limit": memory}
        said.append(f"memory limit {memory} bytes")
    if shares is not None:
        res["cpu"] = {"shares": shares}
        said.append(f"cpu shares {shares}")
    if req.memory_swap is not None:
        res.setdefault("memory", {})["swap"] = req.memory_swap
        summary["limits"]["memory_swap"] = req.memory_swap
        said.append(f"memory+swap limit {req.memory_swap} bytes" if req.memory_swap >= 0
                    else "memory+swap unlimited")
    if req.cpus is not None:
        period = 100_000
        res.setdefault("cpu", {}).update(quota=round(req.cpus * period), period=period)
        summary["limits"]["cpus"] = req.cpus
        said.append(f"cpus {req.cpus:g}")
    if not res:
        return Fragment(process=process, summary=summary)
    if host.can_limit_resources:
        return Fragment(process=process, linux={"resources": res}, summary=summary)
    why = _no_limits_reason(host)
    if prof.limits_enforce == "required":
        raise HostError(
            f"profile {prof.name} requires {', '.join(said)}, and this host cannot enforce "
            f"them: {why}",
            hint="use a profile whose [limits] enforce is \"if-available\", or a host "
                 "with cgroup v2 delegated to the user (systemd user session)")
    return Fragment(process=process, summary=summary,
                    unenforced=tuple(f"{d}: {why}" for d in said))


def run_rlimits(prof: Profile, spec: ContainerSpec) -> list[tuple[str, int, int]]:
    """The profile's rlimits with the run's --ulimit values in place of the same names
    (a hard limit above the profile's is a weakening the floor judged)."""
    asked = {n: (s, h) for n, s, h in spec.resources.ulimits}
    out = [(n, *asked.pop(n, (s, h))) for n, s, h in prof.rlimits]
    return out + [(n, s, h) for n, (s, h) in sorted(asked.items())]


def _no_limits_reason(host: HostFeatures) -> str:
    mode = host.cgroup_mode.value
    if mode == "hybrid":
        return "cgroups are in hybrid mode, rootless limits are not enforced"
    if mode in ("v1", "none"):
        return f"cgroups are {mode}, rootless limits are not enforced"
    if host.cgroup_delegated:
        return (f"the user's cgroup offers no {', '.join(host.missing_controllers)} "
                "controller, rootless limits are not enforced")
    return "no cgroup is delegated to this user"
