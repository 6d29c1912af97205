"""``pod create|ps|inspect|start|stop|restart|kill|rm|top|logs|exists|prune``: parse,
call secpod.pods, print. Ids and JSON to stdout, errors to stderr (docs/pods.md)."""

from __future__ import annotations

import argparse
import sys

from secpod.cli._flags import bool_flag

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    _Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def _create(args: argparse.Namespace) -> int:
    from secpod.pods import lifecycle
    from secpod.spec.flags import parse_labels, parse_ports

    share = tuple(s for part in args.share for s in part.split(",") if s) \
        if args.share is not None else ("net", "ipc", "uts")
    pod = lifecycle.create(args.name, ports=parse_ports(args.publish), hostname=args.hostname,
                           profile=args.profile, labels=dict(parse_labels(args.label)),
                           share=share, command=["secpod", *sys.argv[1:]])
    print(pod.id)
    return 0


def _ps(args: argparse.Namespace) -> int:
    from datetime import datetime

    from secpod._text import ago
    from secpod.cli._output import emit_formatted, emit_table
    from secpod.pods import record, views
    from secpod.sandbox.environment import Environment

    env = Environment.load()
    from secpod.filters import exact, labels, parse_filters, prefix, regex

    filters = parse_filters(args.filter, {
        "name": "a regular expression on the pod's name", "id": "a prefix of its id",
        "label": "key or key=value", "status": "created, running, degraded, exited",
        "ctr-names": "a regular expression on a member's name"})
    rows = [r for r in (views.row(p, env) for p in record.all_pods()) if filters.match({
        "name": regex(r["Name"]), "id": prefix(r["Id"]), "label": labels(r["Labels"]),
        "status": exact(r["Status"].lower()),
        "ctr-names": regex(*(c["Names"] for c in r["Containers"]))})]
    if args.quiet:
        for r in rows:
            print(r["Id"][:12] if not args.no_trunc else r["Id"])
        return 0
    if args.format:
        emit_formatted(args.format, rows)
        return 0
    now = datetime.now().timestamp()
    emit_table(("POD ID", "NAME", "STATUS", "CREATED", "INFRA ID", "# OF CONTAINERS"),
               [(r["Id"][:12], r["Name"], r["Status"],
                 ago(now - datetime.fromisoformat(r["Created"]).timestamp()) + " ago",
                 r["InfraId"][:12], str(r["NumberOfContainers"])) for r in rows])
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from secpod.cli._output import emit_json
    from secpod.errors import Error
    from secpod.pods import record, views
    from secpod.sandbox.environment import Environment

    env = Environment.load()
    out, code = [], 0
    for ref in args.pods:
        try:
            out.append(views.inspect(record.lookup(ref), env))
        except Error as e:
            _error(e)
            code = 1
    if args.format:
        from secpod.cli._output import emit_formatted

        emit_formatted(args.format, out)
    else:
        emit_json(out)
    return code


def _each(refs: list[str], act: Callable[[str], Any]) -> int:
    """``act`` on each pod; its id on stdout, or its error on stderr."""
    from secpod.errors import Error

    if len(refs) == 1:           # one pod: its error is the command's
        print(act(refs[0]).id)
        return 0
    code = 0
    for ref in refs:
        try:
            print(act(ref).id)
        except Error as e:
            _error(e)
            code = 1
    return code


def _start(args: argparse.Namespace) -> int:
    from secpod.pods import lifecycle

    return _each(args.pods, lambda r: lifecycle.start(r, infra_only=args.infra_only))


def _stop(args: argparse.Namespace) -> int:
    from secpod.pods import lifecycle

    return _each(args.pods, lambda r: lifecycle.stop(r, args.time))


def _restart(args: argparse.Namespace) -> int:
    from secpod.pods import lifecycle

    return _each(args.pods, lambda r: lifecycle.restart(r, args.time))


def _kill(args: argparse.Namespace) -> int:
    from secpod.pods import lifecycle

    return _each(args.pods, lambda r: lifecycle.kill(r, args.signal))


def _rm(args: argparse.Namespace) -> int:
    from secpod.errors import NotFound
    from secpod.pods import lifecycle

    def rm(ref: str) -> Any:
        try:
            return lifecycle.remove(ref, force=args.force)
        except NotFound:
            if args.ignore:
                return type("Gone", (), {"id": ref})()
            raise

    return _each(args.pods, rm)


def _exists(args: argparse.Namespace) -> int:
    from secpod.errors import NotFound
    from secpod.pods import record

    try:
        record.lookup(args.pod)
    except NotFound:
        return 1
    return 0


def _prune(args: argparse.Namespace) -> int:
    from secpod.cli._prune import _confirmed
    from secpod.pods import lifecycle

    if not _confirmed(args, "  - all pods whose infra is not running, with their containers"):
        return 1
    for pod in lifecycle.prune():
        print(pod.id)
    return 0


def _top(args: argparse.Namespace) -> int:
    from secpod._text import clock
    from secpod.cli._output import emit_table
    from secpod.errors import Conflict
    from secpod.pods import lifecycle, record
    from secpod.sandbox import operations

    pod = record.lookup(args.pod)
    rows = []
    for m in lifecycle.members(pod):
        try:
            procs = operations.top(m.id)
        except Conflict:   # a member not running has no process to show
            continue
        rows += [(m.name, str(p.uid) if p.uid >= 0 else "?", str(p.pid), str(p.ppid),
                  clock(p.elapsed), clock(p.cpu_seconds), p.command) for p in procs]
    emit_table(("CONTAINER", "USER", "PID", "PPID", "ELAPSED", "TIME", "COMMAND"), rows)
    return 0


