"""Containers as services: ``events`` (from the audit log), ``generate systemd``.
docs/services.md."""

from __future__ import annotations

import argparse
import sys

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any
    _Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


# --- events ----------------------------------------------------------------------


def _events(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from secpod._text import printable
    from secpod._times import parse_point_nanos
    from secpod.audit import _events

    since = None if args.since is None else parse_point_nanos(args.since, "--since")
    until = None if args.until is None else parse_point_nanos(args.until, "--until")
    keep = _events.selector(args.filter)
    log = Path(args.dir) / "log.jsonl" if args.dir else _events.default_log()
    if args.follow:
        stream = _events.follow(log, since=since, until=until, keep=keep)
    else:
        if not log.exists():
            return 0  # no action recorded yet: no events
        stream = _events.read(log, since=since, until=until, keep=keep)
    fmt = args.format
    out = sys.stdout
    if fmt is None:
        def show(ev: dict[str, Any]) -> str:
            return printable(_events.text_line(ev))
    else:
        from secpod.gotemplate import compile_template, is_json_format

        if is_json_format(fmt):
            def show(ev: dict[str, Any]) -> str:
                return json.dumps(ev, separators=(",", ":"))
        else:
            template = compile_template(fmt)

            def show(ev: dict[str, Any]) -> str:
                return template.render(ev, escape=printable)
    try:
        for ev in stream:
            out.write(show(ev) + "\n")
            if args.follow:
                out.flush()
    except KeyboardInterrupt:
        return 0
    return 0


def _add_events(sub: _Subparsers) -> None:
    p = sub.add_parser(
        "events", help="what happened to containers and images (from the audit log)",
        description="Docker's events, read from your audit log: one line per action that "
        "happened (create, start, die, stop, kill, destroy, ...). Without --follow, the "
        "events recorded so far; with it, then each new one as it is recorded.")
    p.add_argument("--since", metavar="TIME",
                   help="from TIME: a duration back from now (10m, 1h30m), a Unix time, or "
                        "an RFC 3339 time or date")
    p.add_argument("--until", metavar="TIME", help="up to TIME (the same forms)")
    p.add_argument("-f", "--filter", action="append", default=[], metavar="KEY=VALUE",
                   help="container=NAME|ID, event=ACTION, image=NAME, type=container|image "
                        "(a key given twice: either value)")
    p.add_argument("--format", metavar="TEMPLATE",
                   help="json (one object per line) or a Go template, e.g. "
                        "'{{.Time}} {{.Action}} {{.Actor.Attributes.name}}'")
    p.add_argument("--follow", action="store_true",
                   help="keep printing new events (until --until passes, or Ctrl-C)")
    p.add_argument("--dir", help=argparse.SUPPRESS)
    p.set_defaults(func=_events)


# --- generate systemd ------------------------------------------------------------------


def _generate_systemd(args: argparse.Namespace) -> int:
    from pathlib import Path

    from secpod.cli._output import status
    from secpod.services import units

    if args.restart_service == bool(args.container):
        from secpod.errors import UsageError

        raise UsageError("give a CONTAINER or POD, or --restart-service",
                         hint="secpod generate systemd --new web; "
                              "secpod generate systemd --restart-service --files")
    if args.restart_service:
        given = [flag for flag, value in (("--new", args.new), ("--name", args.name),
                                          ("--restart-policy", args.restart_policy),
                                          ("--restart-sec", args.restart_sec)) if value]
        if given:
            from secpod.errors import UsageError

            raise UsageError(f"{', '.join(given)}: a container's unit only; "
                             "--restart-service writes the one fixed unit",
                             hint="secpod generate systemd --restart-service --files")
        made = [units.restart_service_unit()]
    else:
        made = _units_for(args)
    if not args.files:
        sys.stdout.write("\n".join(text for _name, text in made))
        return 0
    for path in units.write_units(made, Path.cwd()):
        print(path)
    names = " ".join(name for name, _text in made)
    status(f"install: cp {names} {units.user_unit_dir()}/ && systemctl --user daemon-reload "
           f"&& systemctl --user enable --now {made[0][0]}")
    if args.restart_service:
        status("and for a start at boot, not at your first login: "
               "loginctl enable-linger $USER")
    return 0


def _units_for(args: argparse.Namespace) -> list[tuple[str, str]]:
    from secpod.errors import NotFound
    from secpod.pods import lifecycle, record
    from secpod.sandbox import state
    from secpod.services import units

    try:  # a container first, then a pod, as Podman looks them up
        made = [units.container_unit(
            state.lookup(args.container), new=args.new, use_name=args.name,
            restart_policy=args.restart_policy, restart_sec=args.restart_sec,
            stop_timeout=args.time, prefix=args.container_prefix, separator=args.separator)]
    except NotFound:
        try:
            pod = record.lookup(args.container)
        except NotFound:
            raise NotFound(f"No such container or pod: {args.container}",
                           hint="secpod ps -a and secpod pod ps list them") from None
        made = units.pod_units(
            pod, lifecycle.members(pod), new=args.new, use_name=args.name,
            restart_policy=args.restart_policy, restart_sec=args.restart_sec,
            stop_timeout=args.time, prefix=args.container_prefix,
            pod_prefix=args.pod_prefix, separator=args.separator)
    return made


def _add_generate(sub: _Subparsers) -> None:
    p = sub.add_parser("generate", help="generate systemd units for containers")
    kinds = p.add_subparsers(dest="kind", metavar="KIND")
    kinds.required = True
    s = kinds.add_parser(
        "systemd", help="systemd units that run a container or a pod as a service",
        description="Print (or with --files write) a systemd unit for CONTAINER: "
        "Type=notify, READY once the container runs, ExecStop through secpod stop. With "
        "--new the unit creates the container when it starts, with the words that created "
        "it, and removes it when it stops. For a POD: pod-NAME.service for the pod, and a "
        "unit per member bound to it.")
    s.add_argument("--new", action="store_true",
                   help="create the container at start and remove it at stop")
    s.add_argument("-n", "--name", action="store_true",
                   help="name the container by its name, not its id (always so with --new)")
    s.add_argument("--restart-policy", metavar="POLICY",
                   help="systemd's Restart= (default: from the container's --restart, "
                        "else on-failure)")
    s.add_argument("--restart-sec", type=int, metavar="SECS", help="systemd's RestartSec=")
    s.add_argument("-t", "--time", type=int, default=10, metavar="SECS",
                   help="stop timeout (default 10)")
    s.add_argument("--files", "-f", action="store_true",
                   help="write CONTAINER-PREFIX-NAME.service in the current folder")
    s.add_argument("--container-prefix", default="container", metavar="PREFIX")
    s.add_argument("--pod-prefix", default="pod", metavar="PREFIX")
    s.add_argument("--separator", default="-", metavar="SEP")
    s.add_argument("--restart-service", action="store_true",
                   help="secpod-restart.service instead: at boot (with loginctl "
                        "enable-linger) it starts the containers whose --restart is always, "
                        "or unless-stopped and not stopped by hand")
    s.add_argument("container", nargs="?", metavar="CONTAINER|POD")
    s.set_defaults(func=_generate_systemd)


# --- healthcheck run ---------------------------------------------------------------------


def _healthcheck(args: argparse.Namespace) -> int:
    from secpod.sandbox import health
    from secpod.sandbox.environment import Environment

    env = Environment.load(check_host=False)
    result = health.run_check(args.container, env, scheduled=args.scheduled)
    if result is None:
        return health.NOT_RUNNING
    status, code = result
    if not args.scheduled:
        print(status)
    return 0 if code == 0 else 1


def _add_healthcheck(sub: _Subparsers) -> None:
    p = sub.add_parser("healthcheck", help="run a container's health check")
    kinds = p.add_subparsers(dest="kind", metavar="KIND")
    kinds.required = True
    r = kinds.add_parser("run", help="run the check once now; print the health status "
                         "(exit 0 when the check passed, 1 when it failed)")
    r.add_argument("--scheduled", action="store_true", help=argparse.SUPPRESS)
    r.add_argument("container", metavar="CONTAINER")
    r.set_defaults(func=_healthcheck)


PARSERS = {
    "events": _add_events,
    "generate": _add_generate,
    "healthcheck": _add_healthcheck,
}
