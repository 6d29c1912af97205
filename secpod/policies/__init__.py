"""Confinement as data: profiles, capabilities, seccomp, LSM settings, the admin floor.

The runner calls :func:`confine` with a :class:`RunRequest` and the host's
features, and gets a :class:`Confinement`: OCI fragments to put into the
bundle's ``config.json``, and a summary for the audit record.
"""

from __future__ import annotations

from secpod.policies.confine import Confinement, RunRequest, confine
from secpod.policies.floor import AdminPolicy, FloorRule, load_admin_policy
from secpod.policies.lint import Finding, lint_config, lint_profile
from secpod.policies.profile import Profile, available, load, load_file
from secpod.policies.seccomp import SeccompProfile, SeccompReport, compile_oci

__all__ = [
    "AdminPolicy",
    "Confinement",
    "Finding",
    "FloorRule",
    "Profile",
    "RunRequest",
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
