"""secpod generate systemd: units systemd-analyze verifies without a warning, and the
unit's own commands run with a notify socket as systemd would give them."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
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
    assert missing.returncode == 1 and "No such container: nosuch" in missing.stderr


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
    assert actions[-6:] == ["container.create", "container.start", "container.exec",
                            "container.stop", "container.exit", "container.rm"], actions
