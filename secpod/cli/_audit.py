"""``secpod audit``: read, verify, prove, report, collect. Logic lives in secpod.audit."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from secpod.cli._output import emit_json, emit_table, status

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    _Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]



def _dir(args: argparse.Namespace) -> Path:
    from secpod import audit

    if getattr(args, "dir", None):
        return Path(args.dir)
    if getattr(args, "host", False):
        return audit.DEFAULT_HOST_DIR
    return audit.log_dir()


def _emit(text: str, output: str | None, what: str) -> None:
    """``text`` to the file ``output`` (saying so on stderr), else to stdout."""
    if output:
        from secpod._files import write_atomic

        write_atomic(Path(output), text, durable=True)
        status(f"wrote {what} to {output}")
    else:
        sys.stdout.write(text)


# --- log -----------------------------------------------------------------------


def _log(args: argparse.Namespace) -> int:
    from secpod import audit

    sel = audit.Selection.from_args(user=args.user, container=args.container, image=args.image,
                                    action=args.action, since=args.since, until=args.until)
    records = audit.select(_dir(args) / "log.jsonl", sel)
    if args.json:
        out = sys.stdout
        out.write("[")
        first = True
        for rec in records:
            out.write("\n" if first else ",\n")
            out.write(json.dumps(rec, sort_keys=True))
            first = False
        out.write("\n]\n" if not first else "]\n")
        return 0
    rows = []
    for r in records:
        ctr = r.get("container") or {}
        img = r.get("image") or {}
        detail = r.get("reason") or ""
        if r.get("exit_status") is not None:
            detail = f"exit {r['exit_status']}" + (f"; {detail}" if detail else "")
        rows.append([r.get("seq"), str(r.get("time", ""))[:19].replace("T", " "), r.get("user"),
                     r.get("action"), r.get("outcome"),
                     ctr.get("name") or (ctr.get("id") or "")[:12], img.get("ref") or "",
                     detail])
    emit_table(["SEQ", "TIME (UTC)", "USER", "ACTION", "OUTCOME", "CONTAINER", "IMAGE",
                "DETAIL"], rows)
    return 0


# --- verify --------------------------------------------------------------------


def _verify(args: argparse.Namespace) -> int:
    from secpod import audit

    d = _dir(args)
    checkpoint = Path(args.checkpoint) if args.checkpoint else None
    if args.cosigned:
        checkpoint = _cosigned_checkpoint(d, Path(args.host_dir or audit.DEFAULT_HOST_DIR))
    result = audit.verify_dir(d, key=args.key, checkpoint=checkpoint)
    if args.json:
        emit_json({"log": str(d / "log.jsonl"), **result.to_json()})
        return 0 if result.intact else 1
    print(f"audit log {d / 'log.jsonl'}: {'intact' if result.intact else 'NOT INTACT'}")
    print(f"records: {result.records} ({result.size} bytes); checkpoints: {result.checkpoints}; "
          f"covered by a verified checkpoint: {result.covered}"
          + (f" ({result.records - result.covered} after the last checkpoint)"
             if result.records > result.covered else ""))
    print(f"key: {result.key or '(missing)'}")
    from secpod._text import printable

    for p in result.problems:  # a problem may quote the log's bytes: escaped
        print(printable(f"  FAIL [{p.kind}] {p.message}"))
    if result.more_problems:
        print(f"  ... and {result.more_problems} more problems")
    return 0 if result.intact else 1


# --- prove / verify-proof --------------------------------------------------------


def _prove(args: argparse.Namespace) -> int:
    from secpod import audit
    from secpod.errors import UsageError

    newer = Path(args.checkpoint) if args.checkpoint else None
    if (args.seq is None) == (args.since is None):
        raise UsageError("give a record's SEQ (inclusion) or --since CHECKPOINT (consistency)",
                         hint="secpod audit prove 41, or secpod audit prove --since kept.note")
    if args.since is not None:
        proof = audit.prove_consistency(_dir(args), Path(args.since), checkpoint=newer)
        what = f"the proof that the log at {proof['tree_size']} records extends {args.since}"
    else:
        proof = audit.prove(_dir(args), args.seq, checkpoint=newer)
        what = f"the proof of record {args.seq}"
    _emit(json.dumps(proof, indent=2, sort_keys=True) + "\n", args.output, what)
    return 0


def _verify_proof(args: argparse.Namespace) -> int:
    from secpod import audit
    from secpod.audit._proof import CONSISTENCY_FORMAT
    from secpod.audit._verify import load_key
    from secpod.errors import AuditError

    proof = audit.load_proof(Path(args.proof))
    key = load_key(args.key, _dir(args))
    if key is None:
        raise AuditError("no verifier key to check the proof with",
                         hint="give the log's key: --key NAME+ID+KEY (secpod audit key)")
    note = None
    if args.checkpoint:
        try:
            note = Path(args.checkpoint).read_text(errors="replace")
        except OSError as e:
            raise AuditError(f"cannot read {args.checkpoint}: {e.strerror}") from e
    if proof.get("format") == CONSISTENCY_FORMAT:
        got = audit.verify_consistency(proof, key, note)
        if args.json:
            emit_json({"ok": True, "key": str(key), **got})
        else:
            print(f"the log {key.name} at {got['tree_size']} records (signed {got['time']}) "
                  f"extends the one at {got['old_size']} (signed {got['old_time']}): "
                  "nothing in it was changed or removed")
        return 0
    rec = audit.verify_proof(proof, key, note)
    if args.json:
        emit_json({"ok": True, "seq": proof["seq"], "tree_size": proof["tree_size"],
                   "key": str(key), "record": rec})
    else:
        print(f"record {proof['seq']} is in the log {key.name} signed at size "
              f"{proof['tree_size']}: {rec.get('time')} {rec.get('user')} {rec.get('action')} "
              f"{rec.get('outcome')}")
    return 0


# --- key / checkpoint ----------------------------------------------------------------


def _key(args: argparse.Namespace) -> int:
    from secpod import audit
    from secpod.errors import AuditError

    if args.dir or args.host:
        from secpod.audit._verify import load_key

        vkey = load_key(None, _dir(args))
        if vkey is None:
            raise AuditError(f"the log in {_dir(args)} has no verifier key")
        print(vkey)
        return 0
    print(audit.user_log().ensure_key())
    return 0


def _cosigned_checkpoint(log_dir: Path, host_dir: Path) -> Path:
    import time

    from secpod.audit import _cosign

    path, host, when = _cosign.cosigned_checkpoint(log_dir, host_dir)
    status(f"checking against the checkpoint {host} cosigned at "
           f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(when))} UTC ({path})")
    return path


def _cosign(args: argparse.Namespace) -> int:
    from secpod import audit
    from secpod.audit import _cosign

    result = _cosign.cosign_own_log(audit.user_log())
    if args.json:
        emit_json({k: result[k] for k in ("size", "old_size", "note")})
    else:
        sys.stdout.write(result["note"])
    status(f"the host cosigned your log's checkpoint of {result['size']} records"
           + (f" (it extends the {result['old_size']} it cosigned before)"
              if result["old_size"] else ""))
    return 0


def _checkpoint(args: argparse.Namespace) -> int:
    from secpod import audit

    note = audit.user_log().checkpoint()  # only your own log: the host log is the collector's
    sys.stdout.write(note)
    return 0


# --- report ------------------------------------------------------------------------


def _report(args: argparse.Namespace) -> int:
    from secpod import audit
    from secpod.audit import _canon

    d = _dir(args)
    since = _canon.parse_time(args.since) if args.since else None
    until = _canon.parse_time(args.until) if args.until else None
    report = audit.build_report(audit.iter_records(d / "log.jsonl"), since=since, until=until,
                                source=str(d / "log.jsonl"))
    _emit(audit.render(report, args.format), args.output, f"the {args.format} report")
    return 0


# --- collect -----------------------------------------------------------------------


def _collect(args: argparse.Namespace) -> int:
    from secpod import audit
    from secpod.errors import Refused

    if os.geteuid() != 0:
        raise Refused("the audit collector runs as root",
                      hint="the administrator starts it: systemctl start "
                           "secpod-audit-collector (contrib/secpod-audit-collector.service)")
    sock = Path(args.socket) if args.socket else audit.DEFAULT_SOCKET
    d = Path(args.dir) if args.dir else audit.DEFAULT_HOST_DIR
    collector = audit.Collector(sock, d, checkpoint_every=args.checkpoint_every)
    collector.serve(ready=lambda: status(f"secpod audit collector: listening on {sock}, "
                                         f"host log in {d}"))
    status("secpod audit collector: stopped")
    return 0


# --- registration --------------------------------------------------------------------


def _add_audit(sub: _Subparsers) -> None:
    p = sub.add_parser("audit", help="read, verify, prove and report the audit log; collect",
                       description="The tamper-evident audit log: docs/audit.md.")
    asub = p.add_subparsers(dest="audit_command", metavar="SUBCOMMAND")
    asub.required = True

    def where(q: argparse.ArgumentParser) -> None:
        g = q.add_mutually_exclusive_group()
        g.add_argument("--dir", metavar="DIR",
                       help="the log directory to read (default: your own log)")
        g.add_argument("--host", action="store_true",
                       help="read the host log of the collector (/var/lib/secpod/audit)")

    q = asub.add_parser("log", help="list records",
                        description="List records, oldest first. --json prints one JSON "
                                    "array of the records.")
    where(q)
    q.add_argument("--user", metavar="U", help="user name or uid")
    q.add_argument("--container", metavar="C", help="container name or id prefix")
    q.add_argument("--image", metavar="I", help="part of an image reference, or a digest prefix")
    q.add_argument("--action", metavar="A", help="action name; shell patterns like container.*")
    q.add_argument("--since", metavar="T", help="RFC 3339 time, a date, or an age (24h, 7d)")
    q.add_argument("--until", metavar="T", help="RFC 3339 time, a date, or an age")
    q.add_argument("--json", action="store_true", help="a JSON array of records")
    q.set_defaults(func=_log, allow_root=True)

    q = asub.add_parser("verify", help="check that the log is intact",
                        description="Exit 0 when the log is intact, 1 when it is not (each "
                                    "problem names the record or checkpoint at fault).")
    where(q)
    q.add_argument("--checkpoint", metavar="FILE",
                   help="also check against this signed checkpoint (kept elsewhere)")
    q.add_argument("--key", metavar="VKEY",
                   help="the verifier key (NAME+ID+KEY, or a file holding it); default: the "
                        "log's key.vkey")
    q.add_argument("--cosigned", action="store_true",
                   help="also check against the checkpoint the host's collector cosigned "
                        "(catches a log its owner rewrote and signed again)")
    q.add_argument("--host-dir", metavar="DIR",
                   help="the collector's folder for --cosigned (default /var/lib/secpod/audit)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_verify, allow_root=True)

    q = asub.add_parser("cosign", help="have the host's collector cosign your log's checkpoint",
                        description="Sign a checkpoint of your log and have the host's "
                                    "collector cosign it, proving that your log extends "
                                    "the one it cosigned before (docs/audit.md).")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_cosign)

    q = asub.add_parser("prove", help="print a proof (JSON) that a record is in the log, or "
                                      "with --since that the log only grew since a checkpoint")
    where(q)
    q.add_argument("seq", type=int, metavar="SEQ", nargs="?",
                   help="the record's sequence number (an inclusion proof)")
    q.add_argument("--since", metavar="FILE",
                   help="a checkpoint you kept: prove the log still extends it (consistency)")
    q.add_argument("--checkpoint", metavar="FILE",
                   help="prove against this checkpoint (default: the latest)")
    q.add_argument("--output", "-o", metavar="FILE", help="write the proof here")
    q.set_defaults(func=_prove, allow_root=True)

    q = asub.add_parser("verify-proof", help="check an inclusion or consistency proof offline")
    where(q)
    q.add_argument("proof", metavar="PROOF", help="a proof file from `secpod audit prove`")
    q.add_argument("--key", metavar="VKEY", help="the log's verifier key (or a file holding it)")
    q.add_argument("--checkpoint", metavar="FILE",
                   help="a checkpoint you trust, instead of the one in the proof (for a "
                        "consistency proof: the older one, that you kept)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_verify_proof, allow_root=True)

    q = asub.add_parser("key", help="print the log's verifier key (vkey)")
    where(q)
    q.set_defaults(func=_key, allow_root=True)

    q = asub.add_parser("checkpoint", help="sign a checkpoint of your log now and print it")
    q.set_defaults(func=_checkpoint, allow_root=True)

    q = asub.add_parser("report", help="a compliance report (text, json, csv or html)")
    where(q)
    q.add_argument("--since", metavar="T", help="RFC 3339 time, a date, or an age (24h, 7d)")
    q.add_argument("--until", metavar="T")
    q.add_argument("--format", choices=("text", "json", "csv", "html"), default="text")
    q.add_argument("--output", "-o", metavar="FILE", help="write the report here")
    q.set_defaults(func=_report, allow_root=True)

    q = asub.add_parser("collect", help="run the host's audit collector (root)",
                        description="Listen on a unix socket and keep the host log; the "
                                    "administrator runs it (contrib/secpod-audit-collector"
                                    ".service).")
    q.add_argument("--socket", metavar="PATH", help="default /run/secpod/audit.sock")
    q.add_argument("--dir", metavar="DIR", help="host log folder, default /var/lib/secpod/audit")
    q.add_argument("--checkpoint-every", type=int, default=100, metavar="N",
                   help="sign a checkpoint every N records (default 100)")
    q.set_defaults(func=_collect, allow_root=True)


# Each command's parser, in the order of `secpod --help`.
PARSERS = {
    "audit": _add_audit,
}
