"""One generator per hardening layer: a resolved profile, a spec and the host in, a
:class:`Fragment` of OCI settings out.

Each module is named after the layer it owns (as youki's ``libcontainer`` names its
own) and has one function, ``generate(prof, spec, host, ...)``:

- :mod:`.capabilities`: the capability sets, noNewPrivileges;
- :mod:`.seccomp`: the filter, resolved for the host's architecture and the container's
  capabilities and checked with libseccomp (its compile report cached per user);
- :mod:`.selinux`: the process label, its MCS level, the mountLabel;
- :mod:`.apparmor`: the AppArmor profile;
- :mod:`.namespaces`: the namespaces, the network choice, sysctls;
- :mod:`.mounts`: the root's read-only flag, the profile's tmpfs, devices, masked and
  read-only paths, the user's bind mounts and tmpfs;
- :mod:`.resources`: rlimits, and the cgroup limits of profile and request merged.

A generator sees the request as the floor already judged it (:func:`secpod.policies.
confine` calls the floor first) and never consults the floor itself. What the host
cannot enforce, a generator refuses (HostError, for a ``required`` setting) or names in
its fragment's ``unenforced`` (``if-available``): never dropped silently.
"""

from __future__ import annotations

from secpod._record import field, record

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

    from secpod.policies.seccomp import SeccompReport


# eq=False: fragments are never compared; spares the generated __eq__ and __hash__
# that every start-up would compile.
@record(frozen=True, eq=False)
class Fragment:
    """What one layer adds to a container's OCI config and to its confinement summary."""

    process: dict[str, Any] = field(default_factory=dict)   # keys of the OCI ``process``
    linux: dict[str, Any] = field(default_factory=dict)     # keys of the OCI ``linux``
    mounts: tuple[dict[str, Any], ...] = ()                 # OCI ``mounts`` entries, in order
    root_readonly: bool | None = None                       # ``root.readonly``; None: not said
    unenforced: tuple[str, ...] = ()                        # "SETTING: why", one a line
    summary: dict[str, Any] = field(default_factory=dict)   # keys of the summary
    seccomp_report: SeccompReport | None = None             # the seccomp layer's compile


__all__ = ["Fragment"]
