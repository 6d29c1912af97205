"""What ``pod ps`` lists and ``pod inspect`` shows, in Podman's shape with secpod's own
facts under ``Secpod`` (the namespaces as recorded, each member's confinement)."""

from __future__ import annotations

from secpod.pods import lifecycle, namespaces
from secpod.pods.record import Pod

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

    from secpod.sandbox.environment import Environment
    from secpod.sandbox.state import Container


def _member(ctr: Container, env: Environment) -> dict[str, Any]:
    from secpod.sandbox import operations

    conf = ctr.confinement
    return {"Id": ctr.id, "Name": ctr.name, "State": str(operations.status(ctr, env)),
            "Image": ctr.image_ref, "Profile": ctr.profile,
            "Confinement": {k: conf.get(k) for k in
                            ("caps", "no_new_privileges", "seccomp", "read_only_root",
                             "selinux", "apparmor", "namespaces") if k in conf},
            "Unenforced": list(ctr.unenforced)}


def row(pod: Pod, env: Environment) -> dict[str, Any]:
    """One line of ``pod ps`` (the keys of ``podman pod ps --format json``)."""
    members = lifecycle.members(pod)
    from secpod.sandbox import operations

    return {"Id": pod.id, "Name": pod.name, "Status": lifecycle.status(pod, env),
            "Created": pod.created, "InfraId": pod.infra_id or "",
            "Labels": dict(pod.labels), "Profile": pod.profile,
            "NumberOfContainers": len(members) + (1 if pod.infra_id else 0),
            "Containers": [{"Id": c.id, "Names": c.name,
                            "Status": str(operations.status(c, env))} for c in members]}


def inspect(pod: Pod, env: Environment) -> dict[str, Any]:
    from secpod import network

    infra = lifecycle.infra_of(pod)
    members = lifecycle.members(pod)
    ports = list(infra.ports) if infra is not None else []
    return {
        "Id": pod.id, "Name": pod.name, "Created": pod.created,
        "State": lifecycle.status(pod, env), "Hostname": pod.hostname,
        "Labels": dict(pod.labels), "CreateCommand": list(pod.create_command),
        "InfraContainerID": pod.infra_id or "",
        "SharedNamespaces": list(namespaces.shared(pod)),
        "NumContainers": len(members) + (1 if infra is not None else 0),
        "InfraConfig": {"PortBindings": _port_bindings(ports)},
        "Containers": [_member(c, env) for c in members],
        "Secpod": {
            "profile": pod.profile,
            "ports": [network.describe_port(p) for p in ports],
            "infra": None if infra is None else {
                "id": infra.id, "name": infra.name, "profile": infra.profile,
                "pid_identity": pod.infra_identity,
                "holder_pid": infra.holder_pid},
            "namespaces": {k: {"device": v[0], "inode": v[1]}
                           for k, v in pod.namespaces.items()},
        },
    }


def _port_bindings(ports: list[dict[str, Any]]) -> dict[str, list[dict[str, str]]]:
    out: dict[str, list[dict[str, str]]] = {}
    for p in ports:
        out.setdefault(f"{p['container_port']}/{p['protocol']}", []).append(
            {"HostIp": p["host_ip"], "HostPort": str(p["host_port"])})
    return out
