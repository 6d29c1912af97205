"""Signals: the names secpod accepts, and what a signal to secpod itself does while it
makes or runs a container (docs/runner.md, "What a signal to run leaves behind")."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator

from secpod.errors import Interrupted, UsageError

SIGNALS = {
    "HUP": 1,
    "INT": 2,
    "QUIT": 3,
    "KILL": 9,
    "USR1": 10,
    "USR2": 12,
    "TERM": 15,
    "CONT": 18,
    "STOP": 19,
    "WINCH": 28,
}


def normalise(name: str) -> str:
    """``SIGTERM``, ``term``, ``15`` -> ``TERM`` / ``15``: what both runtimes accept
    (runc refuses unknown names, crun ignores them: neither gets one)."""
    text = name.upper().removeprefix("SIG")
    if text.isdigit() and 0 < int(text) < 65:
        return text
    if text not in SIGNALS:
        raise UsageError(f"unknown signal {name!r}", hint="e.g. TERM, KILL, HUP, INT, USR1 or 15")
    return text


def number(sig: str) -> int:
    """The number of a normalised signal."""
    return int(sig) if sig.isdigit() else int(getattr(signal, "SIG" + sig))


@contextlib.contextmanager
def handling(signals: tuple[int, ...], handler: Callable[[int, object], None], *,
             only_default: bool = False) -> Iterator[None]:
    """``handler`` for ``signals`` inside the block, the previous ones after (with
    ``only_default``, only for signals nobody else handles). A handler, never SIG_IGN:
    programs started meanwhile would inherit an ignored signal."""
    saved = {}
    for sig in signals:
        if not only_default or signal.getsignal(sig) is signal.SIG_DFL:
            saved[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old)


def _raise_interrupted(signum: int, _frame: object) -> None:
    raise Interrupted(signum)


def unwinding() -> contextlib.AbstractContextManager[None]:
    """SIGTERM and SIGHUP (a closed terminal) raise Interrupted, as SIGINT raises
    KeyboardInterrupt, so that set-up ends in a listed container or in nothing."""
    return handling((signal.SIGTERM, signal.SIGHUP), _raise_interrupted, only_default=True)


@contextlib.contextmanager
def held() -> Iterator[list[int]]:
    """SIGHUP ignored; SIGINT and SIGTERM noted in the list yielded, for after."""
    noted: list[int] = []

    def note(signum: int, _frame: object) -> None:
        if signum != signal.SIGHUP:
            noted.append(signum)

    with handling((signal.SIGHUP, signal.SIGINT, signal.SIGTERM), note):
        yield noted
