"""Container commands: run, create, start, restart, wait, ps, logs, stop, kill, rm, exec,
inspect."""

from __future__ import annotations

import argparse
import sys

from secpod.cli._flags import bool_flag
from secpod.cli._output import emit_formatted, emit_json, emit_table


def _options(args: argparse.Namespace, *, detach: bool) -> Any:
    from secpod.cli import canonical
    from secpod.errors import MountRequestError, NetworkRequestError
    from secpod.spec.flags import spec_from_args

    # The words that asked, kept on the record: `generate systemd --new` runs them again
    # (Docker's spellings, `container run`, as secpod's).
    words = canonical(sys.argv[1:])
    while words and words[0] in ("-v", "--verbose"):
        words = words[1:]
    args.command_line = words
    try:
        return spec_from_args(args, detach=detach)
    except (NetworkRequestError, MountRequestError) as e:  # refused as read: audited
        from secpod.sandbox import events
        from secpod.spec import ContainerSpec

        events.refused("flags", e, ContainerSpec(image=args.image, name=args.name,
                                                 profile=args.profile))
        raise


def _as_docker_codes(func: Any) -> Any:
    """secpod's own failures before the container ran exit 125, as Docker's do."""

    def wrapper(args: argparse.Namespace) -> int:
        from secpod.errors import Error

        try:
            return int(func(args))
        except Error as e:
            if e.exit_code == 1:
                e.exit_code = 125
            raise

    return wrapper


def _tell_weakened(ctr: Any) -> None:
    """Say on stderr how the run's flags weaken its profile (never silently)."""
    weakened = (ctr.confinement or {}).get("weakened") or []
    if weakened:
        print(f"secpod: warning: the flags weaken the profile, shown as {ctr.profile}: "
              + "; ".join(weakened), file=sys.stderr)


def _tell_unenforced(ctr: Any) -> None:
    """Say once per boot and setting what this host does not enforce (inspect always says).

    The key is the setting itself (e.g. "pids limit 2048: ..."), not the profile hash:
    another combination of run flags does not make an unenforced setting news again.
    """
    from secpod.sandbox.state import first_notice

    new = [line for line in ctr.unenforced if first_notice(f"unenforced:{line}")]
    for line in new:
        print(f"secpod: not enforced on this host: {line}", file=sys.stderr)
    if new:
        print(
            "secpod: (said once per boot; `secpod inspect` and `secpod doctor` repeat it)",
            file=sys.stderr,
        )


def _before_create(args: argparse.Namespace) -> Any:
    """--cidfile checked and --replace done before a container is made; returns what
    :func:`_after_create` writes the id to (None: no --cidfile)."""
    file = None
    if args.cidfile is not None:
        from secpod.sandbox import cidfile

        file = cidfile.check(args.cidfile)
    if args.replace:
        from secpod.sandbox import create

        create.replace_named(args.name)
    return file


def _after_create(ctr: Any, file: Any) -> None:
    """The id into --cidfile; a container whose id cannot be written is removed."""
    if file is None:
        return
    from secpod.sandbox import cidfile, operations

    try:
        cidfile.write(file, ctr.id)
    except BaseException:
        operations.remove(ctr.id, force=True)
        raise


@_as_docker_codes
def _run(args: argparse.Namespace) -> int:
    from secpod.sandbox import run

    opts = _options(args, detach=args.detach)
    file = _before_create(args)

    created: list[Any] = []

    def announce(ctr: Any) -> None:
        created.append(ctr)
        _after_create(ctr, file)
        _tell_weakened(ctr)
        _tell_unenforced(ctr)

    code = run.run(opts, on_created=announce)
    if args.detach:
        print(created[0].id)
    return code


@_as_docker_codes
def _create(args: argparse.Namespace) -> int:
    from secpod.sandbox import create

    opts = _options(args, detach=True)
    file = _before_create(args)
    ctr = create.create_detached(opts)
    _after_create(ctr, file)
    _tell_weakened(ctr)
    _tell_unenforced(ctr)
    print(ctr.id)
    return 0


