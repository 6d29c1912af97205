"""Containers as services with real crun and conmon: restart policies, log drivers and
the logs options (docs/services.md)."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest

from tests.conftest import User
from tests.integration.conftest import audit_records

pytestmark = [pytest.mark.crun, pytest.mark.userns]


def _inspect(user: User, name: str) -> dict[str, Any]:
    return json.loads(user.run("inspect", name, check=True).stdout)[0]


def _until(check: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _settled(user: User, name: str) -> dict[str, Any]:
    """The container once it has exited and no restart is waiting."""
    info: dict[str, Any] = {}

    def done() -> bool:  # secpod's own status: "stopped" until the exit is recorded
        info.update(_inspect(user, name))
        return info["Secpod"]["status"] == "exited" and not info["State"]["Restarting"]

    _until(done)
    return info


# -- restart ---------------------------------------------------------------------------

def test_on_failure_3_restarts_exactly_three_times_and_records_them(user: User,
                                                                      busybox: str) -> None:
    user.run("run", "-d", "--name", "flaky", "--restart", "on-failure:3", busybox,
             "sh", "-c", "echo run; exit 3", check=True)
    info = _settled(user, "flaky")
    time.sleep(1.5)  # a fourth restart would come after 0.8 s
    info = _inspect(user, "flaky")
    recs = [r for r in audit_records(user) if r["container"]["name"] == "flaky"]
    assert info["RestartCount"] == 3 and info["State"]["ExitCode"] == 3, (
        [(r["action"], r["outcome"], r.get("reason"), r.get("details")) for r in recs])
    assert info["HostConfig"]["RestartPolicy"] == {"Name": "on-failure",
                                                   "MaximumRetryCount": 3}
    recs = [r for r in audit_records(user) if r["container"]["name"] == "flaky"]
    restarts = [r for r in recs if r["action"] == "container.restart"]
    assert [r["details"]["restart_count"] for r in restarts] == [1, 2, 3]
    assert all(r["outcome"] == "ok" and r["exit_status"] == 3 for r in restarts)
    # Docker's backoff: 100 ms, doubling
    assert [r["details"]["delay"] for r in restarts] == [0.1, 0.2, 0.4]
    assert [r["action"] for r in recs if r["action"] in ("container.exit",
                                                        "container.restart")] == [
        "container.exit", "container.restart"] * 3 + ["container.exit"]
    # each run's monitor starts a fresh file; the one before is kept rotated
    assert user.run("logs", "flaky", check=True).stdout == "run\n" * 2
    ps = user.run("ps", "-a", "--format", "{{.Names}} {{.Restarts}}", check=True).stdout
    assert "flaky 3" in ps.splitlines()
    events = user.run("events", "--filter", "container=flaky", "--filter", "event=restart",
                      "--format", "{{.Actor.Attributes.restartCount}}", check=True)
    assert events.stdout.split() == ["1", "2", "3"]
    # on-failure does not restart a success
    user.run("run", "-d", "--name", "fine", "--restart", "on-failure", busybox, "true",
             check=True)
    assert _settled(user, "fine")["RestartCount"] == 0


@pytest.mark.parametrize("policy", ["always", "unless-stopped"])
def test_stop_ends_restarting(user: User, busybox: str, policy: str) -> None:
    user.run("run", "-d", "--name", "loop", "--restart", policy, busybox,
             "sh", "-c", "sleep 0.3; exit 0", check=True)
    _until(lambda: _inspect(user, "loop")["RestartCount"] >= 2)
    r = user.run("stop", "-t", "1", "loop")
    assert r.returncode == 0, r.stderr
    info = _settled(user, "loop")
    count = info["RestartCount"]
    time.sleep(2)
    info = _inspect(user, "loop")
    assert info["RestartCount"] == count and info["State"]["Status"] == "exited"
    # a start by hand starts the policy again, from zero
    user.run("start", "loop", check=True)
    _until(lambda: _inspect(user, "loop")["RestartCount"] >= 1)
    assert user.run("rm", "-f", "loop").returncode == 0
    time.sleep(1)
    assert user.run("inspect", "loop").returncode != 0
    assert user.run("ps", "-a", "-q").stdout.strip() == ""


def test_a_long_running_container_is_stopped_not_restarted(user: User, busybox: str) -> None:
    user.run("run", "-d", "--name", "svc", "--restart", "always", busybox, "sleep", "60",
             check=True)
    assert user.run("stop", "-t", "1", "svc").returncode == 0
    time.sleep(1.5)
    info = _inspect(user, "svc")
    assert info["RestartCount"] == 0 and info["State"]["Status"] == "exited"


@pytest.mark.parametrize(("args", "words"), [
    (["--restart", "sometimes"], "invalid --restart 'sometimes'"),
    (["--restart", "always:3"], "only on-failure takes a count"),
    (["--restart", "always", "--rm"], "--restart always and --rm conflict"),
    (["--log-driver", "json-file"], "json-file is not supported: conmon 2.1"),
    (["--log-driver", "syslog"], "unsupported --log-driver 'syslog'"),
    (["--log-opt", "max-file=5"], "secpod keeps exactly two log files"),
    (["--log-opt", "colour=red"], "unsupported --log-opt 'colour=red'"),
    (["--log-opt", "max-size=ten"], "max-size"),
    (["--sdnotify", "container"], "--sdnotify container is not supported yet"),
])
def test_bad_service_flags_are_refused(user: User, busybox: str, args: list[str],
                                       words: str) -> None:
    r = user.run("run", "-d", *args, busybox, "true")
    assert r.returncode == 2 and words in r.stderr, r.stderr  # usage, as every run flag
    assert user.run("ps", "-a", "-q").stdout.strip() == ""


def test_a_restart_policy_needs_a_detached_container(user: User, busybox: str) -> None:
    r = user.run("run", "--restart", "always", busybox, "true")
    assert r.returncode == 2 and "--restart always needs a detached container" in r.stderr
    refused = [x for x in audit_records(user) if x["action"] == "container.run.refused"]
    assert refused and "needs a detached container" in str(refused[-1]["reason"])
    assert user.run("ps", "-a", "-q").stdout.strip() == ""


# -- log drivers ------------------------------------------------------------------------

def test_journald_is_refused_where_there_is_none(user: User, busybox: str) -> None:
    r = user.run("run", "-d", "--name", "j", "--log-driver", "journald", busybox, "true")
    assert r.returncode == 125
    assert "there is no journald here (/run/systemd/journal/socket" in r.stderr, r.stderr
    refused = [x for x in audit_records(user) if x["action"] == "container.run.refused"]
    assert refused and "journald" in str(refused[-1]["reason"])
    assert user.run("ps", "-a", "-q").stdout.strip() == ""


def test_log_driver_none_keeps_no_log(user: User, busybox: str) -> None:
    r = user.run("run", "--name", "quiet", "--log-driver", "none", busybox, "echo", "hi")
    assert r.returncode == 0 and r.stdout == "hi\n", r.stderr
    user.run("run", "-d", "--name", "quiet2", "--log-driver", "none", busybox, "echo", "hi",
             check=True)
    _settled(user, "quiet2")
    for name in ("quiet", "quiet2"):
        info = _inspect(user, name)
        assert info["HostConfig"]["LogConfig"]["Type"] == "none"
        assert open(info["Secpod"]["log_path"]).read() == ""  # noqa: SIM115
        logs = user.run("logs", name)
        assert logs.returncode == 1 and "keeps no log (--log-driver none)" in logs.stderr


def test_log_opt_max_size_bounds_each_file(user: User, busybox: str) -> None:
    user.run("run", "-d", "--name", "small", "--log-opt", "max-size=32k", busybox,
             "sh", "-c", "seq 1 20000", check=True)
    info = _settled(user, "small")
    assert info["Secpod"]["confinement"]["log_size_max"] == 64 * 1024
    from pathlib import Path

    log = Path(info["Secpod"]["log_path"])
    assert log.stat().st_size <= 32 * 1024
    kept = user.run("logs", "small", check=True).stdout
    assert kept and "".join(f"{n}\n" for n in range(1, 20001)).endswith(kept)


# -- logs --since/--until/--tail/--timestamps --------------------------------------------

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z"


@pytest.mark.parametrize("detach", [True, False])
def test_logs_times_and_tail(user: User, busybox: str, detach: bool) -> None:
    name = "timed" if detach else "timedfg"
    script = "echo one; echo two >&2; sleep 1.5; printf 'three\\nfour'"
    if detach:
        user.run("run", "-d", "--name", name, busybox, "sh", "-c", script, check=True)
        _settled(user, name)
    else:
        user.run("run", "--name", name, busybox, "sh", "-c", script, check=True)
    r = user.run("logs", "-t", name, check=True)
    out = r.stdout.splitlines()
    assert [re.fullmatch(STAMP + r" (.*)", line).group(1) for line in out] == [  # type: ignore[union-attr]
        "one", "three", "four"]
    assert re.fullmatch(STAMP + " two\n", r.stderr), r.stderr
    first, third = out[0].split()[0], out[1].split()[0]
    assert user.run("logs", "--tail", "2", name, check=True).stdout == "three\nfour"
    assert user.run("logs", "-n", "0", name, check=True).stdout == ""
    assert user.run("logs", "--since", third, name, check=True).stdout == "three\nfour"
    r = user.run("logs", "--until", first, name, check=True)
    assert r.stdout == "one\n"
    assert user.run("logs", "--since", "1h", name, check=True).stdout == "one\nthree\nfour"
    assert user.run("logs", "--since", "2099-01-01", name, check=True).stdout == ""
    bad = user.run("logs", "--since", "later", name)
    assert bad.returncode == 2 and "--since: 'later' is not a time" in bad.stderr
    bad = user.run("logs", "--tail", "many", name)
    assert bad.returncode == 2 and "--tail 'many'" in bad.stderr


def test_logs_follow_with_tail(user: User, busybox: str) -> None:
    user.run("run", "-d", "--name", "tailf", busybox, "sh", "-c",
             "seq 1 5; sleep 2; seq 6 7", check=True)
    time.sleep(1)
    r = user.run("logs", "-f", "--tail", "2", "tailf", timeout=60)
    assert r.returncode == 0 and r.stdout == "4\n5\n6\n7\n", r.stdout
