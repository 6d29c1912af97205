"""Append-only JSON Lines log of audit records, one per user."""

from __future__ import annotations

import fcntl
import json
import os
import pwd
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from secpod import paths
from secpod.errors import AuditError


def log_path() -> Path:
    return paths.data_dir() / "audit" / "log.jsonl"


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def record(
    action: str,
    outcome: str,
    *,
    reason: str | None = None,
    container_id: str | None = None,
    container_name: str | None = None,
    image_ref: str | None = None,
    image_digest: str | None = None,
    profile: str | None = None,
    profile_hash: str | None = None,
    confinement: dict[str, Any] | None = None,
    trust: dict[str, Any] | None = None,
    exit_status: int | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Append one record durably (fsync) and return it.

    ``outcome`` is ``"ok"``, ``"refused"`` or ``"error"``.
    Raises AuditError if the record cannot be written: the caller must then
    not report the action as done.
    """
    uid = os.getuid()
    rec: dict[str, Any] = {
        "time": datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "host": socket.gethostname(),
        "uid": uid,
        "user": _user_name(uid),
        "action": action,
        "outcome": outcome,
        "reason": reason,
        "container": {"id": container_id, "name": container_name},
        "image": {"ref": image_ref, "digest": image_digest},
        "profile": profile,
        "profile_hash": profile_hash,
        "confinement": confinement,
        "trust": trust,
        "exit_status": exit_status,
    }
    if details:
        rec["details"] = details
    path = log_path()
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        line = (json.dumps(rec, sort_keys=True, separators=(",", ":")) + "\n").encode()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as e:
        raise AuditError(
            f"cannot write the audit log {path}: {e.strerror}",
            hint="secpod does not act without an audit record; fix the log's directory",
        ) from e
    return rec
