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
