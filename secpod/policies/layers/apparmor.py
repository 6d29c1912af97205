"""The AppArmor layer: the profile the container's processes run under, where the
kernel has AppArmor and that profile is loaded (``secpod system install-apparmor``)."""

from __future__ import annotations

from secpod.errors import HostError
from secpod.policies.layers import Fragment

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from secpod.policies.profile import Profile
    from secpod.sandbox.host import HostFeatures
    from secpod.spec import ContainerSpec


def generate(prof: Profile, spec: ContainerSpec, host: HostFeatures) -> Fragment:
    """``process.apparmorProfile``: the run's ``--security-opt apparmor=NAME``, else the
    profile's.

    Where it cannot be applied, a ``required`` profile or a name the run asked for raises
    HostError; ``if-available`` records it as unenforced. ``enforce = "off"`` and
    ``apparmor=unconfined`` set none."""
    asked = spec.security.apparmor
    name = asked or prof.apparmor_profile
    if prof.apparmor_enforce == "off" or name == "unconfined":
        return Fragment(summary={"apparmor": None})
    if host.apparmor_enabled and name in host.apparmor_profiles:
        return Fragment(process={"apparmorProfile": name}, summary={"apparmor": name})
    why = ("AppArmor is not enabled in this kernel" if not host.apparmor_enabled
           else f"the AppArmor profile {name} is not loaded "
                "(`secpod system install-apparmor`, as root)")
    if prof.apparmor_enforce == "required" or asked is not None:
        raise HostError(f"profile {prof.name} requires the AppArmor profile {name}, and {why}",
                        hint="use a profile whose [apparmor] enforce is \"if-available\", or "
                             "load the AppArmor profile")
    return Fragment(summary={"apparmor": None}, unenforced=(f"AppArmor profile {name}: {why}",))
