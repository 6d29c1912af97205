"""`secpod profile learn`: rootless seccomp learning through crun's listenerPath."""

from __future__ import annotations

import json

import pytest

from tests.conftest import User

pytestmark = [pytest.mark.crun, pytest.mark.userns]


def test_learn_then_run_with_the_learned_profile(user: User, busybox: str) -> None:
    out = user.home / "learned.json"
    r = user.run("profile", "learn", "--out", str(out), "--json", busybox,
                 "sh", "-c", "echo learning; ls / > /dev/null")
    assert r.returncode == 0, r.stderr
    assert "learning" in r.stdout
    learned = json.loads(out.read_text())
    names = set(learned["syscalls"][0]["names"])
    assert {"execve", "write", "getdents64"} <= names
    assert "mkdir" not in names and "mount" not in names
    assert learned["defaultAction"] == "SCMP_ACT_ERRNO"
    report = json.loads(r.stdout[r.stdout.index("{"):])
    assert report["exit_status"] == 0 and set(report["syscalls"]) == names

    # the same workload runs under what was learned ...
    again = user.run("run", "--rm", "--security-opt", f"seccomp={out}", busybox,
                     "sh", "-c", "echo learning; ls / > /dev/null")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "learning"
    # ... and something it never did is refused
    other = user.run("run", "--rm", "--security-opt", f"seccomp={out}", busybox,
                     "mkdir", "/newdir")
    assert other.returncode != 0
    assert "Operation not permitted" in other.stderr
