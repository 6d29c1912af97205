"""``volume create|ls|inspect|rm|prune``: parse, call secpod.sandbox.volumes, print.
Names and JSON to stdout, errors to stderr (docs/volumes.md)."""

from __future__ import annotations

import argparse
import sys

from secpod.cli._flags import bool_flag

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    _Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def _create(args: argparse.Namespace) -> int:
    from secpod.sandbox import volumes
    from secpod.spec.flags import parse_labels

    vol, _ = volumes.create(args.name, parse_labels(args.label))
    print(vol.name)
    return 0


def _ls(args: argparse.Namespace) -> int:
    from secpod.cli._output import emit_formatted, emit_table
    from secpod.sandbox import volumes

    vols = volumes.all_volumes()
    if args.quiet:
        for v in vols:
            print(v.name)
        return 0
    if args.format:
        using = volumes.users()
        rows = [{"Name": v.name, "Driver": volumes.DRIVER, "Mountpoint": str(v.mountpoint),
                 "CreatedAt": v.created, "Scope": "local",
                 "Labels": ",".join(f"{k}={x}" for k, x in sorted(v.labels.items())),
                 "Links": len(using.get(v.name, []))} for v in vols]
        emit_formatted(args.format, rows, json_lines=True)
        return 0
    emit_table(("DRIVER", "VOLUME NAME"), [(volumes.DRIVER, v.name) for v in vols])
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from secpod.cli._output import emit_json
    from secpod.errors import Error
    from secpod.sandbox import volumes

    out, code = [], 0
    using = volumes.users()
    for name in args.names:
        try:
            vol = volumes.get(name)
        except Error as e:
            _error(e)
            code = 1
            continue
        out.append(vol.inspect(using.get(vol.name, [])))
    emit_json(out)
    return code


def _error(e: object) -> None:
    from secpod.errors import Error

    assert isinstance(e, Error)
    print(f"secpod: error: {e.message}", file=sys.stderr)
    if e.hint:
        print(f"hint: {e.hint}", file=sys.stderr)


def _rm(args: argparse.Namespace) -> int:
    from secpod.errors import Error
    from secpod.sandbox import volumes

    if len(args.names) == 1:      # one volume: its error is the command's
        volumes.remove(args.names[0], force=args.force)
        print(args.names[0])
        return 0
    code = 0
    for name in args.names:
        try:
            volumes.remove(name, force=args.force)
            print(name)
        except Error as e:
            _error(e)
            code = 1
    return code


def _prune(args: argparse.Namespace) -> int:
    from secpod.cli._prune import _confirmed, _report
    from secpod.sandbox import volumes

    if not _confirmed(args, "  - all volumes not used by at least one container"):
        return 1
    return _report(volumes.prune())


def _add_volume(sub: _Subparsers) -> None:
    p = sub.add_parser("volume", help="named volumes: create, ls, inspect, rm, prune")
    vsub = p.add_subparsers(dest="volume_command", metavar="COMMAND")
    vsub.required = True
    q = vsub.add_parser("create", help="make a named volume (in your store)")
    q.add_argument("--label", action="append", default=[], metavar="KEY[=VALUE]",
                   help="a label on the volume")
    q.add_argument("name", metavar="NAME")
    q.set_defaults(func=_create)
    q = vsub.add_parser("ls", aliases=["list"], help="list your volumes")
    bool_flag(q, "-q", "--quiet", dest="quiet", help="only the names")
    q.add_argument("--format", metavar="TEMPLATE",
                   help="json (one object a line), or a Go template (.Name .Driver "
                        ".Mountpoint .CreatedAt .Labels .Links)")
    q.set_defaults(func=_ls)
    q = vsub.add_parser("inspect", help="volumes as JSON (with the containers using them)")
    q.add_argument("names", nargs="+", metavar="NAME")
    q.set_defaults(func=_inspect)
    q = vsub.add_parser("rm", aliases=["remove"],
                        help="remove volumes no container uses (their files too)")
    bool_flag(q, "-f", "--force", dest="force",
              help="a missing volume is no error (one in use is still refused)")
    q.add_argument("names", nargs="+", metavar="NAME")
    q.set_defaults(func=_rm)
    q = vsub.add_parser("prune", help="remove every volume no container uses")
    bool_flag(q, "-a", "--all", dest="all",
              help="as Docker's: secpod has only named volumes, so prune removes all "
                   "unused ones either way")
    bool_flag(q, "-f", "--force", dest="force", help="do not ask for confirmation")
    q.set_defaults(func=_prune)


# Each command's parser, in the order of `secpod --help`.
PARSERS = {
    "volume": _add_volume,
}