def _start(args: argparse.Namespace) -> int:
    from secpod.errors import UsageError
    from secpod.sandbox import operations, state

    if bool(args.all) == bool(args.containers) or (args.filter or args.by_policy) \
            and not args.all:
        raise UsageError("give the containers to start, or --all (with --filter or "
                         "--by-policy to choose among them)",
                         hint="secpod start web; secpod start --all --by-policy")
    if args.attach or args.interactive:  # Docker's: -i attaches the output as well
        from secpod.sandbox import attach

        if args.all or len(args.containers) > 1:
            raise UsageError("start -a starts one container at a time",
                             hint="secpod start -a CONTAINER (or start several without -a)")
        code = attach.start_attached(args.containers[0], interactive=args.interactive,
                                     sig_proxy=args.sig_proxy)
        return code if code >= 0 else 125
    refs = _startable(args) if args.all else args.containers
    return _each(refs, lambda ref: operations.start(state.lookup(ref)).name)


def _each(refs: list[str], act: Callable[[str], str]) -> int:
    """``act`` on each of several containers, printing the name it returns: each failure
    is printed once, here, and the others are still acted on; the exit status is the
    last failure's."""
    from secpod.errors import Error

    code = 0
    for ref in refs:
        try:
            print(act(ref))
        except Error as e:
            print(f"secpod: error: {e.message}", file=sys.stderr)
            if e.hint:
                print(f"hint: {e.hint}", file=sys.stderr)
            code = e.exit_code
    return code


def _startable(args: argparse.Namespace) -> list[str]:
    """start --all: the ids of the containers that do not run (a pod's infra is started
    with its pod, one waiting for its restart policy by that policy), in the order they
    were made, narrowed by --filter and --by-policy. After a reboot the runtime still has
    the state of those that ran (it is kept on disk): "stopped", their exit not recorded."""
    from secpod.sandbox import operations, restart

    rows = _ps_filtered(operations.listing(True), args.filter)
    rows = [r for r in rows if r["status"] in ("created", "stopped", "exited")
            and not r["restarting"]
            and not r.get("pod_infra")
            and (not args.by_policy
                 or restart.starts_at_boot(r["restart_policy"], r["stopped_by"]))]
    return [str(r["id"]) for r in sorted(rows, key=lambda r: str(r["created"]))]


#: ps --filter: Docker's keys, and what each value is matched against.
PS_FILTERS = {
    "id": "a prefix of the container id",
    "name": "a regular expression found in the name",
    "status": "created, running, paused or exited",
    "exited": "the exit code",
    "ancestor": "the image: a name, a prefix of its digest, or its repository",
    "label": "an image label: KEY or KEY=VALUE",
    "before": "created before this container (name or id)",
    "since": "created after this container (name or id)",
    "profile": "the profile (secpod's)",
    "runtime": "crun or runc (secpod's)",
    "restart-policy": "the restart policy: no, on-failure, always or unless-stopped",
}


def _ps_filtered(rows: list[dict[str, Any]], values: list[str]) -> list[dict[str, Any]]:
    from secpod.filters import exact, labels, parse_filters, prefix, regex
    from secpod.sandbox import state

    filters = parse_filters(values, PS_FILTERS)
    bounds: dict[str, list[str]] = {}
    for key in ("before", "since"):
        for ref in filters.get(key):
            bounds.setdefault(key, []).append(state.lookup(ref).created)

    def ancestor(r: dict[str, Any]) -> Any:
        image, digest = str(r["image"]), str(r.get("image_digest") or "")
        repo = image.rpartition(":")[0] if ":" in image.rpartition("/")[2] else image
        return lambda v: (v in (image, repo, repo.rpartition("/")[2])
                          or image.endswith("/" + v) or digest.removeprefix("sha256:")
                          .startswith(v.removeprefix("sha256:")) and len(v) >= 4)

    def keep(r: dict[str, Any]) -> bool:
        created = str(r["created"])
        return filters.match({
            "id": prefix(r["id"]), "name": regex(r["name"]), "status": exact(r["status"]),
            "exited": exact(None if r["exit_code"] is None or r["status"] != "exited"
                            else str(r["exit_code"])),
            "ancestor": ancestor(r), "label": labels(r.get("labels")),
            "before": lambda _v: all(created < b for b in bounds.get("before", [])),
            "since": lambda _v: all(created > b for b in bounds.get("since", [])),
            "profile": exact(r["profile"], str(r["profile"]).partition("+")[0]),
            "runtime": exact(r["runtime"]),
            "restart-policy": exact(r["restart_policy"],
                                    str(r["restart_policy"]).partition(":")[0]),
        })

    return [r for r in rows if keep(r)]


