"""Output helpers: data to stdout (text tables or JSON), status to stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any


def emit_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")


def emit_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    from secpod._text import table_lines

    for line in table_lines(headers, rows):
        print(line)


def status(message: str) -> None:
    """Progress and status for a person: stderr, never stdout."""
    print(message, file=sys.stderr, flush=True)


def emit_formatted(fmt: str, items: Sequence[Any], *, json_lines: bool = False,
                   headers: dict[str, str] | None = None) -> None:
    """``--format``: a Go template per item (secpod/gotemplate.py; ``table ...`` adds
    aligned headers), or ``json``: the items as one JSON list, or with ``json_lines``
    one compact object per line, as Docker's listings print them."""
    from secpod.gotemplate import compile_template, is_json_format, render_table

    if is_json_format(fmt):
        if json_lines:
            for item in items:
                print(json.dumps(item, separators=(",", ":"), default=str))
        else:
            emit_json(list(items))
        return
    from secpod._text import printable

    template = compile_template(fmt, header_names=headers)
    sys.stdout.write(render_table(template, items, escape=printable))
