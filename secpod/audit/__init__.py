"""The audit record of every action secpod takes.

Everything that acts (import, run, create, start, exec, stop, kill, exit,
rm, sign, verify, refusals) calls :func:`record` exactly once, before the
action's result is reported. Nothing writes the log any other way.

Each user's log is a hash chain of canonical JSON lines and the leaves of an
RFC 6962 Merkle tree, with Ed25519-signed checkpoints in the C2SP
signed-note format; where the administrator runs the collector, records
also reach a root-owned host log. See docs/audit.md.

Only :func:`record` and :func:`flush` are imported eagerly (every command calls it); the rest
loads on first use so that command start-up stays fast.
"""

from __future__ import annotations

from secpod._lazy import reexports
from secpod.audit._log import flush, record

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from secpod.audit._collector import Collector, CollectorClient
    from secpod.audit._log import host_content, log_dir, log_path, user_log
    from secpod.audit._note import Checkpoint, VerifierKey, parse_checkpoint
    from secpod.audit._policy import DEFAULT_HOST_DIR, DEFAULT_SOCKET
    from secpod.audit._proof import (
        load_proof,
        prove,
        prove_consistency,
        verify_consistency,
        verify_proof,
    )
    from secpod.audit._query import Selection, iter_records, select
    from secpod.audit._render import render
    from secpod.audit._report import build_report, trust_status
    from secpod.audit._store import LogDir
    from secpod.audit._verify import Problem, Verification, verify_dir, verify_stream

__all__ = [
    "DEFAULT_HOST_DIR",
    "DEFAULT_SOCKET",
    "Checkpoint",
    "Collector",
    "CollectorClient",
    "LogDir",
    "Problem",
    "Selection",
    "Verification",
    "VerifierKey",
    "build_report",
    "flush",
    "host_content",
    "iter_records",
    "load_proof",
    "log_dir",
    "log_path",
    "parse_checkpoint",
    "prove",
    "prove_consistency",
    "record",
    "render",
    "select",
    "trust_status",
    "user_log",
    "verify_consistency",
    "verify_dir",
    "verify_proof",
    "verify_stream",
]

_LAZY = {
    "Collector": "_collector", "CollectorClient": "_collector",
    "log_dir": "_log", "log_path": "_log", "user_log": "_log", "host_content": "_log",
    "Checkpoint": "_note", "VerifierKey": "_note", "parse_checkpoint": "_note",
    "DEFAULT_HOST_DIR": "_policy", "DEFAULT_SOCKET": "_policy",
    "load_proof": "_proof", "prove": "_proof", "verify_proof": "_proof",
    "prove_consistency": "_proof", "verify_consistency": "_proof",
    "Selection": "_query", "iter_records": "_query", "select": "_query",
    "render": "_render",
    "build_report": "_report", "trust_status": "_report",
    "LogDir": "_store",
    "Problem": "_verify", "Verification": "_verify", "verify_dir": "_verify",
    "verify_stream": "_verify",
}


__getattr__ = reexports(__name__, {n: f"secpod.audit.{m}" for n, m in _LAZY.items()})
