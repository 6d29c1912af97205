"""``record()``: the one way anything in secpod writes the audit trail.

Each user has an append-only log under ``$XDG_DATA_HOME/secpod/audit`` (see
:mod:`secpod.audit._store`). Where the administrator's policy names a
collector, the record also goes there and is on the host log's disk before
``record()`` returns.
"""

from __future__ import annotations

import os
import pwd
import sys
from pathlib import Path

from secpod import paths
from secpod.audit import _canon, _policy, _store
from secpod.errors import AuditError, CollectorError

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

OUTCOMES = ("ok", "refused", "error")

_logs: dict[tuple[str, str, int], _store.LogDir] = {}
_names: dict[int, str] = {}
_HOST = os.uname().nodename  # what gethostname() returns, without importing socket


def log_dir() -> Path:
    """The calling user's audit log directory."""
    return paths.data_dir() / "audit"


def log_path() -> Path:
    """The calling user's audit log file."""
    return log_dir() / "log.jsonl"


def _user_name(uid: int) -> str:
    name = _names.get(uid)
    if name is None:
        try:
            name = pwd.getpwuid(uid).pw_name
        except KeyError:
            name = str(uid)
        _names[uid] = name
    return name


def checkpoint_every() -> int:
    """N of "a checkpoint every N records": ``checkpoint_every`` in
    ``$XDG_CONFIG_HOME/secpod/audit.toml``, default 100.

    Raises AuditError if that file is malformed.
    """
    path = paths.config_dir() / "audit.toml"
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return _store.DEFAULT_CHECKPOINT_EVERY
    except OSError as e:
        raise AuditError(f"cannot read {path}: {e.strerror}") from e
    import tomllib  # only when there is a file: every command records

    try:
        data = tomllib.loads(raw.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise AuditError(f"cannot read {path}: {e}") from e
    n = data.get("checkpoint_every", _store.DEFAULT_CHECKPOINT_EVERY)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise AuditError(f"{path}: checkpoint_every must be a positive integer")
    return n


def user_log() -> _store.LogDir:
    """The calling user's log (one object per process and directory)."""
    env = os.environ
    where = (env.get("XDG_DATA_HOME", ""), env.get("HOME", ""), os.getuid())
    log = _logs.get(where)
    if log is None:
        name = _store.key_name(_HOST, _user_name(where[2]))
        log = _store.LogDir(log_dir(), name=name, checkpoint_every=checkpoint_every())
        _logs[where] = log
    return log


def flush() -> None:
    """Sync the records this process wrote with ``durable=False`` (see :func:`record`).
    Raises AuditError if the log cannot be synced."""
    for log in _logs.values():
        log.flush()


def _connect(outcome: str) -> tuple[Any, bool, str | None]:
    """(client or None, required, why the collector is not there)."""
    pol, err = _policy.safe_collector_policy()
    if pol is None:
        assert err is not None
        if outcome == "ok":
            raise AuditError(
                f"secpod cannot tell where audit records must go: {err.message}",
                hint=err.hint or "ask the administrator to fix /etc/secpod/policy.toml") from err
        return None, True, f"the administrator's policy cannot be read: {err.message}"
    sock = pol.socket or (_policy.DEFAULT_SOCKET if pol.required else None)
    if sock is None:
        return None, False, None
    # Only with a collector: the client pulls in socket, threading and signal.
    from secpod.audit import _collector

    try:
        return _collector.CollectorClient(sock), pol.required, None
    except CollectorError as e:
        return None, pol.required, e.message


def host_content(image_digest: str) -> tuple[bool, bool, str | None]:
    """What the host log recorded as the content of your image ``image_digest`` when it
    entered your store: (asked, required, content digest or None). ``asked`` is False
    when no collector is named or it cannot be reached (the caller's records then say
    so, or fail when it is required)."""
    client, required, _why = _connect("refused")
    if client is None:
        return False, required, None
    try:
        answer = client.request({"content": {"image": image_digest}},
                                what="the question about an image's content")
    except CollectorError:
        return False, required, None
    finally:
        client.close()
    content = answer.get("content")
    return True, required, content if isinstance(content, str) else None


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
    checkpoint: bool = False,
    durable: bool = True,
) -> dict[str, Any]:
    """Append one record durably (fdatasync) and return it (with ``seq`` and ``prev``).

    ``outcome`` is ``"ok"``, ``"refused"`` or ``"error"``. ``checkpoint=True``
    signs a checkpoint right after the record (the runner passes it when a
    container exits). Where the administrator names a collector, the record
    is also on the host log's disk before this returns.

    ``durable=False`` (group commit) writes the record but lets its sync wait for the
    next durable record, checkpoint or :func:`flush`; the caller flushes before the
    action's result is reported (the CLI flushes before it exits, whatever happens).
    With a collector every record is synced first, as before.

    Raises AuditError if the record cannot be written, or (for an ``"ok"``
    record) if the administrator's policy cannot be read; the caller must then
    not report the action as done. Raises CollectorError (an AuditError) if
    the administrator requires the collector and it cannot be reached, for
    an ``"ok"`` record: nothing is written then, and the caller records its
    refusal (records with outcome ``"refused"`` or ``"error"`` are always
    written to the user's log, noting that the collector was unreachable, and
    never raise for the collector). If the collector fails after the record
    is in the user's log, an ``"ok"`` record raises CollectorError as well.
    """
    if outcome not in OUTCOMES:
        raise AuditError(f"audit outcome {outcome!r} is not one of {', '.join(OUTCOMES)}")
    if not action or not isinstance(action, str):
        raise AuditError("an audit record needs an action name")
    uid = os.getuid()
    rec: dict[str, Any] = {
        "time": _canon.now(),
        "host": _HOST,
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
    client, required, unreachable = _connect(outcome)
    if unreachable is not None:
        if required and outcome == "ok":
            raise CollectorError(
                f"the audit collector is required and cannot be reached: {unreachable}",
                hint="secpod does not act without the host's audit record; ask the "
                     "administrator to start it (systemctl start secpod-audit-collector)")
        details = {**(details or {}), "collector": f"unreachable: {unreachable}"}
        if not required:
            print(f"secpod: warning: the audit collector cannot be reached: {unreachable}",
                  file=sys.stderr)
    if details:
        rec["details"] = details
    try:
        written = user_log().append(rec, checkpoint=checkpoint,
                                    durable=durable or client is not None)
        if client is not None:
            try:
                client.submit(written, checkpoint=checkpoint)
            except CollectorError as e:
                if required and outcome == "ok":
                    raise CollectorError(
                        f"record {written['seq']} is in your log but the host's collector did "
                        f"not take it: {e.message}",
                        hint="the action does not go ahead; ask the administrator to check "
                             "the collector") from e
                print(f"secpod: warning: {e.message}", file=sys.stderr)
    finally:
        if client is not None:
            client.close()
    return written
