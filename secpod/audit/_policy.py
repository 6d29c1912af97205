"""What the administrator's policy says about the audit collector.

The policies area owns ``/etc/secpod`` and reads it
(``secpod.policies.load_admin_policy``: ``.audit_collector``,
``.audit_required``); this module only caches its answer while the file is
unchanged, because every record asks.
"""

from __future__ import annotations

import os
from pathlib import Path

from secpod import paths
from secpod._record import record
from secpod.errors import Error

DEFAULT_SOCKET = Path("/run/secpod/audit.sock")
DEFAULT_HOST_DIR = Path("/var/lib/secpod/audit")


# eq=False: instances are never compared; spares the generated __eq__ and
# __hash__ that every start-up would compile.
@record(frozen=True, eq=False)
class CollectorPolicy:
    """Where records must also go, and whether acting without the collector is refused."""

    socket: Path | None
    required: bool


def collector_policy() -> CollectorPolicy:
    """The collector the administrator names, if any (``/etc/secpod/policy.toml``, ``[audit]``).

    Raises the policies area's AdminPolicyError if the administrator's policy
    is malformed or someone other than root could have written it.
    """
    from secpod.policies import load_admin_policy

    pol = load_admin_policy()
    if pol is None:
        return CollectorPolicy(socket=None, required=False)
    return CollectorPolicy(socket=pol.audit_collector, required=pol.audit_required)


_POLICY_FILE = str(paths.ADMIN_DIR / "policy.toml")
_ADMIN_DIR = str(paths.ADMIN_DIR)
_Stamp = tuple[tuple[int, int, int, int] | None, tuple[int, int, int, int] | None]
_cache: tuple[_Stamp, CollectorPolicy] | None = None


def _stat(path: str) -> tuple[int, int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _stamp() -> _Stamp:
    # The folder too: its owner and mode decide whether the file is trusted.
    return _stat(_POLICY_FILE), _stat(_ADMIN_DIR)


def safe_collector_policy() -> tuple[CollectorPolicy | None, Error | None]:
    """The collector policy, or the error that kept it from being read.

    Cached while the policy file is unchanged (same inode, size, mtime and
    ctime): a long-running process calls this for every record.
    """
    global _cache
    stamp = _stamp()
    if _cache is not None and _cache[0] == stamp:
        return _cache[1], None
    try:
        pol = collector_policy()
    except Error as e:
        _cache = None
        return None, e
    _cache = (stamp, pol)
    return pol, None
