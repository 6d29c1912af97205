"""secpod generate systemd: units systemd-analyze verifies without a warning, and the
unit's own commands run with a notify socket as systemd would give them."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import User
from tests.integration.conftest import audit_records

pytestmark = [pytest.mark.crun, pytest.mark.userns]


def verify_clean(path: Path) -> None:
    """systemd-analyze verify exits 0 on an unknown key or a bad Type=: any word it
    prints is a failure."""
    r = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", (r.stdout, r.stderr)


def exec_words(unit: str, key: str) -> list[str]:
    """The words of the unit's KEY= line, as systemd splits them (what secpod writes)."""
    line = next(ln for ln in unit.splitlines() if ln.startswith(key + "="))
    value = line.partition("=")[2].lstrip("-")
    return shlex.split(value.replace("%%", "%").replace("$$", "$"))


def test_generated_units_verify_without_a_warning(user: User, busybox: str) -> None:
    user.run("create", "--name", "web", "--restart", "on-failure:2", "-e", "GREETING=50% $off",
             busybox, "sh", "-c", 'echo "$GREETING"; sleep 60', check=True)
    r = user.run("generate", "systemd", "--new", "--files", "web", check=True)
    path = Path(r.stdout.strip())
    assert path == user.home / "container-web.service"
    unit = path.read_text()
    verify_clean(path)
    assert "Restart=on-failure" in unit.splitlines()
    assert exec_words(unit, "ExecStart")[1:] == [
        "run", "-d", "--rm", "--name", "web", "--sdnotify", "conmon", "-e",
        "GREETING=50% $off", busybox, "sh", "-c", 'echo "$GREETING"; sleep 60']
    # the same name again: refused, nothing written over
    again = user.run("generate", "systemd", "--new", "--files", "web")
    assert again.returncode == 1 and "the unit name container-web.service is in use" in \
        again.stderr, again.stderr
    assert path.read_text() == unit
    # without --new, and to stdout
    r = user.run("generate", "systemd", "--name", "--restart-policy", "always",
                 "--restart-sec", "2", "web", check=True)
    plain = user.home / "plain.service"
    plain.write_text(r.stdout)
    verify_clean(plain)
    assert exec_words(r.stdout, "ExecStart")[1:] == ["start", "web"]
    bad = user.run("generate", "systemd", "--restart-policy", "sometimes", "web")
    assert bad.returncode == 2 and "invalid --restart-policy 'sometimes'" in bad.stderr
    missing = user.run("generate", "systemd", "nosuch")
    assert missing.returncode == 1 and "No such container or pod: nosuch" in missing.stderr


def test_the_new_unit_creates_notifies_stops_and_removes(user: User, busybox: str) -> None:
    user.run("create", "--name", "svc", busybox, "sleep", "60", check=True)
    unit = user.run("generate", "systemd", "--new", "svc", check=True).stdout
    user.run("rm", "svc", check=True)
    # systemd's notify socket, as a Type=notify unit's processes get it
    sock_path = user.home / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    os.chown(sock_path, user.uid, user.gid)  # the unit's processes run as the user
    sock.settimeout(60)
    user.env["NOTIFY_SOCKET"] = str(sock_path)
    try:
        for key in ("ExecStartPre", "ExecStart"):
            user.sh(exec_words(unit, key), check=key == "ExecStart")
        message = sock.recv(4096).decode()
    finally:
        del user.env["NOTIFY_SOCKET"]
        sock.close()
    info = json.loads(user.run("inspect", "svc", check=True).stdout)[0]
    assert info["State"]["Status"] == "running"
    assert message == f"MAINPID={info['Secpod']['monitor_pid']}\nREADY=1\n"
    # the socket is systemd's and secpod's: never the container's
    env = user.run("exec", "svc", "env", check=True).stdout
    assert "NOTIFY_SOCKET" not in env
    for key in ("ExecStop", "ExecStopPost"):
        user.sh(exec_words(unit, key))
    assert user.run("inspect", "svc").returncode == 1
    actions = [r["action"] for r in audit_records(user) if r["container"]["name"] == "svc"]
    # stop's record and the exit's (the monitor's callback) race, as Docker's die and
    # stop events do: either order
    assert actions[-6:-3] == ["container.create", "container.start", "container.exec"]
    assert sorted(actions[-3:-1]) == ["container.exit", "container.stop"], actions
    assert actions[-1] == "container.rm"


def _notified(user: User, words: list[str]) -> tuple[str, str]:
    """Run ``words`` with a notify socket as a Type=notify unit's processes get it:
    (stdout, the message)."""
    sock_path = user.home / "notify.sock"
    sock_path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    os.chown(sock_path, user.uid, user.gid)
    sock.settimeout(60)
    user.env["NOTIFY_SOCKET"] = str(sock_path)
    try:
        r = user.sh(words)
        assert r.returncode == 0, r.stderr
        return r.stdout, sock.recv(4096).decode()
    finally:
        del user.env["NOTIFY_SOCKET"]
        sock.close()