def _logs(args: argparse.Namespace) -> int:
    from secpod.pods import lifecycle, record
    from secpod.sandbox import logs

    pod = record.lookup(args.pod)
    for m in lifecycle.members(pod):
        if args.container and m.name != args.container and not m.id.startswith(args.container):
            continue
        if m.log_driver == "none":
            continue
        for stream, data in logs.of_container(m.id):
            target = sys.stderr.buffer if stream == "stderr" else sys.stdout.buffer
            target.write(f"{m.short_id} ".encode() + data)
    sys.stdout.flush()
    return 0


def _error(e: object) -> None:
    from secpod.errors import Error

    assert isinstance(e, Error)
    print(f"secpod: error: {e.message}", file=sys.stderr)
    if e.hint:
        print(f"hint: {e.hint}", file=sys.stderr)


def _add_pod(sub: _Subparsers) -> None:
    p = sub.add_parser("pod", help="pods: containers sharing localhost, IPC and hostname")
    psub = p.add_subparsers(dest="pod_command", metavar="COMMAND")
    psub.required = True
    q = psub.add_parser("create", help="make a pod and start its infra; print its id")
    q.add_argument("--name", required=True, metavar="NAME")
    q.add_argument("-p", "--publish", action="append", default=[],
                   metavar="[IP:][HOST_PORT:]PORT[/PROTO]",
                   help="publish a port of the pod on the host (127.0.0.1 unless an "
                        "address is given)")
    q.add_argument("--hostname", metavar="NAME", help="the pod's hostname (default: its name)")
    q.add_argument("--share", action="append", metavar="NS[,NS...]",
                   help="the namespaces members share: net, ipc, uts (default: all three; "
                        "the user namespace always)")
    q.add_argument("--profile", default="default", metavar="PROFILE",
                   help="the least strict profile a member may run at (default: default)")
    q.add_argument("--label", action="append", default=[], metavar="KEY[=VALUE]")
    q.set_defaults(func=_create)
    q = psub.add_parser("ps", aliases=["ls", "list"], help="list your pods")
    bool_flag(q, "-q", "--quiet", dest="quiet", help="only the ids")
    bool_flag(q, "--no-trunc", dest="no_trunc", help="full ids")
    q.add_argument("-f", "--filter", action="append", default=[], metavar="KEY=VALUE",
                   help="name, id, label, status (created, running, degraded, exited), "
                        "ctr-names; Docker's semantics (docs/formatting.md)")
    q.add_argument("--format", metavar="TEMPLATE",
                   help="json, or a Go template (.Id .Name .Status .Created .InfraId "
                        ".NumberOfContainers .Labels)")
    q.set_defaults(func=_ps)
    q = psub.add_parser("inspect", help="pods as JSON: namespaces, ports, members and "
                                        "the confinement of each")
    q.add_argument("-f", "--format", metavar="TEMPLATE")
    q.add_argument("pods", nargs="+", metavar="POD")
    q.set_defaults(func=_inspect)
    for name, func, what in (("start", _start, "start a pod's infra and members"),
                             ("stop", _stop, "stop a pod's members, then its infra"),
                             ("restart", _restart, "stop, then start a pod")):
        q = psub.add_parser(name, help=what)
        if name == "start":
            q.add_argument("--infra-only", action="store_true",
                           help="start the infra only (a pod's systemd unit: each member's "
                                "unit starts it; docs/services.md)")
        else:
            q.add_argument("-t", "--time", type=int, metavar="SECONDS",
                           help="seconds to wait before SIGKILL (default: each member's "
                                "--stop-timeout)")
        q.add_argument("pods", nargs="+", metavar="POD")
        q.set_defaults(func=func)
    q = psub.add_parser("kill", help="signal a pod's members (SIGKILL: the infra too)")
    q.add_argument("-s", "--signal", default="KILL", metavar="SIGNAL")
    q.add_argument("pods", nargs="+", metavar="POD")
    q.set_defaults(func=_kill)
    q = psub.add_parser("rm", aliases=["remove"], help="remove pods with their containers")
    bool_flag(q, "-f", "--force", dest="force", help="running members are killed first")
    bool_flag(q, "-i", "--ignore", dest="ignore", help="a missing pod is no error")
    q.add_argument("pods", nargs="+", metavar="POD")
    q.set_defaults(func=_rm)
    q = psub.add_parser("top", help="the processes of a pod's members")
    q.add_argument("pod", metavar="POD")
    q.set_defaults(func=_top)
    q = psub.add_parser("logs", help="the output of a pod's members, each line with the "
                                     "member's short id")
    q.add_argument("-c", "--container", metavar="CONTAINER", help="one member only")
    q.add_argument("pod", metavar="POD")
    q.set_defaults(func=_logs)
    q = psub.add_parser("exists", help="exit 0 if the pod exists, 1 if not")
    q.add_argument("pod", metavar="POD")
    q.set_defaults(func=_exists)
    q = psub.add_parser("prune", help="remove every pod whose infra is not running")
    bool_flag(q, "-f", "--force", dest="force", help="do not ask for confirmation")
    q.set_defaults(func=_prune)


# Each command's parser, in the order of `secpod --help`.
PARSERS = {
    "pod": _add_pod,
}
