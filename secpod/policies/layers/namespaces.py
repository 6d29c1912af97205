"""The namespaces layer: the namespaces the container gets of its own (user always, by
the bundle; network unless it shares the host's), and the namespaced sysctls."""

from __future__ import annotations

from secpod.errors import ProfileError, UsageError
from secpod.policies.layers import Fragment

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

    from secpod.policies.profile import Profile
    from secpod.sandbox.host import HostFeatures
    from secpod.spec import ContainerSpec

_NETWORKS = (None, "none", "loopback", "host")


def network_of(prof: Profile, spec: ContainerSpec) -> str:
    """``"host"`` or ``"none"`` (an own network namespace with loopback only): the run's
    ``--network``, else the profile's ``[network] mode``. Raises UsageError."""
    if spec.network not in _NETWORKS:
        raise UsageError(f"unsupported --network {spec.network!r}",
                         hint="use --network none (loopback only) or --network host")
    network = prof.network if spec.network is None else spec.network
    return "host" if network == "host" else "none"


def generate(prof: Profile, spec: ContainerSpec, host: HostFeatures) -> Fragment:
    """``linux.namespaces`` (without user, which the bundle adds first) and ``linux.sysctl``.

    Raises UsageError (an unknown network) and ProfileError (net.* sysctls on the host's
    network)."""
    network = network_of(prof, spec)
    namespaces = [{"type": n} for n in prof.namespaces]
    if network != "host":
        namespaces.insert(1, {"type": "network"})
    linux: dict[str, Any] = {"namespaces": namespaces}
    if prof.sysctls:
        if network == "host" and any(k.startswith("net.") for k, _ in prof.sysctls):
            raise ProfileError(f"profile {prof.name}: net.* sysctls need the container's own "
                               "network namespace, not the host's")
        linux["sysctl"] = dict(prof.sysctls)
    return Fragment(linux=linux, summary={
        "namespaces": ["user", *(n["type"] for n in namespaces)],
        "network": "host" if network == "host" else "loopback"})