def test_a_pods_units_make_it_and_its_members_bound_to_it(user: User, busybox: str) -> None:
    user.run("pod", "create", "--name", "web", "--label", "tier=front", check=True)
    user.run("run", "-d", "--pod", "web", "--name", "app", busybox, "sleep", "60",
             check=True)
    r = user.run("generate", "systemd", "--new", "--files", "-t", "2", "web", check=True)
    paths = [Path(p) for p in r.stdout.split()]
    assert [p.name for p in paths] == ["pod-web.service", "container-app.service"]
    v = subprocess.run(["systemd-analyze", "verify", *map(str, paths)], capture_output=True,
                       text=True, timeout=120)
    assert v.returncode == 0 and v.stdout == "" and v.stderr == "", (v.stdout, v.stderr)
    pod_unit, app_unit = (p.read_text() for p in paths)
    assert {"Wants=container-app.service", "Before=container-app.service"} <= set(
        pod_unit.splitlines())
    assert {"BindsTo=pod-web.service", "After=pod-web.service"} <= set(app_unit.splitlines())
    user.run("pod", "rm", "-f", "web", check=True)
    # as systemd would: the pod's unit (ready once its infra runs), then the member's
    user.sh(exec_words(pod_unit, "ExecStartPre"))
    _out, message = _notified(user, exec_words(pod_unit, "ExecStart"))
    infra = json.loads(user.run("inspect", "web-infra", check=True).stdout)[0]
    assert message == f"MAINPID={infra['Secpod']['monitor_pid']}\nREADY=1\n"
    pod = json.loads(user.run("pod", "inspect", "web", check=True).stdout)[0]
    assert pod["Labels"] == {"tier": "front"}
    user.sh(exec_words(app_unit, "ExecStartPre"))
    _out, message = _notified(user, exec_words(app_unit, "ExecStart"))
    app = json.loads(user.run("inspect", "app", check=True).stdout)[0]
    assert app["State"]["Status"] == "running"
    assert message == f"MAINPID={app['Secpod']['monitor_pid']}\nREADY=1\n"
    pod = json.loads(user.run("pod", "inspect", "web", check=True).stdout)[0]
    assert pod["State"] == "Running" and [c["Name"] for c in pod["Containers"]
                                          if c["Name"] == "app"] == ["app"]
    # stopping: the member's unit first (it is After= the pod's), then the pod's
    for unit in (app_unit, pod_unit):
        for key in ("ExecStop", "ExecStopPost"):
            user.sh(exec_words(unit, key))
    assert user.run("pod", "inspect", "web").returncode == 1
    assert user.run("ps", "-a", "-q").stdout.strip() == ""


def test_a_pods_units_without_new_start_the_existing_pod(user: User, busybox: str) -> None:
    user.run("pod", "create", "--name", "db", check=True)
    user.run("create", "--pod", "db", "--name", "store", busybox, "sleep", "60", check=True)
    r = user.run("generate", "systemd", "--name", "db", check=True)
    pod_unit, app_unit = r.stdout.split("\n# container-store.service\n")
    app_unit = "# container-store.service\n" + app_unit
    for name, text in (("pod-db.service", pod_unit), ("container-store.service", app_unit)):
        (user.home / name).write_text(text)
    v = subprocess.run(["systemd-analyze", "verify", str(user.home / "pod-db.service"),
                        str(user.home / "container-store.service")], capture_output=True,
                       text=True, timeout=120)
    assert v.returncode == 0 and v.stdout == "" and v.stderr == "", (v.stdout, v.stderr)
    user.run("pod", "stop", "db", check=True)
    _out, message = _notified(user, exec_words(pod_unit, "ExecStart"))
    infra = json.loads(user.run("inspect", "db-infra", check=True).stdout)[0]
    assert message == f"MAINPID={infra['Secpod']['monitor_pid']}\nREADY=1\n"
    # the pod's unit starts the infra only: the member's unit starts the member
    store = json.loads(user.run("inspect", "store", check=True).stdout)[0]
    assert store["State"]["Status"] != "running"
    _out, message = _notified(user, exec_words(app_unit, "ExecStart"))
    store = json.loads(user.run("inspect", "store", check=True).stdout)[0]
    assert store["State"]["Status"] == "running"
    assert message == f"MAINPID={store['Secpod']['monitor_pid']}\nREADY=1\n"
    user.sh(exec_words(pod_unit, "ExecStop"))
    pod = json.loads(user.run("pod", "inspect", "db", check=True).stdout)[0]
    assert pod["State"] == "Exited"
    start = [r for r in audit_records(user) if r["action"] == "pod.start"]
    assert start[-1]["details"]["infra_only"] is True


