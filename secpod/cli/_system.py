"""``secpod doctor`` (what this host allows) and ``secpod version``."""

from __future__ import annotations

import argparse
import sys

from secpod.cli._output import emit_json

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    _Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]



def _doctor(args: argparse.Namespace) -> int:
    from secpod.sandbox import doctor

    checks = doctor.run_checks()
    if args.json:
        emit_json(doctor.as_json(checks))
    else:
        marks = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}
        for c in checks:
            print(f"[{marks[c.status]}] {c.name}: {c.detail}")
            if c.hint and c.status != "ok":
                print(f"       fix: {c.hint}")
    failed = [c.name for c in checks if c.status == "fail"]
    if failed:
        print(f"secpod: cannot run containers here: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _add_doctor(sub: _Subparsers) -> None:
    p = sub.add_parser(
        "doctor", help="check what this host allows (exit 1 if containers cannot run)"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_doctor, allow_root=True)


def _version(args: argparse.Namespace) -> int:
    """secpod's version and what it runs on (Docker's and Podman's ``version``)."""
    import platform

    from secpod import __version__

    info = {"Version": __version__, "Python": platform.python_version(),
            "OsArch": f"{platform.system().lower()}/{platform.machine()}",
            "Daemon": "none: secpod has no daemon (each command is the whole tool)"}
    if args.json:
        emit_json({"Client": info})
    else:
        width = max(len(k) for k in info) + 2
        print("\n".join(f"{k + ':':<{width}}{v}" for k, v in info.items()))
    return 0


def _add_version(sub: _Subparsers) -> None:
    p = sub.add_parser("version", help="show secpod's version")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_version, allow_root=True)


def _info(args: argparse.Namespace) -> int:
    """This host and store, in Podman's ``info`` keys (secpod/sandbox/info.py)."""
    from secpod.gotemplate import is_json_format
    from secpod.sandbox import info

    facts = info.collect()
    if args.format is None:
        print(info.as_text(facts))
    elif is_json_format(args.format):
        emit_json(facts)
    else:
        from secpod.cli._output import emit_formatted

        emit_formatted(args.format, [info.go_view(facts)])
    return 0


def _add_info(sub: _Subparsers) -> None:
    p = sub.add_parser("info", help="this host, your store, the runtimes and what is enforced",
                       description="Podman's info keys (host, store, version) with secpod's "
                                   "own facts under secpod. A Go template reads Go's field "
                                   "names, as Podman's do: {{.Host.Arch}}, "
                                   "{{.Store.GraphRoot}}, {{.Host.Security.Rootless}}.")
    p.add_argument("-f", "--format", metavar="json|TEMPLATE",
                   help="json, or a Go template (docs/formatting.md)")
    p.set_defaults(func=_info)


# Each command's parser, in the order of `secpod --help`.
PARSERS = {
    "doctor": _add_doctor,
    "version": _add_version,
    "info": _add_info,
}
