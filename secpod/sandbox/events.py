"""The audit records of container actions: one shape for every record of a container,
and one for a refused ``run``/``create`` (which has no container yet)."""

from __future__ import annotations

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

    from secpod.errors import Error
    from secpod.sandbox.state import Container
    from secpod.spec import ContainerSpec


def network_of(ctr: Container) -> dict[str, Any]:
    """What every record of a container says of its network: the mode, the ports
    published (host ports as bound) and the egress rules: pasta's allow list, else
    ``["any"]`` for pasta without one, ``[]`` for the other modes (no route out)."""
    return {"mode": ctr.network_mode, "ports": list(ctr.ports),
            "egress": (list(ctr.egress) or ["any"]) if ctr.network_mode == "pasta" else []}


def refused(stage: str, e: Error, spec: ContainerSpec, **fields: Any) -> None:
    """Record a refusal of ``run``/``create`` at ``stage``; the caller re-raises."""
    asked: dict[str, Any] = {"mode": spec.network, "ports": [
        f"{p.host_ip}:{p.host_port}:{p.container_port}/{p.protocol}" for p in spec.ports]}
    if spec.network_options.publish_all:
        asked["publish_all"] = True
    from secpod import audit  # when a record is made: ps, inspect and logs make none

    audit.record(
        "container.run.refused",
        "refused",
        reason=f"{stage}: {e.message}",
        profile=spec.profile,
        image_ref=fields.get("image_ref", spec.image),
        image_digest=fields.get("image_digest"),
        trust=fields.get("trust"),
        container_name=spec.name,
        details={"network": asked},
    )


def container(action: str, ctr: Container, outcome: str = "ok", **kw: Any) -> None:
    """Record ``action`` on ``ctr``. Every record of a container names the bundle it was
    made with (the create record that reaches the host collector keeps the digest out
    of the user's reach) and the runtime that runs it."""
    kw["details"] = {"config_digest": ctr.config_digest, "runtime": ctr.runtime,
                     "network": network_of(ctr), **(kw.get("details") or {})}
    from secpod import audit  # when a record is made: ps, inspect and logs make none

    audit.record(
        action,
        outcome,
        container_id=ctr.id,
        container_name=ctr.name,
        image_ref=ctr.image_ref,
        image_digest=ctr.image_digest,
        profile=ctr.profile,
        profile_hash=ctr.profile_hash,
        **kw,
    )


def sweep_half_made() -> None:
    """Remove, and record, containers a killed ``run`` or ``create`` left half-made
    (docs/runner.md, "What a signal to run leaves behind")."""
    from secpod.sandbox import state

    for cid, name in state.sweep_half_made():
        from secpod import audit

        audit.record("container.create.abandoned", "ok", container_id=cid,
                     container_name=name or None,
                     reason="its maker ended before the container was made; removed")
