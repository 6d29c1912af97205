"""Confinement as data: profiles, capabilities, seccomp, LSM settings, the admin floor.

The runner calls :func:`confine` with a :class:`RunRequest` and the host's
features, and gets a :class:`Confinement`: OCI fragments to put into the
bundle's ``config.json``, and a summary for the audit record.
"""

from __future__ import annotations

from secpod.policies.confine import Confinement, RunRequest, confine
from secpod.policies.profile import Profile, available, load, load_file
from secpod.policies.seccomp import SeccompProfile, SeccompReport, compile_oci

__all__ = [
    "Confinement",
    "Profile",
    "RunRequest",
    "SeccompProfile",
    "SeccompReport",
    "available",
    "compile_oci",
    "confine",
    "load",
    "load_file",
]
