"""Boolean flags as Docker and Podman spell them: ``--rm``, ``--rm=false``."""

from __future__ import annotations

import argparse

# Go's strconv.ParseBool spellings, which Docker and Podman accept after "=".
_TRUE = ("true", "True", "TRUE", "t", "T", "1")
_FALSE = ("false", "False", "FALSE", "f", "F", "0")


def bool_flag(p: argparse.ArgumentParser, *flags: str, dest: str, help: str,
              default: bool | None = False) -> None:
    """``FLAG`` alone is true, ``--LONG=false`` turns it off, and the flag never takes
    the next word as its value (``--read-only IMAGE`` is the flag and the image;
    ``--tls-verify false`` is not a way to say false).

    argparse has no such action: the ``--LONG=VALUE`` spellings are hidden option
    strings of their own (argparse matches a whole option string before it splits "=").
    Short flags keep combining (``-it``).
    """
    p.add_argument(*flags, dest=dest, action="store_const", const=True, default=default,
                   help=help)
    longs = [f for f in flags if f.startswith("--")]
    p.add_argument(*(f"{flag}={v}" for flag in longs for v in _TRUE), dest=dest,
                   action="store_const", const=True, help=argparse.SUPPRESS)
    p.add_argument(*(f"{flag}={v}" for flag in longs for v in _FALSE), dest=dest,
                   action="store_const", const=False, help=argparse.SUPPRESS)
