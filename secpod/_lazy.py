"""Names a module re-exports from modules it loads only when one is asked for (PEP 562).

Packages and modules on the way of a `secpod run` keep rarely needed parts (archive
machinery, linters, certificate roots, the rarer policy classes) out of its imports,
yet still offer them under their usual names (docs/adr/0004-startup-budget.md).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any


def reexports(owner: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for the module ``owner``: ``name`` is taken from the module
    ``where[name]`` (a full module name), imported on first use and then kept in ``owner``.
    Any other name raises AttributeError, as for a module without the hook.
    """
    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {owner!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[owner], name, value)
        return value

    return __getattr__
