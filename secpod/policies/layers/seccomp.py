"""The seccomp layer: the profile's filter (or the run's ``--security-opt seccomp=``),
resolved for the host's architecture and the container's capabilities, and checked by a
libseccomp compile whose report is cached (docs/policies-cache.md)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from secpod.errors import HostError
from secpod.policies import profile as profile_mod
from secpod.policies import seccomp as seccomp_mod
from secpod.policies.layers import Fragment
from secpod.policies.layers.capabilities import effective

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

    from secpod.policies.profile import Profile
    from secpod.sandbox.host import HostFeatures
    from secpod.spec import ContainerSpec


def generate(prof: Profile, spec: ContainerSpec, host: HostFeatures) -> Fragment:
    """``linux.seccomp`` (absent when unconfined) and the summary's ``seccomp``.

    Raises ProfileError (a malformed seccomp file, or one libseccomp rejects) and
    HostError (a filter on a kernel without seccomp)."""
    filt, source = prof.seccomp, prof.seccomp_source
    asked = spec.security.seccomp
    if asked == "unconfined":
        filt, source = None, "unconfined"
    elif asked is not None:
        filt, source = seccomp_mod.load(Path(asked)), asked
    summary: dict[str, Any] = {
        "enabled": False, "source": "unconfined", "rules": 0, "bpf_instructions": 0,
        "default": None, "unresolved": []}
    if filt is None:
        return Fragment(summary={"seccomp": summary})
    if not host.seccomp:
        raise HostError("this kernel has no seccomp, which the profile needs",
                        hint="run on a kernel built with CONFIG_SECCOMP_FILTER")
    oci = filt.to_oci(host.arch, effective(prof, spec))
    report = compile_cached(oci, source)
    summary.update(enabled=True, source=os.path.basename(source), rules=report.rules,
                   bpf_instructions=report.bpf_instructions, default=oci["defaultAction"],
                   unresolved=list(report.unresolved))
    return Fragment(linux={"seccomp": oci}, summary={"seccomp": summary},
                    seccomp_report=report)


_REPORTS: dict[str, seccomp_mod.SeccompReport] = {}
# Bump when compile_oci counts differently: old entries then no longer match.
_REPORT_CACHE_FORMAT = "seccomp-report/1"


def compile_cached(oci: dict[str, Any], source: str) -> seccomp_mod.SeccompReport:
    """:func:`seccomp.compile_oci`, remembered per process and in the user's cache.

    The compile is a pure function of the OCI JSON and the libseccomp version (3-30 ms
    on every run otherwise). A cached report only says what an identical compile said
    before (libseccomp accepted it, and its BPF length); crun compiles the filter
    itself, so a wrong entry cannot loosen it.
    """
    digest = hashlib.sha256(profile_mod.canonical_json(oci).encode()).hexdigest()
    if digest in _REPORTS:
        return _REPORTS[digest]
    from secpod.policies import _cache

    version = seccomp_mod.libseccomp_version()
    key = hashlib.sha256(f"{_REPORT_CACHE_FORMAT}\0{version}\0{digest}".encode()).hexdigest()
    report = None
    if version != "unknown":
        report = _report_from_cache(_cache.get("seccomp-report", key), oci, version)
    if report is None:
        report = seccomp_mod.compile_oci(oci, source)
        if version != "unknown":
            _cache.put("seccomp-report", key, report.as_dict())
    _REPORTS[digest] = report
    return report


def _report_from_cache(value: Any, oci: dict[str, Any],
                       version: str) -> seccomp_mod.SeccompReport | None:
    """A cached report if it is well formed and fits ``oci``; else None (compile again).

    The rule count and the unresolved names are recounted (libseccomp's name lookup,
    well under a millisecond) and must agree; only the BPF length is taken on trust.
    """
    if not isinstance(value, dict):
        return None
    bpf = value.get("bpf_instructions")
    if (not isinstance(bpf, int) or isinstance(bpf, bool) or bpf <= 0
            or value.get("architectures") != list(oci.get("architectures") or ())
            or value.get("libseccomp") != version):
        return None
    rules, unresolved = seccomp_mod.resolution(oci)
    if value.get("rules") != rules or value.get("unresolved") != list(unresolved):
        return None
    return seccomp_mod.SeccompReport(rules=rules, bpf_instructions=bpf,
                                     architectures=tuple(oci.get("architectures") or ()),
                                     unresolved=unresolved, libseccomp=version)
