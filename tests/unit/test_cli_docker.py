"""Docker's spellings of commands, and the Docker-shaped `inspect` of a container."""

from __future__ import annotations

import pytest

from secpod.cli import canonical
from secpod.sandbox import state, views


@pytest.mark.parametrize(("typed", "runs"), [
    ("container ls -a", "ps -a"),
    ("container list", "ps"),
    ("container ps -q", "ps -q"),
    ("container rm -f web", "rm -f web"),
    ("container remove web", "rm web"),
    ("container run --rm img true", "run --rm img true"),
    ("container inspect web", "inspect web"),
    ("images -q", "image ls -q"),
    ("rmi a b", "image rm a b"),
    ("tag a b", "image tag a b"),
    ("image list", "image ls"),
    ("image remove x", "image rm x"),
    ("image save -o f x", "save -o f x"),
    ("image load -i f", "load -i f"),
    ("-v container ls", "-v ps"),
    # what secpod spells the same, or not at all, is left for the parser to judge
    ("ps -a", "ps -a"),
    ("container frobnicate", "container frobnicate"),
    ("run img container ls", "run img container ls"),
    ("", ""),
])
def test_docker_spellings_become_secpods(typed: str, runs: str) -> None:
    assert canonical(typed.split()) == runs.split()


def _ctr(**kw: object) -> state.Container:
    base: dict[str, object] = dict(
        id="a" * 64, name="web", image_ref="docker.io/library/nginx:1", image_digest="sha256:b",
        profile="strict", profile_hash="h", created="2026-12-03T10:00:00Z",
        args=["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"],
        root_mode="shared-readonly", entrypoint=["/docker-entrypoint.sh"], user="101:101",
        labels={"maintainer": "x"}, runtime="runc",
        mounts=[{"destination": "/data", "source": "/home/u/d", "type": "bind",
                 "options": ["rbind", "ro"]},
                {"destination": "/cache", "type": "tmpfs", "source": "tmpfs",
                 "options": ["size=1m", "noexec"]}])
    base.update(kw)
    return state.Container(**base)  # type: ignore[arg-type]


CONFIG = {"hostname": "web1", "root": {"readonly": True},
          "process": {"env": ["PATH=/bin", "A=1"], "cwd": "/srv", "noNewPrivileges": True},
          "linux": {"seccomp": {"defaultAction": "SCMP_ACT_ERRNO"}}}


def test_inspect_has_the_fields_scripts_read() -> None:
    v = views.inspect_view(_ctr(started="2026-12-03T10:00:01Z"), "running", 4242, CONFIG,
                           {"profile": "strict"})
    assert v["Id"] == "a" * 64 and v["Name"] == "web" and v["Image"] == "sha256:b"
    assert v["State"]["Status"] == "running" and v["State"]["Running"] is True
    assert v["State"]["Pid"] == 4242 and v["State"]["ExitCode"] == 0
    assert v["State"]["FinishedAt"] == views.ZERO_TIME
    assert v["Path"] == "/docker-entrypoint.sh" and v["Args"][0] == "nginx"
    c = v["Config"]
    assert c["Entrypoint"] == ["/docker-entrypoint.sh"]
    assert c["Cmd"] == ["nginx", "-g", "daemon off;"]
    assert (c["Env"], c["WorkingDir"], c["User"], c["Hostname"]) == (
        ["PATH=/bin", "A=1"], "/srv", "101:101", "web1")
    assert c["Labels"] == {"maintainer": "x"} and c["Image"] == "docker.io/library/nginx:1"
    h = v["HostConfig"]
    assert h["ReadonlyRootfs"] is True and h["Runtime"] == "runc"
    assert h["Binds"] == ["/home/u/d:/data:ro"] and h["Tmpfs"] == {"/cache": "size=1m,noexec"}
    assert "no-new-privileges" in h["SecurityOpt"]
    assert [(m["Type"], m["Destination"], m["RW"]) for m in v["Mounts"]] == [
        ("bind", "/data", False), ("tmpfs", "/cache", True)]
    assert v["Secpod"] == {"profile": "strict"}


def test_an_exited_container_has_no_pid_and_its_exit_code() -> None:
    v = views.inspect_view(_ctr(exit_code=3, finished="2026-12-03T10:01:00Z"), "stopped",
                           99, CONFIG, {})
    assert v["State"]["Status"] == "exited" and v["State"]["Running"] is False
    assert (v["State"]["Pid"], v["State"]["ExitCode"]) == (0, 3)
    assert v["State"]["StartedAt"] == views.ZERO_TIME