def ports_column(row: dict[str, Any]) -> str:
    """Docker's PORTS: the published ports of a running container."""
    if not row.get("ports") or row["status"] not in ("running", "paused"):
        return ""
    from secpod.sandbox.views import ports_text

    return ports_text(row["ports"])


def _ps(args: argparse.Namespace) -> int:
    import time
    from datetime import datetime

    from secpod._text import ago
    from secpod.sandbox import operations

    last = 1 if args.latest else args.last
    rows = operations.listing(args.all or last is not None or bool(args.filter))
    if args.filter:  # Docker lists exited ones only with -a, or when a filter asks
        rows = _ps_filtered(rows, args.filter)
        if not args.all and not any(f.startswith(("status=", "exited=")) for f in args.filter):
            rows = [r for r in rows if r["status"] != "exited"]
    if last is not None:  # Docker's -n/-l: the last created, whatever their state
        rows = sorted(rows, key=lambda r: str(r["created"]))[-last:] if last > 0 else []
    now = time.time()
    sizes = _sizes(rows) if args.size else {}

    def since(stamp: str | None) -> str:
        """An RFC 3339 time as "5 minutes ago" (--json keeps the times themselves)."""
        if not stamp:
            return ""
        try:
            return ago(now - datetime.fromisoformat(stamp).timestamp()) + " ago"
        except ValueError:
            return stamp

    def status(r: dict[str, Any]) -> str:
        if r["status"] == "exited" and r.get("restarting"):  # Docker's words for the backoff
            return f"Restarting ({r['exit_code']}) {since(r['finished'])}".strip()
        if r["status"] == "exited":
            code = "?" if r["exit_code"] is None else r["exit_code"]
            return f"Exited ({code}) {since(r['finished'])}".strip()
        if r["status"] == "running" and r["started"]:
            health = r.get("health")
            mark = "" if not health else (" (health: starting)" if health == "starting"
                                          else f" ({health})")
            return "Up " + since(r["started"]).removesuffix(" ago") + mark
        return str(r["status"]).capitalize()

    if args.quiet:
        for r in rows:
            print(r["id"] if args.no_trunc else r["id"][:12])
    elif args.json:
        emit_json(rows)
    elif args.format:
        from secpod.sandbox.views import ps_fields

        fields = []
        for r in rows:
            f = ps_fields(r, status(r), since(r["created"]))
            if args.no_trunc:
                f["ID"] = r["id"]
            f["Size"] = sizes.get(r["id"], "")
            fields.append(f)
        emit_formatted(args.format, fields, json_lines=True,
                       headers={"ID": "CONTAINER ID", "RunningFor": "CREATED"})
    else:
        emit_table(
            ("CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "PROFILE",
             "NAMES", *(("SIZE",) if args.size else ())),
            [
                (
                    r["id"] if args.no_trunc else r["id"][:12],
                    r["image"],
                    " ".join(r["command"]) if args.no_trunc else " ".join(r["command"])[:30],
                    since(r["created"]),
                    status(r),
                    ports_column(r),
                    r["profile"],
                    r["name"],
                    *((sizes[r["id"]],) if args.size else ()),
                )
                for r in rows
            ],
        )
    return 0


