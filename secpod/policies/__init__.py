"""Confinement as data: profiles, capabilities, seccomp, LSM settings, the admin floor.

The runner calls :func:`confine` with a :class:`~secpod.spec.ContainerSpec` and the
host's features, and gets a :class:`Confinement`: OCI fragments to put into the
bundle's ``config.json``, and a summary for the audit record. One generator per
hardening layer (:mod:`secpod.policies.layers`) makes the fragments.
"""

from __future__ import annotations

from secpod._lazy import reexports

# confine is eager: the function must shadow the submodule of the same name.
from secpod.policies.confine import Confinement, confine
from secpod.policies.profile import Profile, available, load, load_file
from secpod.policies.seccomp import SeccompProfile, SeccompReport, compile_oci

# Lazy: the floor and lint load when something asks for them (PEP 562).
_LAZY = {
    "AdminPolicy": "floor", "FloorRule": "floor", "load_admin_policy": "floor",
    "Finding": "lint", "lint_config": "lint", "lint_profile": "lint",
}

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from secpod.policies.floor import AdminPolicy, FloorRule, load_admin_policy
    from secpod.policies.lint import Finding, lint_config, lint_profile


__getattr__ = reexports(__name__, {n: f"secpod.policies.{m}" for n, m in _LAZY.items()})
__all__ = [
    "AdminPolicy",
    "Confinement",
    "Finding",
    "FloorRule",
    "Profile",
    "SeccompProfile",
    "SeccompReport",
    "available",
    "compile_oci",
    "confine",
    "lint_config",
    "lint_profile",
    "load",
    "load_admin_policy",
    "load_file",
]
