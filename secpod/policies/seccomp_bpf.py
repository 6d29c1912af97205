"""The compiled seccomp filter crun loads as secpod hands it over
(``run.oci.seccomp_bpf_data``, docs/policies-cache.md).

crun compiles a container's ``linux.seccomp`` with libseccomp on every start: for a
filter over three architectures (the default profile's, as Podman's) that is 12-20 ms
of CPU. The compile is a pure function of the OCI JSON, the libseccomp version and the
machine, and secpod makes the same program with the same libseccomp
(:func:`secpod.policies.seccomp.build_filter`, byte for byte what crun makes: a test
compares the two). So secpod compiles each distinct filter once, keeps the program in
the user's store, and gives it to crun in the bundle's annotations; crun then loads it
as given and ignores the JSON. The JSON stays in the bundle, and the floor and the
record judge it; the record also names the SHA-256 of the program loaded, so a program
that is not the JSON's shows (docs/threat-model.md: the same-uid limit).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from secpod import paths
from secpod.errors import Error, HostError, ProfileError
from secpod.policies import seccomp as seccomp_mod

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

ANNOTATION = "run.oci.seccomp_bpf_data"
# Bump when the key or the program's making changes: old entries then no longer match.
_FORMAT = "seccomp-bpf/1"
MAX_BYTES = 4096 * 8          # BPF_MAXINSNS instructions of 8 bytes
KEEP = 64                     # programs kept; the oldest go when a new one is written


def folder() -> Path:
    """Where the programs are kept, beside the image store (mode 0700)."""
    return paths.data_dir() / "seccomp"


def key(oci: Mapping[str, Any], version: str) -> str:
    """The hex key of ``oci``'s program: the JSON, the libseccomp version and the kernel
    and machine (libseccomp asks the kernel which actions it supports)."""
    from secpod.policies.profile import canonical_json

    u = os.uname()
    material = "\0".join((_FORMAT, version, u.machine, u.release, canonical_json(oci)))
    return hashlib.sha256(material.encode()).hexdigest()


def compiled(oci: Mapping[str, Any]) -> bytes | None:
    """The BPF program of ``oci`` as crun would compile it: kept, or compiled now and
    kept. None where secpod does not hand one over (crun compiles the JSON then): a
    filter with a notify listener, an unknown libseccomp, no usable store, or a filter
    libseccomp rejects (crun then says why). Never raises."""
    if _has_listener(oci):
        return None
    version = seccomp_mod.libseccomp_version()
    if version == "unknown":
        return None
    try:
        where = paths.ensure_private_dir(folder())
    except (HostError, OSError):
        return None
    path = where / f"{key(oci, version)}.bpf"
    program = _read(path)
    if program is not None:
        return program
    try:
        program = _compile(oci)
    except (ProfileError, OSError, RuntimeError, ValueError):
        return None
    if not _plausible(len(program)):
        return None
    from secpod._files import write_atomic

    try:
        write_atomic(path, program, mode=0o600)
    except Error:
        return program
    _evict(where)
    return program


def _has_listener(oci: Mapping[str, Any]) -> bool:
    """crun sets up a notify listener while it loads the filter: leave those to it."""
    return bool(oci.get("listenerPath")) or oci.get("defaultAction") == "SCMP_ACT_NOTIFY" or any(
        e.get("action") == "SCMP_ACT_NOTIFY" for e in oci.get("syscalls") or ())


def _plausible(size: int) -> bool:
    return 0 < size <= MAX_BYTES and size % 8 == 0


def _read(path: Path) -> bytes | None:
    """A kept program, if it is a regular file of the user's that no one else may write,
    of a BPF program's size (no symlink followed); else None (compiled again)."""
    from secpod.policies._cache import read_own

    data = read_own(path, MAX_BYTES)
    return data if data is not None and _plausible(len(data)) else None


def _compile(oci: Mapping[str, Any]) -> bytes:
    filt, _rules, _unresolved = seccomp_mod.build_filter(oci)
    fd = os.memfd_create("secpod-seccomp", os.MFD_CLOEXEC)
    with open(fd, "w+b") as fh:
        filt.export_bpf(fh)
        fh.seek(0)
        return fh.read(MAX_BYTES + 1)


def _evict(where: Path) -> None:
    """Keep the :data:`KEEP` most recently written programs."""
    try:
        entries = [(e.stat(follow_symlinks=False).st_mtime_ns, e.path)
                   for e in os.scandir(where) if e.name.endswith(".bpf")]
    except OSError:
        return
    entries.sort()
    for _mtime, name in entries[:-KEEP]:
        try:
            os.unlink(name)
        except OSError:
            pass


def digest(program: bytes) -> str:
    return "sha256:" + hashlib.sha256(program).hexdigest()
