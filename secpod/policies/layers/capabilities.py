"""The capabilities layer: bounding = effective = permitted, none inheritable or ambient;
and noNewPrivileges, which decides whether a setuid binary may raise them."""

from __future__ import annotations

from secpod.policies import capabilities as caps_mod
from secpod.policies.layers import Fragment

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from secpod.policies.profile import Profile
    from secpod.sandbox.host import HostFeatures
    from secpod.spec import ContainerSpec


def effective(prof: Profile, spec: ContainerSpec) -> tuple[str, ...]:
    """The profile's capabilities with ``--cap-add``/``--cap-drop`` applied, kernel order.

    Raises UsageError for an unknown name."""
    return caps_mod.apply(prof.capabilities, spec.security.cap_add, spec.security.cap_drop)


def generate(prof: Profile, spec: ContainerSpec, host: HostFeatures) -> Fragment:
    """``process.capabilities`` and ``process.noNewPrivileges``. Raises UsageError."""
    caps = list(effective(prof, spec))
    nnp = spec.security.no_new_privileges
    nnp = prof.no_new_privileges if nnp is None else nnp
    return Fragment(
        process={"capabilities": {"bounding": caps, "effective": caps, "permitted": caps,
                                  "inheritable": [], "ambient": []},
                 "noNewPrivileges": nnp},
        summary={"caps": caps, "no_new_privileges": nnp},
    )
