"""The ``secpod`` command: parse, call the library, print. No logic lives here.

Exit codes: 0 success; 1 an error secpod explains (message and hint on
stderr) or, for checks such as ``verify`` and ``lint``, a negative verdict;
2 bad usage; a container's own exit status for ``run`` and ``exec``
(125 when secpod itself failed before the container ran, 126 when the
command cannot be invoked, 127 when it is not found, as Docker does).
"""

from __future__ import annotations

import gc
import importlib
import sys
from collections.abc import Iterator, Sequence
from types import ModuleType

from secpod import __version__
from secpod.errors import Error, Interrupted

TYPE_CHECKING = False  # argparse is imported where a parser is built: not for --version
if TYPE_CHECKING:
    import argparse
    from typing import Any

# Each area module lists its own commands (PARSERS). Only the area of the command
# being run is imported (start-up time); help and unknown commands build them all.
# tests/unit/test_cli_areas.py checks this table against each area's PARSERS.
_AREAS: dict[str, tuple[str, ...]] = {
    "_system": ("doctor", "version", "info"),
    "_images": ("image", "save", "load", "history"),
    "_containers": ("run", "create", "start", "restart", "wait", "attach", "rename", "top",
                    "ps", "logs", "stop", "kill", "rm", "exec", "inspect", "stats", "pause",
                    "unpause", "container-cleanup"),
    "_policies": ("profile", "lint", "system"),
    "_signing": ("key", "sign", "attest", "verify", "verify-bundle", "trust"),
    "_audit": ("audit",),
    "_registry": ("pull", "push", "login", "logout"),
    "_prune": ("container-prune",),
    "_network": ("port",),
    "_volumes": ("volume",),
    "_storage": ("cp", "diff", "commit"),
    "_services": ("events", "generate", "healthcheck"),
    "_kube": ("kube",),
    "_pods": ("pod",),
}


# Docker's and Podman's other spellings of secpod's commands (`alias docker=secpod`),
# rewritten to secpod's before parsing, so that each still builds only its own parser:
# `container ls` is `ps`, `container rm X` is `rm X`, `images` is `image ls`, ...
_CONTAINER_WORDS = {"ls": "ps", "list": "ps", "remove": "rm"}
_IMAGE_WORDS = {"list": "ls", "remove": "rm"}
_SHORTHANDS = {"images": ["image", "ls"], "rmi": ["image", "rm"], "tag": ["image", "tag"],
               "untag": ["image", "untag"]}


def canonical(argv: Sequence[str]) -> list[str]:
    """``argv`` with Docker's group and shorthand spellings replaced by secpod's."""
    words = list(argv)
    at = next((i for i, w in enumerate(words) if w not in ("-v", "--verbose")), len(words))
    head, rest = words[:at], words[at:]
    if not rest:
        return words
    if rest[0] == "container" and len(rest) > 1:
        word = _CONTAINER_WORDS.get(rest[1], rest[1])
        if word in _AREAS["_containers"] or word in _AREAS["_storage"]:
            return [*head, word, *rest[2:]]
        if word == "prune":
            return [*head, "container-prune", *rest[2:]]
    if rest[0] == "image" and len(rest) > 1 and rest[1] in ("save", "load", "history"):
        return [*head, *rest[1:]]
    if rest[0] == "image" and len(rest) > 1 and rest[1] in _IMAGE_WORDS:
        return [*head, "image", _IMAGE_WORDS[rest[1]], *rest[2:]]
    if rest[0] in _SHORTHANDS:
        return [*head, *_SHORTHANDS[rest[0]], *rest[1:]]
    return words


# Commands for secpod's own use or reached only through another spelling: not listed
# in `secpod --help` (they have no help text) nor in the "invalid choice" message.
_HIDDEN = frozenset({"container-cleanup", "container-prune"})


class _Choices(dict):  # type: ignore[type-arg]
    """The command table as argparse keeps it; iterating (what its "choose from" message
    does) leaves the hidden commands out, looking one up still finds them."""

    def __iter__(self) -> Iterator[str]:
        return (k for k in dict.__iter__(self) if k not in _HIDDEN)


def _area(name: str) -> ModuleType:
    return importlib.import_module(f"secpod.cli.{name}")


def _command_word(argv: Sequence[str]) -> str | None:
    for word in argv:
        if word in ("-v", "--verbose"):
            continue
        return None if word.startswith("-") else word
    return None


def _bind_translations() -> None:
    """Look argparse's message catalogue up once, not on each of its ~100 calls.

    argparse calls ``gettext.gettext`` for every help and usage string, and each
    call searches the locale folders again (about 1,200 ``stat`` calls for one
    parser). The translation found is the same one gettext would find each time.
    """
    import argparse
    import gettext

    translation = gettext.translation(gettext.textdomain(), fallback=True)
    argparse._ = translation.gettext  # type: ignore[attr-defined]
    argparse.ngettext = translation.ngettext  # type: ignore[attr-defined]


