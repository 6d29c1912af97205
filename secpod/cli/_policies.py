"""Policy commands: ``profile ls|show|diff|lint|export|learn``, ``lint``,
``system install-apparmor``.

Exit codes: 0 success; 1 an error, or (``lint``, ``profile lint``) findings; 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from secpod.cli._output import emit_json, emit_table, status

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    _Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]
    from typing import Any

    Handler = Callable[[argparse.Namespace], int]
    Inner = Callable[[argparse.Namespace], tuple[int, dict[str, Any]]]
_FORMATS = ("oci", "k8s", "seccomp", "apparmor", "selinux-cil")  # policies.export.FORMATS


def _audited(action: str) -> Callable[[Inner], Handler]:
    """Record one audit record per command: ok, refused or error (then re-raise)."""
    def wrap(func: Inner) -> Handler:
        def handler(args: argparse.Namespace) -> int:
            from secpod import audit
            from secpod.errors import Error, Refused

            try:
                code, details = func(args)
            except Error as e:
                audit.record(action, "refused" if isinstance(e, Refused) else "error",
                             reason=e.message, profile=getattr(args, "name", None),
                             details={"args": _args_of(args)})
                raise
            audit.record(action, "ok", profile=getattr(args, "name", None),
                         details={"args": _args_of(args), **(details or {})})
            return int(code)
        return handler
    return wrap


def _args_of(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items()
            if k not in ("func", "allow_root", "verbose", "command", "profile_command",
                         "system_command")}


def _host() -> Any:
    from secpod.sandbox.host import probe

    return probe()


# --- profile ls / show / diff ----------------------------------------------------


@_audited("profile.ls")
def _ls(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    from secpod.errors import Error
    from secpod.policies import profile as pm

    rows = []
    seen: dict[str, str] = {}
    for name, kind, path in pm.available():
        row: dict[str, Any] = {"name": name, "kind": kind, "source": str(path)}
        if name in seen:
            row["error"] = f"reuses the name of the {seen[name]} profile; it is ignored"
        else:
            seen[name] = kind
            try:
                p = pm.load(name)
                row["description"] = p.description
                row["extends"] = list(p.chain[1:])
            except Error as e:
                row["error"] = e.message
        rows.append(row)
    if args.json:
        emit_json(rows)
    else:
        emit_table(["NAME", "KIND", "EXTENDS", "DESCRIPTION"],
                   [[r["name"], r["kind"], ",".join(r.get("extends", [])) or "-",
                     r.get("description") or f"ERROR: {r.get('error')}"] for r in rows])
    return 0, {"count": len(rows)}


def _show_data(name: str) -> dict[str, Any]:
    from secpod.policies import load
    from secpod.policies.export import confinement_of

    prof = load(name)
    data = prof.settings()
    host = _host()
    conf = confinement_of(prof, host)
    data["on_this_host"] = {"seccomp": conf.summary["seccomp"],
                            "unenforced": list(conf.unenforced),
                            "profile_hash": conf.profile_hash}
    return data


def _print_settings(data: dict[str, Any], indent: str = "") -> None:
    for key, value in data.items():
        if isinstance(value, dict) and value:
            print(f"{indent}{key}:")
            _print_settings(value, indent + "  ")
        elif isinstance(value, list):
            print(f"{indent}{key}: {', '.join(str(v) for v in value) if value else '-'}")
        else:
            print(f"{indent}{key}: {'-' if value is None or value == {} else value}")


@_audited("profile.show")
def _show(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    data = _show_data(args.name)
    if args.json:
        emit_json(data)
    else:
        _print_settings(data)
    return 0, {}


@_audited("profile.diff")
def _diff(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    from secpod.policies import compare, load

    a, b = load(args.a), load(args.b)
    arch = _host().arch
    rows = compare.diff(a, b)
    a_weaker = compare.weaker(a, b, arch)
    b_weaker = compare.weaker(b, a, arch)
    if args.json:
        emit_json({"a": a.name, "b": b.name,
                   "differences": [{"setting": s, "a": x, "b": y} for s, x, y in rows],
                   "a_weaker_than_b": a_weaker, "b_weaker_than_a": b_weaker})
    else:
        emit_table(["SETTING", a.name.upper(), b.name.upper()],
                   [[s, json.dumps(x), json.dumps(y)] for s, x, y in rows])
        for first, second, reasons in ((a, b, a_weaker), (b, a, b_weaker)):
            verdict = "yes" if not reasons else "no: " + "; ".join(reasons)
            print(f"\n{first.name} at least as strict as {second.name}: {verdict}")
    return 0, {"differences": len(rows)}


# --- lint ----------------------------------------------------------------------


def _report_findings(findings: list[Any], doc: dict[str, Any], what: str,
                     as_json: bool) -> tuple[int, dict[str, Any]]:
    """Print ``findings`` (``doc`` plus them with --json); exit 1 when there are any."""
    if as_json:
        emit_json({**doc, "findings": [f.as_dict() for f in findings]})
    elif not findings:
        print(f"{what}: no findings")
    else:
        emit_table(["ID", "SEVERITY", "TITLE", "DETAIL"],
                   [[f.id, f.severity, f.title, f.detail] for f in findings])
    return (1 if findings else 0), {"findings": [f.id for f in findings]}


@_audited("lint")
def _lint(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    from secpod._files import read_limited
    from secpod.errors import MalformedInput
    from secpod.policies import lint_config

    path = Path(args.config)
    try:
        text = read_limited(path, 16 << 20).decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise MalformedInput(f"cannot read {path}: {e}",
                             hint="give the path of an OCI runtime config.json") from e
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise MalformedInput(f"{path}: line {e.lineno} column {e.colno}: not JSON: {e.msg}",
                             hint="give the path of an OCI runtime config.json") from e
    return _report_findings(lint_config(config, args.profile),
                            {"config": str(path), "profile": args.profile}, str(path), args.json)


@_audited("profile.lint")
def _profile_lint(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    from secpod.policies import lint_profile, load_file

    path = Path(args.file)
    return _report_findings(lint_profile(load_file(path)), {"profile": str(path)}, str(path),
                            args.json)


# --- export --------------------------------------------------------------------


@_audited("profile.export")
def _export(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    from secpod._files import write_atomic
    from secpod.errors import UsageError
    from secpod.policies import export as ex
    from secpod.policies import load

    prof = load(args.name)
    host = _host()
    if args.format == "k8s":
        if not args.out:
            raise UsageError("--format k8s writes two files: give a folder with --out DIR",
                             hint=f"secpod profile export {args.name} --format k8s --out DIR")
        out = Path(args.out)
        if not out.is_dir():
            raise UsageError(f"{out} is not a folder")
        data = ex.k8s(prof, host.arch)
        written = [out / "pod.json"]
        if data["seccomp"] is not None:
            write_atomic(out / data["seccomp_file"], json.dumps(data["seccomp"], indent=2) + "\n")
            written.append(out / data["seccomp_file"])
        write_atomic(out / "pod.json", json.dumps(data["pod"], indent=2) + "\n")
        for w in written:
            status(f"wrote {w}")
        if data["seccomp"] is not None:
            status(f"copy {data['seccomp_file']} to the kubelet's seccomp/profiles/ folder "
                   "on each node")
        return 0, {"format": "k8s", "written": [str(w) for w in written]}
    text = ex.export(prof, args.format, host)
    if args.out:
        write_atomic(Path(args.out), text)
        status(f"wrote {args.out}")
    else:
        sys.stdout.write(text)
    return 0, {"format": args.format}


# --- system install-apparmor ----------------------------------------------------


@_audited("system.install-apparmor")
def _install_apparmor(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    from secpod.policies.apparmor import install

    results = install(Path(args.dir), load=not args.no_load)
    for r in results:
        status(f"{'loaded' if r.loaded else 'wrote'} {r.name} ({r.path})")
    if args.json:
        emit_json([{"name": r.name, "path": str(r.path), "loaded": r.loaded} for r in results])
    return 0, {"profiles": [r.name for r in results]}


@_audited("profile.learn")
def _learn(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    from secpod.policies.learn import learn

    command = tuple(args.command[1:] if args.command[:1] == ["--"] else args.command)
    result = learn(args.image, command, Path(args.out), profile=args.profile)
    status(f"wrote {args.out}: {len(result.syscalls)} syscalls "
           f"(the workload exited {result.exit_status})")
    if args.json:
        emit_json({"out": args.out, "syscalls": list(result.syscalls),
                   "exit_status": result.exit_status})
    return 0, {"syscalls": len(result.syscalls), "exit_status": result.exit_status}


def _add_profile(sub: _Subparsers) -> None:
    p = sub.add_parser("profile", help="inspect, compare, check and export security profiles")
    psub = p.add_subparsers(dest="profile_command", metavar="SUBCOMMAND")
    psub.required = True

    q = psub.add_parser("ls", help="list the profiles you can use")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_ls, allow_root=True)

    q = psub.add_parser("show", help="a profile's effective settings (inheritance resolved)")
    q.add_argument("name", metavar="NAME")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_show, allow_root=True)

    q = psub.add_parser("diff", help="compare the effective settings of two profiles")
    q.add_argument("a", metavar="A")
    q.add_argument("b", metavar="B")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_diff, allow_root=True)

    q = psub.add_parser("lint", help="check a profile file before it is used (exit 1 on findings)")
    q.add_argument("file", metavar="FILE")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_profile_lint, allow_root=True)

    q = psub.add_parser("export", help="write a profile for other tools")
    q.add_argument("name", metavar="NAME")
    q.add_argument("--format", required=True, choices=_FORMATS)
    q.add_argument("-o", "--out", metavar="PATH",
                   help="write here instead of stdout (a folder for --format k8s)")
    q.set_defaults(func=_export, allow_root=True)

    q = psub.add_parser("learn", help="run a workload, record its syscalls, and write a "
                                      "minimal seccomp profile")
    q.add_argument("--out", required=True, metavar="FILE", help="the profile to write")
    q.add_argument("--profile", default="default",
                   help="the profile to run under while learning (default: default)")
    q.add_argument("--json", action="store_true")
    q.add_argument("image", metavar="IMAGE")
    q.add_argument("command", nargs=argparse.REMAINDER, metavar="CMD")
    q.set_defaults(func=_learn)


def _add_lint(sub: _Subparsers) -> None:
    q = sub.add_parser("lint", help="check an OCI config.json against the CIS container items "
                                    "(exit 1 on findings)")
    q.add_argument("config", metavar="CONFIG.json")
    q.add_argument("--profile", help="also check it against this profile")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_lint, allow_root=True)


def _add_system(sub: _Subparsers) -> None:
    system = sub.add_parser("system", help="host administration")
    ssub = system.add_subparsers(dest="system_command", metavar="SUBCOMMAND")
    ssub.required = True
    q = ssub.add_parser("install-apparmor",
                        help="write and load secpod's AppArmor profiles (as root)")
    q.add_argument("--dir", default="/etc/apparmor.d", help="where to write the profiles")
    q.add_argument("--no-load", action="store_true",
                   help="write the files only (apparmor_parser -Q -K checks them)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_install_apparmor, allow_root=True)
    from secpod.cli._prune import add_system_commands

    add_system_commands(ssub)


# Each command's parser, in the order of `secpod --help`.
PARSERS = {
    "profile": _add_profile,
    "lint": _add_lint,
    "system": _add_system,
}