def _sizes(rows: list[dict[str, Any]]) -> dict[str, str]:
    """``ps -s``: each container's own files, and with its image's ("virtual"), as
    Docker shows them: ``12kB (virtual 1.2MB)``."""
    from secpod.errors import Error
    from secpod.images import Store, human_size
    from secpod.sandbox.usage import container_size

    try:
        images = {i.digest: i.size for i in Store.open().list()}
    except Error:
        images = {}
    out = {}
    for r in rows:
        own = container_size(r["id"])
        out[r["id"]] = f"{human_size(own)} (virtual " \
                       f"{human_size(own + images.get(r['image_digest'], 0))})"
    return out


def _logs(args: argparse.Namespace) -> int:
    from secpod.sandbox import logs

    since = until = tail = None
    if args.since is not None or args.until is not None:
        from secpod._times import parse_point_nanos

        since = None if args.since is None else parse_point_nanos(args.since, "--since")
        until = None if args.until is None else parse_point_nanos(args.until, "--until")
    if args.tail != "all":
        from secpod.errors import UsageError

        if not args.tail.isdigit():
            raise UsageError(f"--tail {args.tail!r}: give a number of lines or all")
        tail = int(args.tail)
    for stream, data in logs.of_container(args.container, follow=args.follow, since=since,
                                          until=until, tail=tail,
                                          timestamps=args.timestamps):
        out = sys.stdout.buffer if stream == "stdout" else sys.stderr.buffer
        out.write(data)
        out.flush()
    return 0


def _stop(args: argparse.Namespace) -> int:
    from secpod.sandbox import operations

    for ref in args.containers:
        print(operations.stop(ref, timeout=args.time).name)
    return 0


def _kill(args: argparse.Namespace) -> int:
    from secpod.sandbox import operations

    for ref in args.containers:
        print(operations.kill(ref, args.signal).name)
    return 0


def _rm(args: argparse.Namespace) -> int:
    from secpod.sandbox import operations

    return _each(args.containers, lambda ref: operations.remove(ref, force=args.force).name)


@_as_docker_codes
def _exec(args: argparse.Namespace) -> int:
    from secpod.sandbox import operations

    return operations.exec_in(
        args.container,
        args.command,
        env_vars=tuple(args.env),
        workdir=args.workdir,
        user=args.user,
        interactive=args.interactive,
        tty=args.tty,
    )


def _restart(args: argparse.Namespace) -> int:
    from secpod.sandbox import operations

    for ref in args.containers:
        print(operations.restart(ref, timeout=args.time).name)
    return 0


def _wait(args: argparse.Namespace) -> int:
    """Print each container's exit status as it exits (Docker's ``wait``); an unknown
    status prints -1, as Podman does."""
    from secpod.sandbox import operations

    for ref in args.containers:
        code = operations.wait_exit(ref)
        print(-1 if code is None else code, flush=True)
    return 0


def _top(args: argparse.Namespace) -> int:
    from secpod._record import asdict
    from secpod._text import clock
    from secpod.sandbox import operations

    procs = operations.top(args.container)
    if args.json:
        emit_json([asdict(p) for p in procs])
        return 0
    emit_table(
        ("USER", "PID", "PPID", "%CPU", "ELAPSED", "TIME", "COMMAND"),
        [(str(p.uid) if p.uid >= 0 else "?", str(p.pid), str(p.ppid),
          f"{100 * p.cpu_seconds / p.elapsed:.1f}" if p.elapsed else "0.0",
          clock(p.elapsed), clock(p.cpu_seconds), p.command) for p in procs],
    )
    return 0


def _rename(args: argparse.Namespace) -> int:
    from secpod.sandbox import operations

    operations.rename(args.container, args.name)
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from secpod.sandbox import operations

    records = [operations.inspect(ref) for ref in args.containers]
    if args.format:
        emit_formatted(args.format, records)
    else:
        emit_json(records)
    return 0


