"""The run's own mounts, environment files and resource requests, against real crun."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import User
from tests.integration.conftest import validate_runtime_config

pytestmark = [pytest.mark.crun, pytest.mark.userns]


# A program written into a tmpfs, then run from it (busybox itself is larger than 1m).
_SCRIPT = "printf '#!/bin/sh\\necho ran\\n' > {d}/s && chmod +x {d}/s && {d}/s"


def _mount_options(mounts: str, destination: str) -> list[str]:
    """The options of ``destination`` in a container's /proc/mounts."""
    for line in mounts.splitlines():
        _, where, kind, options, *_ = line.split()
        if where == destination:
            assert kind == "tmpfs", line
            return options.split(",")
    raise AssertionError(f"no mount at {destination} in:\n{mounts}")


def test_a_users_tmpfs_is_sized_and_noexec(user: User, busybox: str) -> None:
    r = user.run("run", "--rm", "--tmpfs", "/scratch:size=1m", busybox, "sh", "-c",
                 "cat /proc/mounts; echo ---; df -k /scratch | tail -n 1; "
                 f"{_SCRIPT.format(d='/scratch')}; echo exec=$?; "
                 "echo hi > /scratch/f && cat /scratch/f")
    assert r.returncode == 0, r.stderr
    mounts, _, rest = r.stdout.partition("---\n")
    options = _mount_options(mounts, "/scratch")
    assert {"nosuid", "nodev", "noexec", "rw", "size=1024k"} <= set(options), options
    assert rest.splitlines()[0].split()[1] == "1024"         # df: 1024 KiB in all
    assert rest.splitlines()[1:] == ["exec=126", "hi"]       # not executable, but writable
    assert "weaken" not in r.stderr


def test_a_tmpfs_asked_with_exec_weakens_the_profile(user: User, busybox: str) -> None:
    r = user.run("run", "--rm", "--tmpfs", "/fast:exec,mode=700", "--tmpfs", "/ro:ro",
                 busybox, "sh", "-c",
                 f"cat /proc/mounts; echo ---; {_SCRIPT.format(d='/fast')}; "
                 "touch /ro/x 2>/dev/null || echo read-only")
    assert r.returncode == 0, r.stderr
    mounts, _, rest = r.stdout.partition("---\n")
    assert "noexec" not in _mount_options(mounts, "/fast")
    assert "mode=700" in _mount_options(mounts, "/fast")
    assert "ro" in _mount_options(mounts, "/ro")
    assert rest.splitlines() == ["ran", "read-only"]
    assert "weaken the profile, shown as default+1" in r.stderr
    assert "tmpfs-exec: programs may run from the tmpfs at /fast" in r.stderr


def test_a_readonly_bind_mount(user: User, busybox: str, shared: Path) -> None:
    data = user.home / "data-dir"
    data.mkdir()
    os.chown(data, user.uid, user.gid)
    user.file("data-dir/in.txt", "from host\n")
    cid = user.run("create", "--mount", f"type=bind,source={data},target=/data,readonly",
                   busybox, "sh", "-c", "cat /data/in.txt; touch /data/x", check=True
                   ).stdout.strip()
    info = json.loads(user.run("inspect", cid, check=True).stdout)[0]["Secpod"]
    bind = next(m for m in info["config"]["mounts"] if m["destination"] == "/data")
    assert bind["source"] == str(data) and "ro" in bind["options"]
    assert {"nosuid", "nodev", "rprivate"} <= set(bind["options"])
    validate_runtime_config(info["config"], shared)
    r = user.run("run", "--rm", "--mount", f"type=bind,src={data},dst=/data,ro", busybox,
                 "sh", "-c", "cat /data/in.txt; touch /data/x")
    assert r.returncode != 0
    assert r.stdout == "from host\n" and "Read-only file system" in r.stderr
    assert not (data / "x").exists()


def test_env_file(user: User, busybox: str) -> None:
    envf = user.file("app.env", "# settings\nGREETING=hello from a file\n\nBOTH=file\n"
                                "FROM_MY_ENV\n")
    user.env["FROM_MY_ENV"] = "mine"
    r = user.run("run", "--rm", "--env-file", str(envf), "-e", "BOTH=flag", busybox,
                 "sh", "-c", 'echo "$GREETING|$BOTH|$FROM_MY_ENV"')
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello from a file|flag|mine\n"
    bad = user.file("bad.env", "OK=1\nNOT OK=2\n")
    r = user.run("run", "--rm", "--env-file", str(bad), busybox, "true")
    assert r.returncode == 2
    assert f"invalid environment variable 'NOT OK=2' (--env-file {bad}, line 2)" in r.stderr


def test_pids_limit_is_said_not_enforced_on_this_host(user: User, busybox: str) -> None:
    r = user.run("run", "--rm", "--pids-limit", "10", busybox, "true")
    assert r.returncode == 0, r.stderr
    told = [ln for ln in r.stderr.splitlines() if "not enforced on this host" in ln]
    assert any(ln.startswith("secpod: not enforced on this host: pids limit 10: ")
               for ln in told), r.stderr
    assert "weaken" not in r.stderr                       # tighter than the profile's 2048
    cid = user.run("create", "--pids-limit", "10", busybox, "true", check=True).stdout.strip()
    info = json.loads(user.run("inspect", cid, check=True).stdout)[0]["Secpod"]
    pids = [u for u in info["unenforced"] if u.startswith("pids limit")]
    assert len(pids) == 1 and pids[0].startswith("pids limit 10: "), info["unenforced"]
    assert info["confinement"]["limits"]["pids"] == 10
    assert "resources" not in info["config"]["linux"]
