"""The policy commands as a user runs them, and real seccomp profiles under real crun."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import SECPOD_BIN, User
from tests.integration.conftest import audit_records


def test_profile_ls_show_diff(user: User) -> None:
    user.file("config/secpod/profiles/mine.toml",
              'extends = "strict"\ndescription = "strict with a low port"\n'
              '[process]\ncapabilities = ["NET_BIND_SERVICE"]\n')
    ls = user.run("profile", "ls", "--json")
    assert ls.returncode == 0, ls.stderr
    rows = {r["name"]: r for r in json.loads(ls.stdout)}
    assert rows["strict"]["kind"] == "builtin" and rows["mine"]["kind"] == "user"
    assert rows["mine"]["extends"] == ["strict"]
    text = user.run("profile", "ls")
    assert text.returncode == 0 and "strict with a low port" in text.stdout

    show = user.run("profile", "show", "mine", "--json")
    assert show.returncode == 0, show.stderr
    data = json.loads(show.stdout)
    assert data["capabilities"] == ["CAP_NET_BIND_SERVICE"] and data["read_only_root"] is True
    assert data["on_this_host"]["seccomp"]["rules"] > 300
    assert any("pids limit" in u for u in data["on_this_host"]["unenforced"])

    diff = user.run("profile", "diff", "mine", "strict", "--json")
    assert diff.returncode == 0, diff.stderr
    d = json.loads(diff.stdout)
    assert {"setting": "capabilities", "a": ["CAP_NET_BIND_SERVICE"], "b": []} \
        in d["differences"]
    assert d["a_weaker_than_b"] == ["capabilities: adds CAP_NET_BIND_SERVICE"]
    assert d["b_weaker_than_a"] == []
    text = user.run("profile", "diff", "mine", "strict")
    assert "strict at least as strict as mine: yes" in text.stdout
    actions = [r["action"] for r in audit_records(user)]
    assert {"profile.ls", "profile.show", "profile.diff"} <= set(actions)


def test_bad_profile_is_one_clear_error(user: User) -> None:
    user.file("config/secpod/profiles/typo.toml", 'extends = "strict"\n[procss]\n')
    r = user.run("profile", "show", "typo")
    assert r.returncode == 1
    assert "typo.toml: unknown key 'procss'" in r.stderr and "hint:" in r.stderr
    assert "Traceback" not in r.stderr
    r = user.run("profile", "show", "nosuch")
    assert r.returncode == 1 and "no profile named 'nosuch'" in r.stderr
    errors = [a for a in audit_records(user) if a["action"] == "profile.show"]
    assert [a["outcome"] for a in errors] == ["error", "error"]


def test_lint_exit_codes(user: User) -> None:
    exported = user.run("profile", "export", "strict", "--format", "oci")
    assert exported.returncode == 0, exported.stderr
    cfg = user.file("strict.json", exported.stdout)
    r = user.run("lint", str(cfg), "--profile", "strict", "--json")
    assert r.returncode == 1          # this host: no LSM, no cgroup limits
    found = {f["id"] for f in json.loads(r.stdout)["findings"]}
    assert found == {"CIS-5.1", "CIS-5.2", "CIS-5.10", "CIS-5.11", "CIS-5.24", "CIS-5.28"}
    config = json.loads(exported.stdout)
    config["process"]["capabilities"]["bounding"].append("CAP_SYS_ADMIN")
    config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"]
                                     if n["type"] != "pid"]
    bad = user.file("bad.json", json.dumps(config))
    r = user.run("lint", str(bad), "--profile", "strict")
    assert r.returncode == 1
    for item in ("CIS-5.3", "CIS-5.15", "PROFILE-capabilities", "PROFILE-namespaces"):
        assert item in r.stdout
    broken = user.file("broken.json", '{"process": ')
    r = user.run("lint", str(broken))
    assert r.returncode == 1 and "broken.json: line 1" in r.stderr


def test_profile_lint(user: User) -> None:
    good = user.file("good.toml", 'extends = "strict"\n[network]\nmode = "none"\n')
    r = user.run("profile", "lint", str(good))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no findings" in r.stdout
    wide = user.file("wide.toml", 'extends = "strict"\n[seccomp]\nprofile = "unconfined"\n')
    r = user.run("profile", "lint", str(wide), "--json")
    assert r.returncode == 1
    assert [f["id"] for f in json.loads(r.stdout)["findings"]] == ["CIS-5.21"]
    bad = user.file("bad.toml", '[seccomp.inline]\ndefaultAction = "SCMP_ACT_ERRNO"\n'
                                '[[seccomp.inline.syscalls]]\nnames = ["opne"]\n'
                                'action = "SCMP_ACT_ALLOW"\n')
    r = user.run("profile", "lint", str(bad))
    assert r.returncode == 1 and "unknown syscall 'opne'" in r.stderr


def test_export_k8s_and_seccomp(user: User) -> None:
    out = user.home / "k8s"
    out.mkdir()
    os.chown(out, user.uid, user.gid)
    r = user.run("profile", "export", "strict", "--format", "k8s", "--out", str(out))
    assert r.returncode == 0, r.stderr
    pod = json.loads((out / "pod.json").read_text())
    assert pod["kind"] == "Pod"
    ctx = pod["spec"]["containers"][0]["securityContext"]
    assert ctx["seccompProfile"]["localhostProfile"] == "profiles/secpod-strict.json"
    seccomp = json.loads((out / "secpod-strict.json").read_text())
    assert seccomp["defaultAction"] == "SCMP_ACT_ERRNO"
    r = user.run("profile", "export", "strict", "--format", "k8s")
    assert r.returncode == 2 and "--out DIR" in r.stderr
    r = user.run("profile", "export", "strict", "--format", "apparmor", "-o",
                 str(user.home / "aa"))
    assert r.returncode == 0 and "profile secpod-strict" in (user.home / "aa").read_text()


def test_install_apparmor_needs_root(user: User, tmp_path: Path) -> None:
    r = user.run("system", "install-apparmor", "--no-load", "--dir", str(user.home / "aa"))
    assert r.returncode == 1 and "needs root" in r.stderr
    assert not (user.home / "aa").exists()
    # as root: this kernel has no AppArmor, so loading is refused; writing works
    env = {**os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data")}
    r2 = subprocess.run([str(SECPOD_BIN), "system", "install-apparmor"], capture_output=True,
                        text=True, env=env, check=False)
    assert r2.returncode == 1 and "no AppArmor enabled" in r2.stderr
    r3 = subprocess.run([str(SECPOD_BIN), "system", "install-apparmor", "--no-load", "--dir",
                         str(tmp_path / "apparmor.d")], capture_output=True, text=True, env=env,
                        check=False)
    assert r3.returncode == 0, r3.stderr
    written = sorted(p.name for p in (tmp_path / "apparmor.d").iterdir())
    assert written == ["secpod-default", "secpod-strict"]
    for p in (tmp_path / "apparmor.d").iterdir():
        check = subprocess.run(["apparmor_parser", "-Q", "-K", str(p)], capture_output=True,
                               text=True, check=False)
        assert check.returncode == 0, check.stderr


@pytest.mark.crun
@pytest.mark.userns
@pytest.mark.parametrize("name", ["moby-default-seccomp.json", "containers-common-seccomp.json"])
def test_busybox_runs_under_each_real_profile(user: User, busybox: str, shared: Path,
                                              name: str) -> None:
    profile = shared / "conformance" / "profiles" / name
    r = user.run("run", "--rm", "--security-opt", f"seccomp={profile}", busybox,
                 "sh", "-c", "grep Seccomp: /proc/self/status; ls / >/dev/null && echo listed")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["Seccomp:", "2", "listed"]


@pytest.mark.crun
@pytest.mark.userns
def test_seccomp_file_from_a_user_and_unconfined(user: User, busybox: str) -> None:
    no_mkdir = user.file("no-mkdir.json", json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                      "errnoRet": 13}]}))
    r = user.run("run", "--rm", "--security-opt", f"seccomp={no_mkdir}", busybox,
                 "mkdir", "/newdir")
    assert r.returncode != 0 and "Permission denied" in r.stderr
    r = user.run("run", "--rm", "--security-opt", "seccomp=unconfined", busybox,
                 "grep", "Seccomp:", "/proc/self/status")
    assert r.returncode == 0 and r.stdout.split() == ["Seccomp:", "0"]
