"""The administrator's floor end to end: a real /etc/secpod, real PAM, real `secpod run`.

The suite runs as root in a private mount namespace; these tests bind-mount temp
folders over /etc/secpod and /etc/pam.d there, so the host's files never change.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import WORK, User
from tests.integration.conftest import audit_records, write_policy

pytestmark = [pytest.mark.root, pytest.mark.crun, pytest.mark.userns]


def test_floor_refuses_a_weaker_profile_and_audits_it(user: User, busybox: str,
                                                      admin: Path) -> None:
    write_policy('[floor]\nminimum = "strict"\n')
    r = user.run("run", "--rm", "--profile", "default", busybox, "true")
    assert r.returncode != 0
    assert "refused by the administrator's floor (floor in /etc/secpod/policy.toml)" in r.stderr
    assert "profile default is below the floor" in r.stderr
    refused = [a for a in audit_records(user) if a["outcome"] == "refused"]
    assert refused and "below the floor" in str(refused[-1]["reason"])


def test_floor_lets_a_user_rule_through(user: User, busybox: str, admin: Path) -> None:
    write_policy(f'[floor]\nminimum = "strict"\n[floor.users.{user.name}]\nminimum = "default"\n'
                 '[mounts]\nnever = ["/etc", "~/.ssh"]\n')
    r = user.run("run", "--rm", "--profile", "default", busybox, "echo", "ran")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ran"
    ssh = user.home / ".ssh"
    ssh.mkdir()
    os.chown(ssh, user.uid, user.gid)
    r = user.run("run", "--rm", "-v", f"{ssh}:/keys:ro", busybox, "true")
    assert r.returncode != 0 and "mounts.never" in r.stderr and "may not be mounted" in r.stderr
    link = user.home / "innocent"
    link.symlink_to("/etc")
    r = user.run("run", "--rm", "-v", f"{link}:/x:ro", busybox, "true")
    assert r.returncode != 0 and "(it matches /etc)" in r.stderr


def test_policy_writable_by_others_is_refused(user: User, busybox: str, admin: Path) -> None:
    write_policy('[floor]\nminimum = "default"\n', mode=0o666)
    r = user.run("run", "--rm", busybox, "true")
    assert r.returncode != 0
    assert "refusing the administrator's policy: /etc/secpod/policy.toml" in r.stderr
    assert "chmod go-w" in r.stderr
    os.chmod("/etc/secpod/policy.toml", 0o644)
    os.chown("/etc/secpod/policy.toml", user.uid, -1)
    r = user.run("run", "--rm", busybox, "true")
    assert r.returncode != 0 and "not owned by root" in r.stderr


def test_pam_account_stack_decides(user: User, user2: User, busybox_layout: Path,
                                   admin: Path, bind_over: Callable[[Path, Path], None]) -> None:
    pamd = Path(tempfile.mkdtemp(prefix="pam.d-", dir=WORK))
    try:
        subprocess.run(["cp", "-a", "/etc/pam.d/.", str(pamd)], check=True)
        (pamd / "secpod-test").write_text(
            f"# written by the secpod suite: only {user.name} may run containers\n"
            f"account required pam_succeed_if.so quiet user = {user.name}\n")
        pamd.chmod(0o755)
        bind_over(pamd, Path("/etc/pam.d"))
        write_policy('[pam]\nservice = "secpod-test"\n')
        for u in (user, user2):
            u.run("image", "import", str(busybox_layout), "--name", "busybox:latest", check=True)
        ok = user.run("run", "--rm", "busybox:latest", "echo", "allowed")
        assert ok.returncode == 0, ok.stderr
        assert ok.stdout.strip() == "allowed"
        no = user2.run("run", "--rm", "busybox:latest", "echo", "allowed")
        assert no.returncode != 0 and "allowed" not in no.stdout
        assert "pam.service secpod-test" in no.stderr
        assert "the PAM account check refuses this user" in no.stderr
    finally:
        shutil.rmtree(pamd, ignore_errors=True)


def test_admin_profiles_are_found_and_must_be_roots(user: User, busybox: str,
                                                    admin: Path) -> None:
    profiles = admin / "profiles"
    profiles.mkdir(mode=0o755)
    (profiles / "site.toml").write_text('extends = "default"\ndescription = "the site\'s"\n'
                                        '[filesystem]\nread_only_root = true\n')
    ls = user.run("profile", "ls", "--json")
    assert ls.returncode == 0, ls.stderr
    assert any(p["name"] == "site" and p["kind"] == "admin" for p in json.loads(
        ls.stdout))
    r = user.run("run", "--rm", "--profile", "site", busybox, "sh", "-c", "touch /x")
    assert r.returncode != 0 and "Read-only file system" in r.stderr
    (profiles / "site.toml").chmod(0o666)
    r = user.run("profile", "show", "site")
    assert r.returncode != 0 and "writable by group or others" in r.stderr


def test_the_admin_trust_policy_is_held_to_the_floors_rule(user: User, busybox: str,
                                                            admin: Path) -> None:
    write_policy('[trust]\npolicy = "/etc/secpod/trust-policy.json"\n')
    trust = admin / "trust-policy.json"
    trust.write_text('{"default": [{"type": "insecureAcceptAnything"}]}')
    trust.chmod(0o666)  # anyone could make it accept anything
    r = user.run("run", "--rm", busybox, "true")
    assert r.returncode == 125
    assert ("refusing the administrator's policy: /etc/secpod/trust-policy.json is not owned "
            "by root or is writable by group or others") in r.stderr
    assert "chmod go-w /etc/secpod/trust-policy.json" in r.stderr
    refused = audit_records(user)[-1]
    assert (refused["action"], refused["outcome"]) == ("container.run.refused", "refused")
    assert "trust-policy.json is not owned by root" in str(refused["reason"])
    assert user.run("verify", busybox).returncode == 1

    trust.chmod(0o644)
    r = user.run("run", "--rm", busybox, "echo", "ran")
    assert r.returncode == 0, r.stderr
    os.chown(trust, user.uid, -1)
    r = user.run("run", "--rm", busybox, "true")
    assert r.returncode == 125 and "trust-policy.json is not owned by root" in r.stderr
    os.chown(trust, 0, -1)
    trust.unlink()
    r = user.run("run", "--rm", busybox, "true")
    assert r.returncode == 125
    assert "the administrator's trust policy /etc/secpod/trust-policy.json does not exist" in (
        r.stderr)