def _stats(args: argparse.Namespace) -> int:
    import time

    from secpod.sandbox import operations, state, stats

    if not args.no_stream and args.format and args.format.strip() == "json":
        from secpod.errors import UsageError

        raise UsageError("--format json needs --no-stream", hint="secpod stats --no-stream "
                                                                 "--format json")
    if not args.containers:
        rows = [r for r in operations.listing(args.all)]
        picked = [(state.lookup(r["id"]), r) for r in rows]
    else:
        by_id = {r["id"]: r for r in operations.listing(True)}
        picked = []
        for ref in args.containers:
            ctr = state.lookup(ref)
            picked.append((ctr, by_id.get(ctr.id, {})))
    env_note = "" if _cgroups_delegated() else stats.SOURCE_NOTE
    if env_note and not args.format:
        print(f"secpod: {env_note}", file=sys.stderr)
    while True:
        readings = stats.collect([(c, r.get("pid") if r.get("status") in ("running", "paused")
                                   else None) for c, r in picked])
        fields = [s.as_dict() for s in readings]
        if not args.no_stream and sys.stdout.isatty():
            sys.stdout.write("\x1b[H\x1b[2J")
        if args.format:
            emit_formatted(args.format, fields, json_lines=False,
                           headers={"ID": "CONTAINER ID", "CPUPerc": "CPU %",
                                    "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %",
                                    "NetIO": "NET I/O", "BlockIO": "BLOCK I/O"})
        else:
            emit_table(("CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %",
                        "NET I/O", "BLOCK I/O", "PIDS"),
                       [(f["ID"], f["Name"], f["CPUPerc"], f["MemUsage"], f["MemPerc"],
                         f["NetIO"], f["BlockIO"], f["PIDs"]) for f in fields])
        sys.stdout.flush()
        if args.no_stream:
            return 0
        time.sleep(0.5)


def _cgroups_delegated() -> bool:
    from secpod.sandbox.host import probe

    return probe().can_limit_resources


def _pause(args: argparse.Namespace) -> int:
    from secpod.sandbox import freezer

    change = freezer.pause if args.command == "pause" else freezer.unpause
    for ref in args.containers:
        print(change(ref).name)
    return 0


def _cleanup(args: argparse.Namespace) -> int:
    from secpod.errors import NotFound
    from secpod.sandbox import operations, restart, state

    try:
        ctr = state.lookup(args.container)
    except NotFound:
        return 0  # removed already (rm -f collected the exit)
    if args.restart:  # the policy's backoff has passed (sandbox/restart.py)
        from secpod.errors import Error
        from secpod.sandbox.environment import Environment

        try:
            env = Environment.load()
        except Error as e:
            restart.give_up(ctr, e.message)
            raise
        restart.relaunch(ctr, env)
        return 0
    ctr = operations.collect_exit(ctr)
    if ctr.pod_infra:  # its members cannot outlive it (secpod.pods.lifecycle)
        from secpod.pods import lifecycle

        lifecycle.infra_exited(ctr, operations._env(None))
    delay = restart.after_exit(ctr)
    if delay is not None:
        restart.wait_then_relaunch(ctr.id, delay)
    return 0


TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any
    _Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def _add_run(sub: _Subparsers) -> None:
    p = sub.add_parser("run", help="run a command in a new container", add_help=False)
    bool_flag(p, "-d", "--detach", dest="detach",
              help="run in the background under a monitor; print the container id")
    from secpod.spec.flags import add_run_flags  # run and create only

    add_run_flags(p)
    p.set_defaults(func=_run)


def _add_create(sub: _Subparsers) -> None:
    p = sub.add_parser("create", help="create a container (start it with secpod start)",
                       add_help=False)
    from secpod.spec.flags import add_run_flags  # run and create only

    add_run_flags(p)
    p.set_defaults(func=_create)


