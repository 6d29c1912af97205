"""The audit record of every action secpod takes.

Everything that acts (import, run, create, start, exec, stop, kill, exit,
rm, sign, verify, refusals) calls :func:`record` exactly once, before the
action's result is reported. Nothing writes the log any other way.
"""

from __future__ import annotations

from secpod.audit._log import record

__all__ = ["record"]
