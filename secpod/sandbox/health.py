"""Health checks without a daemon (``--health-*``, the image's ``Healthcheck``;
docs/services.md).

A check is an ``exec`` in the container with its main process's confinement (the
process spec of the checked bundle, as ``secpod exec`` uses), bounded by the timeout.
Its result updates the record's ``health`` under the container's lock with Docker's
rules: ``starting`` until the first success (failures within the start period do not
count), ``healthy`` after a success, ``unhealthy`` after ``retries`` failures in a row;
the last five results are kept (``inspect``'s ``State.Health.Log``). Each check is one
audit record (``container.healthcheck``, its status and whether it changed; a change is
a ``health_status`` event). On becoming unhealthy, ``--health-on-failure`` acts: kill,
stop or restart the container (each recorded as itself).

While the container runs, ``sh -c 'while sleep INTERVAL; do secpod healthcheck run
--scheduled ID ...'`` runs the checks (started with the container, by ``start`` and by
a policy's restart); the exit's record ends it (its pid and start time are in the
container's folder), and failing that, the first tick after the container stopped. A check
that times out has its ``exec`` killed; a process it started inside the container may
outlive it (the runtime's exec gives no way to kill the process group it made).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time

from secpod.errors import Conflict, Error, UsageError
from secpod.sandbox import events, state

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

    from secpod.sandbox.environment import Environment
    from secpod.sandbox.state import Container
    from secpod.spec import Health

DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
LOG_KEEP = 5
OUTPUT_MAX = 4096          # Docker keeps at most 4 KiB of a check's output
NOT_RUNNING = 3            # `healthcheck run --scheduled`: the container stopped
SCHEDULER = "health.scheduler"  # in the container's folder: the loop's pid and start time


def resolve(asked: Health | None, image_config: dict[str, Any]) -> dict[str, Any]:
    """The container's health check from the flags and the image's ``Healthcheck``
    (times there in nanoseconds, 0 for the default); {} for none. Raises UsageError."""
    img = image_config.get("Healthcheck") or {}
    if not isinstance(img, dict):
        img = {}
    test = list(asked.test) if asked is not None and asked.test else list(img.get("Test") or [])
    if not test or test[0] == "NONE":
        if asked is not None and asked.on_failure != "none" and test[:1] != ["NONE"]:
            raise UsageError("--health-on-failure needs a health check",
                             hint="give --health-cmd, or use an image with a Healthcheck")
        return {}
    if test[0] not in ("CMD", "CMD-SHELL") or len(test) < 2 or not all(
            isinstance(w, str) for w in test):
        raise UsageError(f"the health check {test!r} is not one secpod can run",
                         hint="a Healthcheck Test is [\"CMD\", ARG...] or "
                              "[\"CMD-SHELL\", COMMAND]; or --no-healthcheck")

    def pick(mine: float | int | None, key: str, default: float) -> float:
        if mine is not None:
            return float(mine)
        value = img.get(key)
        return value / 1e9 if isinstance(value, int) and value > 0 else default

    image_retries = img.get("Retries")
    retries: int = DEFAULT_RETRIES
    if asked is not None and asked.retries is not None:
        retries = asked.retries
    elif isinstance(image_retries, int) and image_retries > 0:
        retries = image_retries
    return {
        "test": test,
        "interval": pick(asked.interval if asked else None, "Interval", DEFAULT_INTERVAL),
        "timeout": pick(asked.timeout if asked else None, "Timeout", DEFAULT_TIMEOUT),
        "start_period": pick(asked.start_period if asked else None, "StartPeriod", 0.0),
        "retries": int(retries),
        "on_failure": asked.on_failure if asked is not None else "none",
    }


def initial() -> dict[str, Any]:
    return {"Status": "starting", "FailingStreak": 0, "Log": []}


def schedule(ctr: Container) -> None:
    """Start the loop that runs the checks while the container runs."""
    if not ctr.healthcheck:
        return
    argv = [sys.executable, "-m", "secpod", "healthcheck", "run", "--scheduled", ctr.id]
    # $0 is the interval; the loop ends when a check says the container stopped (3)
    script = 'while sleep "$0"; do "$@"; [ $? -eq 3 ] && exit 0; done'
    proc = subprocess.Popen(
        ["/bin/sh", "-c", script, f"{ctr.healthcheck['interval']:.3f}", *argv],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    # who it is (pid and start time): unschedule() ends this one, never a reused pid
    (ctr.dir / SCHEDULER).write_text(state._process_identity(proc.pid))


def unschedule(ctr: Container) -> None:
    """End the container's check loop (at its exit: it must not wait out an interval)."""
    try:
        marker = (ctr.dir / SCHEDULER).read_text().strip()
        (ctr.dir / SCHEDULER).unlink()
    except FileNotFoundError:
        return
    pid = marker.split()[0] if marker else ""
    if pid.isdigit() and state._process_identity(int(pid)) == marker:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(int(pid), signal.SIGTERM)  # its session: the shell and its sleep


