"""The Docker command line that scripts type, against real crun: `container ...`,
`wait`, `restart`, `images`, `version`, and `inspect`'s Docker-shaped fields."""

from __future__ import annotations

import json

import pytest

from tests.conftest import User

pytestmark = [pytest.mark.crun, pytest.mark.userns]


def test_a_script_written_for_docker(user: User, busybox: str) -> None:
    r = user.run("container", "run", "-d", "--name", "job", busybox, "sh", "-c",
                 "echo working; sleep 0.5; exit 3")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    assert user.run("wait", "job").stdout == "3\n"
    info = json.loads(user.run("container", "inspect", "job", check=True).stdout)[0]
    assert (info["Id"], info["Name"]) == (cid, "job")
    assert info["State"]["Status"] == "exited" and info["State"]["ExitCode"] == 3
    assert info["State"]["Running"] is False and info["State"]["Pid"] == 0
    assert info["Config"]["Cmd"] == ["sh", "-c", "echo working; sleep 0.5; exit 3"]
    assert any(e.startswith("PATH=") for e in info["Config"]["Env"])
    assert info["Secpod"]["profile"] == "default" and info["Secpod"]["status"] == "exited"
    assert user.run("container", "logs", "job").stdout == "working\n"
    assert user.run("restart", "job").stdout == "job\n"
    info = json.loads(user.run("inspect", "job", check=True).stdout)[0]
    assert info["State"]["Status"] in ("running", "exited")
    assert user.run("wait", cid[:12]).stdout == "3\n"
    assert user.run("logs", "job").stdout == "working\nworking\n"
    listed = json.loads(user.run("container", "ls", "-a", "--json", check=True).stdout)
    assert [c["name"] for c in listed] == ["job"]
    assert user.run("container", "rm", "job").returncode == 0
    assert user.run("container", "list", "-a", "-q").stdout == ""
    r = user.run("wait", "job")
    assert r.returncode == 1 and "No such container: job" in r.stderr


def test_restart_of_a_running_container(user: User, busybox: str) -> None:
    user.run("run", "-d", "--name", "svc", busybox, "sh", "-c",
             "trap 'exit 0' TERM; echo up; while :; do sleep 0.1; done", check=True)
    first = json.loads(user.run("inspect", "svc", check=True).stdout)[0]["State"]["Pid"]
    assert first > 0
    assert user.run("restart", "-t", "5", "svc").returncode == 0
    after = json.loads(user.run("inspect", "svc", check=True).stdout)[0]["State"]
    assert after["Status"] == "running" and after["Pid"] not in (0, first)
    assert user.run("rm", "-f", "svc").returncode == 0


def test_images_rmi_and_version(user: User, busybox: str) -> None:
    assert user.run("images", "-q").stdout == user.run("image", "ls", "-q").stdout != ""
    assert user.run("tag", busybox, "mine/box:1").returncode == 0
    assert "mine/box:1" in user.run("images").stdout
    assert user.run("rmi", "mine/box:1").returncode == 0
    assert "mine/box:1" not in user.run("image", "list").stdout
    v = user.run("version")
    assert v.returncode == 0 and v.stdout.startswith("Version:")
    assert json.loads(user.run("version", "--json").stdout)["Client"]["Version"]


def test_ps_last_latest_and_no_trunc(user: User, busybox: str) -> None:
    ids = [user.run("create", "--name", f"c{i}", busybox, "true", check=True).stdout.strip()
           for i in range(3)]
    assert user.run("ps", "-l", "-q", "--no-trunc").stdout == ids[2] + "\n"
    assert user.run("ps", "-n", "2", "-q").stdout.split() == [i[:12] for i in ids[1:]]
    assert user.run("ps", "-n", "0", "-q").stdout == ""
    assert ids[0] in user.run("ps", "-a", "--no-trunc").stdout


def test_rename_a_running_container(user: User, busybox: str) -> None:
    cid = user.run("run", "-d", "--name", "old", busybox, "sleep", "60",
                   check=True).stdout.strip()
    assert user.run("rename", "old", "new").returncode == 0
    assert user.run("exec", "new", "echo", "hi").stdout == "hi\n"
    info = json.loads(user.run("inspect", "new", check=True).stdout)[0]
    assert (info["Id"], info["Name"], info["State"]["Status"]) == (cid, "new", "running")
    assert user.run("create", "--name", "old", busybox, "true").returncode == 0
    r = user.run("rename", "new", "old")
    assert r.returncode == 1 and "'old' is in use" in r.stderr
    assert user.run("rm", "-f", "new", "old").returncode == 0