def _down_hard(user: User, name: str) -> None:
    """What a power cut or a reboot does to a running container: its monitor and its
    process gone, killed, with no exit recorded (the runtime's state is left)."""
    info = json.loads(user.run("inspect", name, check=True).stdout)[0]
    for pid in (info["Secpod"]["monitor_pid"], info["State"]["Pid"]):
        os.kill(pid, 9)
    for _ in range(100):
        if user.run("inspect", "--format", "{{.State.Status}}", name,
                    check=True).stdout.strip() != "running":
            return
        time.sleep(0.05)
    raise AssertionError(f"{name} still runs")


def _policies(user: User, busybox: str) -> None:
    """Five containers, as a reboot finds them."""
    loop = ["sh", "-c", 'trap "exit 0" TERM; while :; do sleep 1; done']
    for name, policy in (("always-stopped", "always"), ("unless-down", "unless-stopped"),
                         ("unless-stopped", "unless-stopped"), ("failure-down", "on-failure"),
                         ("no-down", "no")):
        user.run("run", "-d", "--name", name, "--restart", policy, busybox, *loop, check=True)
    user.run("stop", "always-stopped", "unless-stopped", check=True)
    for name in ("unless-down", "failure-down", "no-down"):
        _down_hard(user, name)


def _running(user: User) -> set[str]:
    return set(user.run("ps", "--filter", "status=running", "--format", "{{.Names}}",
                        check=True).stdout.split())


def test_start_all_by_policy_starts_what_dockers_daemon_would(user: User, busybox: str) -> None:
    _policies(user, busybox)
    assert _running(user) == set()
    r = user.run("start", "--all", "--by-policy")
    assert r.returncode == 0, r.stderr
    # always, even stopped by hand; unless-stopped only when not stopped by hand
    assert set(r.stdout.split()) == {"always-stopped", "unless-down"}
    assert _running(user) == {"always-stopped", "unless-down"}
    starts = [rec for rec in audit_records(user) if rec.get("action") == "container.start"
              and (rec.get("container") or {}).get("name") in ("always-stopped", "unless-down")]
    assert len(starts) == 4, starts  # each container: its run, and this start
    # again: nothing to start (they run); --filter narrows --all
    assert user.run("start", "--all", "--by-policy", check=True).stdout == ""
    r = user.run("start", "--all", "--filter", "restart-policy=on-failure", check=True)
    assert r.stdout.split() == ["failure-down"]
    ps = user.run("ps", "-a", "--filter", "restart-policy=no", "--format", "{{.Names}}",
                  check=True)
    assert ps.stdout.split() == ["no-down"]
    # one that cannot start does not stop the others: each error once, exit non-zero
    user.run("stop", "always-stopped", "unless-down", "failure-down", check=True)
    bad = user.run("start", "always-stopped", "nosuch", "unless-down")
    assert bad.returncode == 1 and bad.stderr.count("No such container: nosuch") == 1, \
        (bad.returncode, bad.stderr)
    assert bad.stdout.split() == ["always-stopped", "unless-down"]
    # usage: --all and names, --by-policy without --all, nothing at all
    for words in (["--all", "no-down"], ["--by-policy", "no-down"], [], ["-a"]):
        r = user.run("start", *words)
        assert r.returncode == 2 and "give the containers to start, or --all" in r.stderr, \
            (words, r.returncode, r.stderr)
    every = user.run("start", "-a", "--all")
    assert every.returncode == 2 and "start -a starts one container at a time" in \
        every.stderr, every.stderr
    user.run("rm", "-f", "always-stopped", "unless-down", "unless-stopped", "failure-down",
             "no-down", check=True)


def test_the_restart_service_unit_verifies(user: User) -> None:
    r = user.run("generate", "systemd", "--restart-service", "--files", check=True)
    path = Path(r.stdout.strip())
    assert path == user.home / "secpod-restart.service"
    verify_clean(path)
    unit = path.read_text()
    assert exec_words(unit, "ExecStart")[1:] == ["start", "--all", "--by-policy"]
    assert "enable-linger" in r.stderr
    mixed = user.run("generate", "systemd", "--restart-service", "--new")
    assert mixed.returncode == 2 and "--new: a container's unit only" in mixed.stderr, \
        mixed.stderr
    both = user.run("generate", "systemd", "--restart-service", "web")
    neither = user.run("generate", "systemd")
    for bad in (both, neither):
        assert bad.returncode == 2 and "give a CONTAINER or POD, or --restart-service" in \
            bad.stderr, (bad.returncode, bad.stderr)
