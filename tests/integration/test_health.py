"""Health checks with real crun: run in the container, status in ps and inspect, the
action on failure, the audit records and events."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import User
from tests.integration.conftest import audit_records

pytestmark = [pytest.mark.crun, pytest.mark.userns]


def _inspect(user: User, name: str) -> dict[str, Any]:
    return json.loads(user.run("inspect", name, check=True).stdout)[0]


def test_a_check_by_hand(user: User, busybox: str) -> None:
    user.run("run", "-d", "--name", "h", "--health-cmd", "test -e /tmp/ok",
             "--health-interval", "1h", "--health-retries", "2", busybox, "sleep", "60",
             check=True)
    info = _inspect(user, "h")
    assert info["State"]["Health"]["Status"] == "starting"
    assert info["Config"]["Healthcheck"] == {
        "Test": ["CMD-SHELL", "test -e /tmp/ok"], "Interval": 3600 * 10**9,
        "Timeout": 30 * 10**9, "StartPeriod": 0, "Retries": 2}
    assert "(health: starting)" in user.run("ps", check=True).stdout
    r = user.run("healthcheck", "run", "h")
    assert r.returncode == 1 and r.stdout == "starting\n", r.stderr
    r = user.run("healthcheck", "run", "h")
    assert r.returncode == 1 and r.stdout == "unhealthy\n", r.stderr
    assert "(unhealthy)" in user.run("ps", check=True).stdout
    health = _inspect(user, "h")["State"]["Health"]
    assert health["Status"] == "unhealthy" and health["FailingStreak"] == 2
    assert [e["ExitCode"] for e in health["Log"]] == [1, 1]
    user.run("exec", "h", "touch", "/tmp/ok", check=True)
    r = user.run("healthcheck", "run", "h")
    assert r.returncode == 0 and r.stdout == "healthy\n", r.stderr
    assert "(healthy)" in user.run("ps", check=True).stdout
    recs = [x for x in audit_records(user) if x["action"] == "container.healthcheck"]
    assert [(x["details"]["health_status"], x["details"]["changed"], x["exit_status"])
            for x in recs] == [("starting", False, 1), ("unhealthy", True, 1),
                               ("healthy", True, 0)]
    ev = user.run("events", "--filter", "event=health_status", "--format", "{{.Action}}",
                  check=True)
    assert ev.stdout.splitlines() == ["health_status: unhealthy", "health_status: healthy"]
    # a container without a check, and one not running
    user.run("run", "-d", "--name", "plain", busybox, "sleep", "60", check=True)
    r = user.run("healthcheck", "run", "plain")
    assert r.returncode == 2 and "has no health check" in r.stderr
    folder = Path(_inspect(user, "h")["Secpod"]["bundle"]).parent
    pid = int((folder / "health.scheduler").read_text().split()[0])
    assert Path(f"/proc/{pid}").exists()
    user.run("stop", "-t", "1", "h", check=True)
    r = user.run("healthcheck", "run", "h")
    assert r.returncode == 1 and "is not running" in r.stderr
    # the check loop (every hour here) ended with the container, not an hour later
    for _ in range(50):
        if not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text(
                ).rpartition(")")[2].split()[:1]:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the health check loop outlived the container")


def test_an_unhealthy_container_is_killed_on_schedule(user: User, busybox: str) -> None:
    user.run("run", "-d", "--name", "sick", "--health-cmd", "exit 1", "--health-interval",
             "0.5s", "--health-retries", "2", "--health-on-failure", "kill", busybox,
             "sleep", "60", check=True)
    deadline = time.monotonic() + 30
    while _inspect(user, "sick")["State"]["Status"] != "exited":
        assert time.monotonic() < deadline, "not killed"
        time.sleep(0.3)
    info = _inspect(user, "sick")
    assert info["State"]["Health"]["Status"] == "unhealthy"
    assert info["Secpod"]["stopped_by"] == "kill"
    actions = [x["action"] for x in audit_records(user) if x["container"]["name"] == "sick"]
    assert actions.count("container.healthcheck") == 2
    assert actions.index("container.kill") > actions.index("container.healthcheck")
    time.sleep(1.5)  # the scheduler ended with the container
    assert [x["action"] for x in audit_records(user)
            if x["container"]["name"] == "sick"].count("container.healthcheck") == 2


@pytest.mark.parametrize(("args", "words"), [
    (["--health-on-failure", "explode"], "invalid --health-on-failure 'explode'"),
    (["--health-cmd", "true", "--health-interval", "5"], "--health-interval: invalid duration"),
    (["--health-cmd", "true", "--health-retries", "0"], "--health-retries '0'"),
    (["--no-healthcheck", "--health-cmd", "true"], "--no-healthcheck and --health-* flags"),
    (["--health-on-failure", "kill"], "--health-on-failure needs a health check"),
])
def test_bad_health_flags(user: User, busybox: str, args: list[str], words: str) -> None:
    r = user.run("run", "-d", *args, busybox, "true")
    assert r.returncode == 2 and words in r.stderr, r.stderr
    assert user.run("ps", "-a", "-q").stdout.strip() == ""
