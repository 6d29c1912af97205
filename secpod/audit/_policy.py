"""What the administrator's policy says about the audit collector.

The policies area owns ``/etc/secpod``: when ``secpod.policies.load_admin_policy``
exists it is the one reader (``.audit_collector: Path | None``,
``.audit_required: bool``). Until then this module reads the same place
itself: ``/etc/secpod/policy.toml``, table ``[audit]``, keys ``collector``
(socket path) and ``required`` (bool), refusing a file a non-root user could
have written.
"""

from __future__ import annotations

import os
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path

from secpod import paths
from secpod.errors import AuditError, Error

DEFAULT_SOCKET = Path("/run/secpod/audit.sock")
DEFAULT_HOST_DIR = Path("/var/lib/secpod/audit")


@dataclass(frozen=True)
class CollectorPolicy:
    """Where records must also go, and whether acting without the collector is refused."""

    socket: Path | None
    required: bool


def collector_policy() -> CollectorPolicy:
    """The collector the administrator names, if any.

    Raises AuditError (or the policies area's Error) if the administrator's
    policy cannot be read or is unsafe.
    """
    try:
        from secpod.policies import load_admin_policy
    except ImportError:
        return read_policy_file(paths.ADMIN_DIR / "policy.toml")
    pol = load_admin_policy()
    sock = getattr(pol, "audit_collector", None)
    return CollectorPolicy(socket=Path(sock) if sock else None,
                           required=bool(getattr(pol, "audit_required", False)))


def _check_admin_owned(path: Path, st: os.stat_result) -> None:
    if st.st_uid != 0 or st.st_mode & 0o022:
        raise AuditError(
            f"{path} can be changed by a user other than root",
            hint=f"chown root:root {path} && chmod go-w {path}")


def read_policy_file(path: Path) -> CollectorPolicy:
    """Read the ``[audit]`` table of the administrator's ``policy.toml`` at ``path``.

    A missing file names no collector. Raises AuditError if the file or its
    folder is writable by someone other than root, or is malformed.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        return CollectorPolicy(socket=None, required=False)
    except OSError as e:
        raise AuditError(f"cannot read the administrator's policy {path}: {e.strerror}") from e
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise AuditError(f"{path} is not a regular file")
        _check_admin_owned(path, st)
        _check_admin_owned(path.parent, os.stat(path.parent))
        with os.fdopen(os.dup(fd), "rb") as f:
            data = tomllib.load(f)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise AuditError(f"the administrator's policy {path} is not valid TOML: {e}") from e
    finally:
        os.close(fd)
    audit = data.get("audit", {})
    if not isinstance(audit, dict):
        raise AuditError(f"{path}: [audit] must be a table")
    sock = audit.get("collector")
    required = audit.get("required", False)
    if sock is not None and (not isinstance(sock, str) or not os.path.isabs(sock)):
        raise AuditError(f"{path}: audit.collector must be an absolute socket path")
    if not isinstance(required, bool):
        raise AuditError(f"{path}: audit.required must be true or false")
    return CollectorPolicy(socket=Path(sock) if sock else None, required=required)


_cache: tuple[tuple[int, int, int, int] | None, CollectorPolicy] | None = None


def _stamp(path: Path) -> tuple[int, int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def safe_collector_policy() -> tuple[CollectorPolicy | None, Error | None]:
    """The collector policy, or the error that kept it from being read.

    Cached while the policy file is unchanged (same inode, size, mtime and
    ctime): a long-running process calls this for every record.
    """
    global _cache
    stamp = _stamp(paths.ADMIN_DIR / "policy.toml")
    if _cache is not None and _cache[0] == stamp:
        return _cache[1], None
    try:
        pol = collector_policy()
    except Error as e:
        _cache = None
        return None, e
    _cache = (stamp, pol)
    return pol, None