def _add_start(sub: _Subparsers) -> None:
    p = sub.add_parser("start", help="start created or exited containers (detached, or "
                                     "attached with -a)")
    p.add_argument("containers", nargs="*", metavar="CONTAINER")
    bool_flag(p, "--all", dest="all",
              help="every container that does not run (not a pod's infra: pod start)")
    p.add_argument("-f", "--filter", action="append", default=[], metavar="KEY=VALUE",
                   help="with --all: only those that match (ps --filter's keys)")
    bool_flag(p, "--by-policy", dest="by_policy",
              help="with --all: only those Docker's daemon starts when it starts: restart "
                   "policy always, or unless-stopped and not stopped by hand (for boot: "
                   "generate systemd --restart-service)")
    bool_flag(p, "-a", "--attach", dest="attach",
              help="follow its output from the first byte until it exits; exit with its "
                   "status (a running one is attached to)")
    bool_flag(p, "-i", "--interactive", dest="interactive",
              help="attach stdin too (a container made with -i)")
    bool_flag(p, "--sig-proxy", dest="sig_proxy", default=True,
              help="with -a: pass signals (Ctrl-C, ...) on to the container (default; "
                   "recorded)")
    p.set_defaults(func=_start)


def _add_ps(sub: _Subparsers) -> None:
    p = sub.add_parser("ps", help="list containers")
    bool_flag(p, "-a", "--all", dest="all", help="include exited containers")
    bool_flag(p, "-q", "--quiet", dest="quiet", help="print ids only")
    bool_flag(p, "--no-trunc", dest="no_trunc", help="full ids and commands")
    p.add_argument("-n", "--last", type=int, metavar="N",
                   help="the N containers created last, in any state")
    bool_flag(p, "-l", "--latest", dest="latest", help="the container created last")
    bool_flag(p, "-s", "--size", dest="size",
              help="each container's own disk use, and with its image's (virtual)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--format", metavar="TEMPLATE",
                   help="a Go template per container (docs/formatting.md), "
                   "'table TEMPLATE', or json (one object per line)")
    p.add_argument("-f", "--filter", action="append", default=[], metavar="KEY=VALUE",
                   help="keys: " + ", ".join(PS_FILTERS))
    p.set_defaults(func=_ps)


def _add_logs(sub: _Subparsers) -> None:
    p = sub.add_parser("logs", help="print a container's output")
    bool_flag(p, "-f", "--follow", dest="follow", help="follow until the container exits")
    p.add_argument("--since", metavar="TIME",
                   help="lines written since TIME: a duration back (10m), a Unix time, or "
                        "an RFC 3339 time")
    p.add_argument("--until", metavar="TIME", help="lines written up to TIME (same forms)")
    p.add_argument("-n", "--tail", default="all", metavar="N",
                   help="only the last N lines (default: all)")
    bool_flag(p, "-t", "--timestamps", dest="timestamps",
              help="each line's time (RFC 3339, UTC) before it")
    p.add_argument("container", metavar="CONTAINER")
    p.set_defaults(func=_logs)


def _add_stop(sub: _Subparsers) -> None:
    p = sub.add_parser("stop", help="stop containers: SIGTERM (or the container's "
                       "--stop-signal), then SIGKILL after a timeout")
    p.add_argument("-t", "--time", type=float, metavar="SECS",
                   help="seconds to wait before SIGKILL (default: the container's "
                        "--stop-timeout, 10)")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.set_defaults(func=_stop)


def _add_kill(sub: _Subparsers) -> None:
    p = sub.add_parser("kill", help="send a signal to containers")
    p.add_argument("-s", "--signal", default="KILL")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.set_defaults(func=_kill)


def _add_rm(sub: _Subparsers) -> None:
    p = sub.add_parser("rm", help="remove containers")
    bool_flag(p, "-f", "--force", dest="force", help="kill running containers first")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.set_defaults(func=_rm)


def _add_exec(sub: _Subparsers) -> None:
    p = sub.add_parser("exec", help="run a command in a running container")
    p.add_argument("-e", "--env", action="append", default=[], metavar="KEY[=VALUE]")
    p.add_argument("-w", "--workdir")
    p.add_argument("-u", "--user")
    bool_flag(p, "-i", "--interactive", dest="interactive", help="keep stdin attached")
    bool_flag(p, "-t", "--tty", dest="tty", help="give the command a terminal")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="CMD")
    p.set_defaults(func=_exec)


