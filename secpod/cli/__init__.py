"""The ``secpod`` command: parse, call the library, print. No logic lives here.

Exit codes: 0 success; 1 an error secpod explains (message and hint on
stderr) or, for checks such as ``verify`` and ``lint``, a negative verdict;
2 bad usage; a container's own exit status for ``run`` and ``exec``
(125 when secpod itself failed before the container ran, 126 when the
command cannot be invoked, 127 when it is not found, as Docker does).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from secpod import __version__
from secpod.cli import _audit, _containers, _images, _policies, _signing, _system
from secpod.errors import Error

_AREAS = (_system, _images, _containers, _policies, _signing, _audit)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="secpod",
        description="Rootless, daemonless container sandbox with signed images and an audit trail.",
    )
    parser.add_argument("--version", action="version", version=f"secpod {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show a traceback when something fails")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for area in _AREAS:
        area.register(sub)
    return parser


def _refuse_root(command: str) -> None:
    """Refuse root and setuid/setgid invocations for every command that is not marked
    ``allow_root`` (doctor, and the administrator's own commands); audited."""
    from secpod.errors import RootRefused
    from secpod.sandbox.preflight import refuse_root

    try:
        refuse_root()
    except RootRefused as e:
        from secpod import audit

        audit.record("preflight.refused", "refused", reason=e.message,
                     details={"command": command})
        raise


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if not getattr(args, "allow_root", False):
            _refuse_root(args.command)
        code = args.func(args)
    except Error as e:
        if args.verbose:
            import traceback

            traceback.print_exc()
        print(f"secpod: error: {e.message}", file=sys.stderr)
        if e.hint:
            print(f"hint: {e.hint}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 141
    return int(code or 0)
