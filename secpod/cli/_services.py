"""Containers as services: ``events`` (from the audit log). docs/services.md."""

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


PARSERS = {
    "events": _add_events,
}