_width: list[int] = []


def _terminal_width() -> int:
    """What shutil.get_terminal_size() says of the width, without importing shutil (and
    bz2 and lzma with it) on every command: $COLUMNS, else the terminal, else 80. Looked
    up once: argparse makes a formatter for every argument it adds."""
    if not _width:
        import os

        try:
            _width.append(int(os.environ["COLUMNS"]))
        except (KeyError, ValueError):
            try:
                _width.append(os.get_terminal_size(sys.__stdout__.fileno()).columns)  # type: ignore[union-attr]
            except (AttributeError, ValueError, OSError):
                _width.append(80)
    return _width[0]


def _parser_class() -> type[argparse.ArgumentParser]:
    """ArgumentParser whose help formatter is given the width: argparse builds a formatter
    for every argument added and would import shutil to measure the terminal. The
    sub-parsers are of the same class (argparse's default)."""
    import argparse

    class Formatter(argparse.HelpFormatter):
        def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                     width: int | None = None) -> None:
            super().__init__(prog, indent_increment, max_help_position,
                             width if width is not None else _terminal_width() - 2)

    class Parser(argparse.ArgumentParser):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("formatter_class", Formatter)
            super().__init__(*args, **kwargs)

    return Parser


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``command``, only the area that owns it is imported (and argparse
    only here: not for `secpod --version`)."""
    _bind_translations()
    parser = _parser_class()(
        prog="secpod",
        description="Rootless, daemonless container sandbox with signed images and an audit trail.",
    )
    parser.add_argument("--version", action="version", version=f"secpod {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show a traceback when something fails")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    # Each area lists its commands' parser builders (PARSERS); a command being run
    # builds only its own (argparse spends ~0.1 ms on each argument).
    owners = [a for a, cmds in _AREAS.items() if command in cmds]
    for name in owners or list(_AREAS):
        for word, add in _area(name).PARSERS.items():
            if not owners or word == command:
                add(sub)
    sub.choices = sub._name_parser_map = _Choices(sub.choices)
    return parser


def _refuse_root(command: str, *, allow_root: bool) -> None:
    """Refuse setuid/setgid invocations for every command (ids dropped first, so nothing
    is written with borrowed ids), and root for every command not marked ``allow_root``
    (doctor, and the administrator's own commands); audited."""
    from secpod.errors import RootRefused
    from secpod.sandbox.preflight import refuse_root, refuse_setid_invocation

    try:
        refuse_setid_invocation()
        if not allow_root:
            refuse_root()
    except RootRefused as e:
        from secpod import audit

        audit.record("preflight.refused", "refused", reason=e.message,
                     details={"command": command})
        raise


def entry() -> None:
    """The ``secpod`` command (the console script, and ``python -m secpod``).

    A command lives for a fraction of a second and loads about 200 modules. With the
    default threshold (700 allocations) the cyclic collector walks the growing heap
    over and over while they load; at exit it walks all of it once more. Collecting
    every 50,000 allocations, and freezing what is alive when the command is done
    (the interpreter's exit then skips it), takes about a tenth off a `secpod run`.
    Commands that keep running (a foreground container, ``logs -f``, the collector)
    still collect, less often.
    """
    gc.set_threshold(50_000, 20, 20)
    code = 1
    try:
        code = main()
    finally:
        code = _flush_audit(code)
    gc.freeze()
    sys.exit(code)


def _flush_audit(code: int) -> int:
    """Sync audit records a command wrote with ``durable=False`` and did not flush itself
    (a failure on the way): the last thing before the process ends. A command whose
    records cannot be made durable does not end as a success."""
    log = sys.modules.get("secpod.audit._log")
    if log is None:
        return code
    try:
        log.flush()
    except Error as e:
        print(f"secpod: error: {e.message}", file=sys.stderr)
        if e.hint:
            print(f"hint: {e.hint}", file=sys.stderr)
        return code or e.exit_code
    return code


def main(argv: Sequence[str] | None = None) -> int:
    words = canonical(sys.argv[1:] if argv is None else argv)
    if words == ["--version"]:
        print(f"secpod {__version__}")
        return 0
    parser = build_parser(_command_word(words))
    args = parser.parse_args(words)
    try:
        _refuse_root(args.command, allow_root=getattr(args, "allow_root", False))
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
    except Interrupted as e:
        print(f"secpod: interrupted by signal {e.signum}; what it was making was removed",
              file=sys.stderr)
        return e.exit_code
    except BrokenPipeError:
        return 141
    return int(code or 0)