def _command(test: list[str]) -> list[str]:
    return list(test[1:]) if test[0] == "CMD" else ["/bin/sh", "-c", test[1]]


def _exec(ctr: Container, env: Environment, timeout: float) -> tuple[int, str]:
    """Run the check in the container: (exit status, -1 when it timed out; output)."""
    from secpod.sandbox import operations

    config = operations.checked_bundle(ctr, "container.healthcheck")
    process = dict(config["process"])
    process["args"] = _command(ctr.healthcheck["test"])
    process["terminal"] = False
    spec = ctr.dir / f"health-{os.getpid()}.json"
    spec.write_text(json.dumps(process))
    rt = env.runtime_for(ctr)
    try:
        proc = subprocess.Popen([*rt.exec_argv(spec), ctr.id], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            out, _ = proc.communicate(timeout=timeout)
            code = proc.returncode
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            code = -1
            out = f"the check did not end within {timeout:g}s".encode()
    finally:
        with contextlib.suppress(FileNotFoundError):
            spec.unlink()
    return code, out[-OUTPUT_MAX:].decode(errors="replace")


def run_check(ref: str, env: Environment, *, scheduled: bool = False
              ) -> tuple[str, int] | None:
    """Run the container's check once and record it; return (health status, the check's
    exit status). None (``scheduled``) when the container no longer runs. Raises
    UsageError (no check), Conflict (not running, asked by hand)."""
    from secpod.sandbox import operations

    ctr = state.lookup(ref)
    if not ctr.healthcheck:
        raise UsageError(f"container {ctr.name} has no health check",
                         hint="create it with --health-cmd, or from an image with one")
    if operations.status(ctr, env) is not operations.Status.RUNNING:
        if scheduled:
            return None
        raise Conflict(f"container {ctr.name} is not running",
                       hint=f"secpod start {ctr.name}")
    started = time.time()
    code, output = _exec(ctr, env, float(ctr.healthcheck["timeout"]))
    ended = time.time()
    with operations.changing(ctr) as current:
        health = dict(current.health or initial())
        before = health.get("Status")
        try:
            up_since = (_epoch(current.started) if current.started else started)
        except ValueError:
            up_since = started
        in_start = started < up_since + float(current.healthcheck["start_period"])
        if code == 0:
            health["Status"], health["FailingStreak"] = "healthy", 0
        elif not (in_start and before == "starting"):
            health["FailingStreak"] = int(health.get("FailingStreak", 0)) + 1
            if health["FailingStreak"] >= int(current.healthcheck["retries"]):
                health["Status"] = "unhealthy"
        log = list(health.get("Log") or [])[-(LOG_KEEP - 1):]
        log.append({"Start": _stamp(started), "End": _stamp(ended), "ExitCode": code,
                    "Output": output})
        health["Log"] = log
        current.health = health
    status = str(health["Status"])
    changed = status != before
    events.container("container.healthcheck", current, exit_status=code, details={
        "health_status": status, "changed": changed,
        "failing_streak": health["FailingStreak"]})
    if changed and status == "unhealthy":
        _act(current, env)
    return status, code


def _act(ctr: Container, env: Environment) -> None:
    from secpod.sandbox import operations

    action = ctr.healthcheck.get("on_failure", "none")
    try:
        if action == "kill":
            operations.kill(ctr.id, "KILL", env)
        elif action == "stop":
            operations.stop(ctr.id, env=env)
        elif action == "restart":
            operations.restart(ctr.id, env=env)
    except Error as e:  # it ended meanwhile, say: the check's record stands
        print(f"secpod: --health-on-failure {action}: {e.message}", file=sys.stderr)


def _epoch(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _stamp(t: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(t, UTC).isoformat(timespec="microseconds").replace(
        "+00:00", "Z")
