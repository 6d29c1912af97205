"""The namespaces layer: the namespaces the container gets of its own (user always, by
the bundle; network unless it shares the host's), and the namespaced sysctls."""

from __future__ import annotations

from secpod.errors import NetworkRequestError, ProfileError, Refused
from secpod.policies.layers import Fragment

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

    from secpod.policies.profile import Profile
    from secpod.sandbox.host import HostFeatures
    from secpod.spec import ContainerSpec, PortMapping

# The wildcard addresses: in a list of allowed bind addresses, they allow any.
ANY_ADDRESS = ("0.0.0.0", "::")  # noqa: S104 - compared against, never bound here
_NETWORKS = (None, "none", "loopback", "private", "pasta", "host")


def network_of(prof: Profile, spec: ContainerSpec) -> str:
    """``"host"`` or ``"none"`` (an own network namespace with loopback only): the run's
    ``--network``, else the profile's ``[network] mode``. Raises UsageError."""
    return "host" if network_mode(prof, spec) == "host" else "none"


def network_mode(prof: Profile, spec: ContainerSpec) -> str:
    """The run's network mode: ``none``, ``private``, ``pasta`` or ``host`` (the run's
    ``--network``, else the profile's ``[network] mode``). Raises UsageError."""
    if spec.network not in _NETWORKS:
        raise NetworkRequestError(f"unsupported --network {spec.network!r}",
                         hint="use --network none, private, pasta or host "
                              "(docs/networking.md)")
    mode = prof.network if spec.network is None else spec.network
    return "private" if mode == "loopback" else mode


def check_network(prof: Profile, spec: ContainerSpec) -> str:
    """Refuse what the profile's ``[network]`` does not allow and what the mode cannot
    give; return the mode. Raises UsageError, Refused and HostError (no pasta)."""
    mode = network_mode(prof, spec)
    opts = spec.network_options
    if spec.network is not None and mode not in prof.network_modes:
        raise Refused(f"profile {prof.name} does not allow --network {mode}",
                      hint="its [network] modes are " + ", ".join(prof.network_modes)
                      + ("; the default private network publishes ports with -p"
                         if mode == "host" else ""))
    publishing = bool(spec.ports) or opts.publish_all
    if publishing and mode in ("none", "host"):
        raise NetworkRequestError(f"-p/-P cannot publish ports with --network {mode}",
                         hint="--network none publishes nothing, and on the host's network "
                              "the server binds its own ports; use --network private")
    if opts.dns and mode != "pasta":
        raise NetworkRequestError(f"--dns needs --network pasta ({mode} has no route to a name "
                         "server)", hint="add --network pasta, or leave out --dns")
    if mode == "pasta":
        from secpod.network.pasta import check_available

        check_available()
    if publishing and not prof.publish:
        raise Refused(f"profile {prof.name} does not allow published ports (-p/-P)",
                      hint="its [network] publish is false; use another profile")
    for p in spec.ports:
        check_port_allowed(prof.name, "profile", prof.bind_addresses, prof.port_ranges, p)
    return mode


def check_port_allowed(owner: str, kind: str, addresses: tuple[str, ...],
                       ranges: tuple[tuple[int, int], ...], p: PortMapping) -> None:
    """Refuse a mapping whose host address or port ``owner`` (a profile, the floor) does
    not allow ("0.0.0.0" and "::" in ``addresses`` allow any). Raises Refused."""
    if p.host_ip not in addresses and not (set(ANY_ADDRESS) & set(addresses)):
        raise Refused(f"{kind} {owner} does not allow publishing on {p.host_ip} "
                      f"(-p {p.host_ip}:{p.host_port or ''}:{p})",
                      hint="allowed host addresses: " + ", ".join(addresses))
    if p.host_port and not any(lo <= p.host_port <= hi for lo, hi in ranges):
        raise Refused(f"{kind} {owner} does not allow the host port {p.host_port}",
                      hint="allowed host ports: "
                      + ", ".join(f"{lo}-{hi}" if lo != hi else str(lo) for lo, hi in ranges))


def generate(prof: Profile, spec: ContainerSpec, host: HostFeatures) -> Fragment:
    """``linux.namespaces`` (without user, which the bundle adds first) and ``linux.sysctl``.

    Raises UsageError (an unknown network) and ProfileError (net.* sysctls on the host's
    network)."""
    mode = check_network(prof, spec)
    network = "host" if mode == "host" else "none"
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
        "network": {"host": "host", "pasta": "pasta"}.get(mode, "loopback"),
        "network_mode": mode,
        **({"egress": list(prof.egress)} if mode == "pasta" and prof.egress else {})})
