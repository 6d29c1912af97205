"""The Docker command line that scripts type, against real crun: `container ...`,
`wait`, `restart`, `images`, `version`, and `inspect`'s Docker-shaped fields."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import User
from tests.integration.conftest import audit_records
from tests.integration.test_lifecycle import wait_for

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


def test_top_lists_the_containers_processes_as_it_sees_them(user: User,
                                                            busybox: str) -> None:
    user.run("run", "-d", "--name", "busy", busybox, "sh", "-c",
             "sleep 300 & sleep 301 & wait", check=True)
    procs = json.loads(user.run("top", "busy", "--json", check=True).stdout)
    assert procs[0]["pid"] == 1 and procs[0]["command"].startswith("sh -c")
    assert sorted(p["command"] for p in procs[1:]) == ["sleep 300", "sleep 301"]
    assert {p["ppid"] for p in procs[1:]} == {1} and {p["uid"] for p in procs} == {0}
    table = user.run("top", "busy").stdout.splitlines()
    assert table[0].split() == ["USER", "PID", "PPID", "%CPU", "ELAPSED", "TIME", "COMMAND"]
    assert len(table) == 4
    # what exec started is in the container too, though its parent is outside
    exe = user.popen("exec", "busy", "sleep", "302", stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: any(p["command"] == "sleep 302" for p in json.loads(
            user.run("top", "busy", "--json").stdout)))
        (execd,) = [p for p in json.loads(user.run("top", "busy", "--json").stdout)
                    if p["command"] == "sleep 302"]
        assert execd["ppid"] == 0 and execd["pid"] > 1
    finally:
        exe.kill()
    user.run("stop", "-t", "1", "busy", check=True)
    r = user.run("top", "busy")
    assert r.returncode == 1 and "is not running (exited)" in r.stderr


def _podman(user: User, *args: str) -> subprocess.CompletedProcess[str]:
    return user.sh(["podman", "--cgroup-manager=cgroupfs", "--storage-driver=vfs", *args],
                   timeout=300)


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_save_writes_what_podman_and_skopeo_read_and_load_reads_it_back(
        user: User, busybox: str, fmt: str) -> None:
    before = json.loads(user.run("image", "inspect", busybox, check=True).stdout)
    out = user.home / "box.tar"
    r = user.run("save", "--format", fmt, "-o", str(out), busybox)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and out.stat().st_size > 500_000
    # the real tools read it
    seen = user.sh(["skopeo", "inspect", f"{fmt}:{out}"], check=True)
    assert json.loads(seen.stdout)["Layers"], seen.stdout
    loaded = _podman(user, "load", "-i", str(out))
    assert loaded.returncode == 0, loaded.stderr
    assert "busybox" in _podman(user, "images", "--format", "{{.Repository}}").stdout
    # an oci-archive keeps the manifest, and so its digest; docker-archive has none
    assert user.run("rmi", busybox).returncode == 0
    r = user.run("load", "-i", str(out))
    assert r.returncode == 0, r.stderr
    after = json.loads(user.run("image", "inspect", busybox, check=True).stdout)
    assert after["config_digest"] == before["config_digest"]
    if fmt == "oci-archive":
        assert after["digest"] == before["digest"]
    # from standard input, as `docker load < box.tar`
    assert user.run("rmi", busybox).returncode == 0
    r = user.sh(["sh", "-c", f"secpod load < {out}"])
    assert r.returncode == 0 and r.stdout.strip().startswith("sha256:"), r.stderr
    assert user.run("run", "--rm", busybox, "echo", "ok").stdout == "ok\n"
    saved = [a for a in audit_records(user) if a["action"] == "image.save"]
    assert saved[-1]["outcome"] == "ok" and saved[-1]["details"]["format"] == fmt


def test_save_of_a_changed_blob_leaves_no_archive(user: User, busybox: str) -> None:
    info = json.loads(user.run("image", "inspect", busybox, check=True).stdout)
    layer = info["layers"][0]["digest"].partition(":")[2]
    blob = user.home / "data" / "secpod" / "images" / "blobs" / "sha256" / layer
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    for fmt in ("docker-archive", "oci-archive"):
        r = user.run("save", "--format", fmt, "-o", str(user.home / "x.tar"), busybox)
        assert r.returncode == 1, r.stderr
        assert "no longer matches its digest" in r.stderr or "diff_id" in r.stderr \
            or "gzip" in r.stderr.lower(), r.stderr
        assert sorted(p.name for p in user.home.iterdir() if "x.tar" in p.name) == []
    assert [a["outcome"] for a in audit_records(user) if a["action"] == "image.save"] == [
        "error", "error"]
    r = user.run("save", "-o", str(user.home / "y.tar"), "no/such:1")
    assert r.returncode == 1 and "no/such" in r.stderr
    r = user.run("save", "-o", str(user.home / "none" / "z.tar"), busybox)
    assert r.returncode == 1 and "cannot write " in r.stderr and "Traceback" not in r.stderr


def test_save_to_standard_output(user: User, busybox: str) -> None:
    r = user.sh(["sh", "-c", f"secpod save {busybox} | tar t"])
    assert r.returncode == 0, r.stderr
    assert "manifest.json" in r.stdout.split()
