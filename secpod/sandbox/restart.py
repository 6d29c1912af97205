"""Restart policies without a daemon (``--restart``; docs/services.md).

conmon ends when the container ends and runs ``secpod container-cleanup ID``. That
callback records the exit (operations.collect_exit) and then asks :func:`after_exit`
whether the policy covers it. If so the container is marked ``restart_pending`` and the
callback turns itself into a ``sleep`` for Docker's backoff (100 ms, doubling with each
restart in a row, at most a minute, back to 100 ms once a run lasted 10 s) followed by
``secpod container-cleanup --restart ID``, which :func:`relaunch` es the container under
a new conmon. While it waits, nothing but ``sh`` and ``sleep`` is resident (under 1 MB);
while the container runs, conmon alone (about 2 MB).

Each restart is recorded (``container.restart``, with the count, the exit it follows and
the delay) and counted on the record (``restart_count``; ``inspect``'s ``RestartCount``).
``stop``, ``kill`` and ``rm`` end it for every policy: they mark the record
``stopped_by`` (an exit they caused is never restarted) and clear ``restart_pending``
under the container's lock, which :func:`relaunch` re-reads under the same lock, so a
restart that was waiting does not happen. ``always`` and ``unless-stopped`` differ only
at boot, where Docker's daemon starts ``always`` containers again, and ``unless-stopped``
ones that were not stopped by hand: without a daemon, ``secpod start --all --by-policy``
does that (:func:`starts_at_boot`), run at boot by the user unit ``secpod generate systemd
--restart-service`` writes.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime

from secpod.sandbox import events, state
from secpod.sandbox.state import Container

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from secpod.sandbox.environment import Environment

FIRST_DELAY = 0.1      # Docker's restart manager: 100 ms ...
MAX_DELAY = 60.0       # ... doubling, at most a minute ...
RESET_AFTER = 10.0     # ... and back to the start once a run lasted this long


def covers(policy: str, exit_code: int | None, restarts: int) -> bool:
    """Whether ``policy`` runs the container again after it exited with ``exit_code``
    (None: unknown, taken as a failure) having been restarted ``restarts`` times."""
    name, _, count = policy.partition(":")
    if name in ("always", "unless-stopped"):
        return True
    if name == "on-failure":
        return exit_code != 0 and (not count or restarts < int(count))
    return False


def starts_at_boot(policy: str, stopped_by: str | None) -> bool:
    """Whether Docker's daemon would start the container again when it starts: ``always``
    whatever stopped it, ``unless-stopped`` unless ``stop`` or ``kill`` did (an exit of its
    own, a crash, a shutdown of the host do not count as stopped)."""
    name = policy.partition(":")[0]
    return name == "always" or (name == "unless-stopped" and not stopped_by)


def next_delay(previous: float, ran_for: float | None) -> float:
    """Docker's backoff: 100 ms, doubling, at most a minute; reset after a long run."""
    if previous <= 0 or (ran_for is not None and ran_for >= RESET_AFTER):
        return FIRST_DELAY
    return min(previous * 2, MAX_DELAY)


def _seconds_between(start: str | None, end: str | None) -> float | None:
    try:
        return (datetime.fromisoformat(str(end)) - datetime.fromisoformat(str(start))
                ).total_seconds()
    except ValueError:
        return None


def mark(current: Container) -> None:
    """As the exit is recorded (operations.finish, under the container's lock, in the same
    save): mark a detached container for a restart if its policy covers the exit, so that
    nothing ever sees it exited and not restarting in between."""
    if (current.restart_policy == "no" or current.monitor != "conmon" or current.stopped_by
            or not covers(current.restart_policy, current.exit_code, current.restart_count)):
        return
    current.restart_delay = next_delay(current.restart_delay,
                                       _seconds_between(current.started, current.finished))
    current.restart_pending = True


def after_exit(ctr: Container) -> float | None:
    """After the exit is recorded: the delay to wait before the restart :func:`mark`
    decided on; None when the container stays exited."""
    if ctr.restart_policy == "no":
        return None
    with ctr.locked():
        try:
            current = ctr.reload()
        except FileNotFoundError:
            return None
        if not current.restart_pending or current.stopped_by:
            return None
        return current.restart_delay


def wait_then_relaunch(cid: str, delay: float) -> None:
    """Become ``sleep DELAY`` then ``secpod container-cleanup --restart ID`` (never
    returns): the wait costs a shell and a sleep, not a Python interpreter."""
    argv = [sys.executable, "-m", "secpod", "container-cleanup", "--restart", cid]
    # a fixed script; the arguments are passed as "$@", never parsed by the shell
    os.execv("/bin/sh", ["sh", "-c", f'sleep {delay:.3f} && exec "$@"',  # noqa: S606
                         "sh", *argv])


def cancel(ctr: Container, how: str) -> bool:
    """``stop``/``kill``/``rm`` of a container waiting to be restarted: it is not.
    Returns whether a restart was pending."""
    with ctr.locked():
        current = ctr.reload()
        if not current.restart_pending:
            return False
        current.restart_pending = False
        current.stopped_by = how
        current.save()
    return True


def give_up(ctr: Container, reason: str) -> None:
    """The restart cannot happen (the host refuses new containers now): the container
    stays exited, and the record says why."""
    with ctr.locked():
        try:
            current = ctr.reload()
        except FileNotFoundError:
            return
        if not current.restart_pending:
            return
        current.restart_pending = False
        current.save()
    events.container("container.restart", current, "error", reason=reason,
                     details={"restart_count": current.restart_count + 1,
                              "policy": current.restart_policy})


def relaunch(ctr: Container, env: Environment) -> Container | None:
    """Start the container again under a new monitor, if it is still waiting for it
    (re-read under its lock). Returns it, or None when the restart was called off."""
    from secpod.errors import Error
    from secpod.sandbox import operations

    rt = env.runtime_for(ctr)
    with operations.changing(ctr) as current:
        if not current.restart_pending or current.stopped_by:
            current.restart_pending = False
            return None
        previous = current.exit_code
        # restart_pending stays set until the new run has started: `ps` and `inspect`
        # show it restarting, not exited, meanwhile.
        try:
            operations.checked_bundle(current, "container.restart")
            rt.delete(current.id, force=True)
            try:
                current.exit_file.unlink()
            except FileNotFoundError:
                pass
            current.exit_code = None
            current.finished = None
            current.exit_recorded = False
            current.monitor = "conmon"
            current.restart_count += 1
            current.save()  # the new monitor's exit callback reads it
            operations.launch(current, env)
            rt.start(current.id)
        except Error as e:
            current.restart_pending = False
            try:
                rt.delete(current.id, force=True)
            except Error:
                pass  # nothing was made, or the runtime says why below
            current.exit_code, current.finished = previous, current.finished or state.now()
            current.exit_recorded = True
            current.restart_count -= 1
            events.container("container.restart", current, "error", reason=e.message,
                             details={"restart_count": current.restart_count + 1,
                                      "policy": current.restart_policy})
            return None
        current.started = state.now()
        current.restart_pending = False
        if current.healthcheck:
            current.health = {"Status": "starting", "FailingStreak": 0, "Log": []}
    events.container("container.restart", current, exit_status=previous, details={
        "restart_count": current.restart_count, "policy": current.restart_policy,
        "delay": current.restart_delay})
    if current.healthcheck:
        from secpod.sandbox import health

        health.schedule(current)
    return current