def _add_restart(sub: _Subparsers) -> None:
    p = sub.add_parser("restart", help="stop containers if they run, then start them again")
    p.add_argument("-t", "--time", type=float, metavar="SECS",
                   help="seconds stop waits before SIGKILL (default: the container's "
                        "--stop-timeout, 10)")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.set_defaults(func=_restart)


def _add_wait(sub: _Subparsers) -> None:
    p = sub.add_parser("wait", help="wait for containers to exit; print their exit codes")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.set_defaults(func=_wait)


def _attach(args: argparse.Namespace) -> int:
    """The container's output until it exits; its exit status (Docker's ``attach``)."""
    from secpod.sandbox import attach

    code = attach.attach(args.container, sig_proxy=args.sig_proxy, stdin=not args.no_stdin)
    return code if code >= 0 else 125


def _add_attach(sub: _Subparsers) -> None:
    p = sub.add_parser("attach", help="follow a running container's output until it exits")
    p.add_argument("container", metavar="CONTAINER")
    bool_flag(p, "--sig-proxy", dest="sig_proxy", default=True,
              help="pass signals (Ctrl-C, ...) on to the container (default; recorded)")
    p.add_argument("--no-stdin", action="store_true",
                   help="do not attach stdin (attached only to a container made with -i; "
                        "secpod exec -it CONTAINER sh gives a shell in any)")
    p.set_defaults(func=_attach)


def _add_top(sub: _Subparsers) -> None:
    p = sub.add_parser("top", help="the processes of a running container")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_top)


def _add_rename(sub: _Subparsers) -> None:
    p = sub.add_parser("rename", help="give a container another name")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("name", metavar="NEW_NAME")
    p.set_defaults(func=_rename)


def _add_inspect(sub: _Subparsers) -> None:
    p = sub.add_parser("inspect", help="a container's record, settings and state as JSON")
    p.add_argument("-f", "--format", metavar="TEMPLATE",
                   help="a Go template per container, e.g. '{{.State.ExitCode}}' "
                   "(docs/formatting.md)")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.set_defaults(func=_inspect)


def _add_stats(sub: _Subparsers) -> None:
    p = sub.add_parser("stats", help="containers' CPU and memory use (from /proc where no "
                       "cgroup is delegated)")
    bool_flag(p, "--no-stream", dest="no_stream", help="one reading, then exit")
    bool_flag(p, "-a", "--all", dest="all", help="include containers that do not run")
    p.add_argument("--format", metavar="TEMPLATE",
                   help="a Go template per container (.ID .Name .CPUPerc .MemUsage .MemPerc "
                        ".PIDs), 'table TEMPLATE', or json (with --no-stream)")
    p.add_argument("containers", nargs="*", metavar="CONTAINER")
    p.set_defaults(func=_stats)


def _add_pause(sub: _Subparsers) -> None:
    p = sub.add_parser("pause", help="freeze a container's processes (needs the cgroup "
                       "freezer: refused where no cgroup is delegated to you)")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.set_defaults(func=_pause)


def _add_unpause(sub: _Subparsers) -> None:
    p = sub.add_parser("unpause", help="thaw a paused container")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.set_defaults(func=_pause)


def _add_container_cleanup(sub: _Subparsers) -> None:
    # Called back by the monitor (conmon's exit command); not for people.
    p = sub.add_parser("container-cleanup")
    p.add_argument("--restart", action="store_true")
    p.add_argument("container")
    p.set_defaults(func=_cleanup)


# Each command's parser, in the order of `secpod --help`.
PARSERS = {
    "run": _add_run,
    "create": _add_create,
    "start": _add_start,
    "restart": _add_restart,
    "wait": _add_wait,
    "attach": _add_attach,
    "rename": _add_rename,
    "top": _add_top,
    "ps": _add_ps,
    "logs": _add_logs,
    "stop": _add_stop,
    "kill": _add_kill,
    "rm": _add_rm,
    "exec": _add_exec,
    "inspect": _add_inspect,
    "stats": _add_stats,
    "pause": _add_pause,
    "unpause": _add_unpause,
    "container-cleanup": _add_container_cleanup,
}
