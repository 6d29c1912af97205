"""`secpod run` with the default profile: process settings, errors, cleanup."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import SECPOD_BIN, User
from tests.integration.conftest import audit_records, validate_runtime_config

pytestmark = [pytest.mark.crun, pytest.mark.userns]


def test_unenforced_settings_are_told_once_per_boot(user: User, busybox: str) -> None:
    first = user.run("run", "--rm", busybox, "true")
    assert "not enforced on this host" in first.stderr
    assert "pids limit" in first.stderr
    second = user.run("run", "--rm", busybox, "true")
    assert second.stderr == ""
    # Other flags change the profile hash, not the settings this host cannot enforce.
    third = user.run("run", "--rm", "--cap-drop", "CHOWN", "-h", "other", busybox, "true")
    assert third.returncode == 0 and third.stderr == "", third.stderr


def test_default_profile_has_podmans_capabilities(user: User, busybox: str) -> None:
    r = user.run("run", "--rm", busybox, "grep", "CapEff", "/proc/self/status")
    assert r.returncode == 0, r.stderr
    # CHOWN DAC_OVERRIDE FOWNER FSETID KILL NET_BIND_SERVICE SETFCAP SETGID SETPCAP SETUID SYS_CHROOT
    assert r.stdout.split()[1] == "00000000800405fb"


def test_writable_root_is_a_private_copy(user: User, busybox: str) -> None:
    r = user.run("run", "--rm", busybox, "sh", "-c", "echo hi > /written && cat /written")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hi\n"
    store = user.home / "data" / "secpod"
    assert not list(store.glob("**/written")), "the image cache was written to"


def test_env_workdir_user_and_volume(user: User, busybox: str) -> None:
    shared_dir = user.home / "shared"
    shared_dir.mkdir()
    os.chown(shared_dir, user.uid, user.gid)
    (shared_dir / "in.txt").write_text("from host\n")
    r = user.run(
        "run",
        "--rm",
        "-e",
        "GREETING=hello",
        "-w",
        "/tmp",
        "--user",
        "1000:1000",
        "-v",
        f"{shared_dir}:/data:ro",
        busybox,
        "sh",
        "-c",
        "echo $GREETING; pwd; id -u; id -g; cat /data/in.txt; touch /data/x 2>/dev/null || echo ro",
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["hello", "/tmp", "1000", "1000", "from host", "ro"]


def test_command_not_found_is_127_and_not_executable_is_126(user: User, busybox: str) -> None:
    r = user.run("run", "--rm", busybox, "no-such-command")
    assert r.returncode == 127
    assert "no-such-command: command not found" in r.stderr
    r = user.run("run", "--rm", busybox, "/etc/passwd")
    assert r.returncode == 126
    assert "permission denied" in r.stderr
    assert user.run("ps", "-a", "-q").stdout.strip() == ""


def test_exec_of_a_missing_command_is_127_and_not_executable_is_126(user: User,
                                                                     busybox: str) -> None:
    assert user.run("run", "-d", "--name", "box", busybox, "sleep", "60").returncode == 0
    r = user.run("exec", "box", "no-such-command")
    assert r.returncode == 127, r.stderr
    assert "no-such-command: command not found" in r.stderr and "hint:" in r.stderr
    r = user.run("exec", "box", "/etc/passwd")
    assert r.returncode == 126, r.stderr
    assert "permission denied" in r.stderr
    assert user.run("exec", "box", "true").returncode == 0
    recs = [r for r in audit_records(user) if r["action"] == "container.exec"]
    assert [r["outcome"] for r in recs] == ["refused", "refused", "ok"]


def test_unknown_image_is_refused_audited_and_leaves_nothing(user: User) -> None:
    r = user.run("run", "--rm", "nosuchimage:1", "true")
    assert r.returncode == 125
    assert "nosuchimage" in r.stderr and "hint:" in r.stderr
    rec = audit_records(user)[-1]
    assert rec["action"] == "container.run.refused" and rec["outcome"] == "refused"
    containers = user.home / "data" / "secpod" / "containers"
    assert not containers.exists() or [p.name for p in containers.iterdir()] in ([], ["names"])


def test_name_clash_is_refused(user: User, busybox: str) -> None:
    assert user.run("create", "--name", "web", busybox, "true").returncode == 0
    r = user.run("run", "--name", "web", busybox, "true")
    assert r.returncode == 125
    assert "in use" in r.stderr


def test_stdout_and_stderr_are_streamed_and_logged(user: User, busybox: str) -> None:
    user.run("run", "--rm", busybox, "true", check=True)  # the once-per-boot notices go here
    r = user.run(
        "run", "--name", "talker", busybox, "sh", "-c", "echo out; echo err >&2; printf tail"
    )
    assert r.returncode == 0
    assert r.stdout == "out\ntail" and r.stderr == "err\n"
    logs = user.run("logs", "talker")
    assert logs.stdout == "out\ntail" and logs.stderr == "err\n"


def test_foreground_run_forwards_sigterm(user: User, busybox: str) -> None:
    proc = user.popen(
        "run",
        "--name",
        "fg",
        busybox,
        "sh",
        "-c",
        "trap 'echo got-term; exit 3' TERM; echo ready; while :; do sleep 0.1; done",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    # setpriv execs secpod: the Popen pid is secpod's own.
    os.kill(proc.pid, 15)
    out, err = proc.communicate(timeout=30)
    assert "got-term" in out
    assert proc.returncode == 3, err


def test_root_is_refused_with_a_hint_and_audited(tmp_path: Path) -> None:
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path), XDG_RUNTIME_DIR=str(tmp_path / "run"))
    r = subprocess.run(
        [str(SECPOD_BIN), "run", "busybox", "true"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert r.returncode == 1
    assert "does not run containers as root" in r.stderr
    assert "subuid" in r.stderr
    log = tmp_path / "secpod" / "audit" / "log.jsonl"
    rec = json.loads(log.read_text().splitlines()[-1])
    assert rec["action"] == "preflight.refused" and rec["uid"] == 0


def test_setgid_wrapper_is_refused(user: User) -> None:
    # real gid = the user's, effective gid = 0: what a setgid-root wrapper would give.
    argv = [
        "setpriv",
        f"--reuid={user.uid}",
        f"--rgid={user.gid}",
        "--egid=0",
        "--clear-groups",
        "env",
        *[f"{k}={v}" for k, v in user.env.items()],
        str(SECPOD_BIN),
        "ps",
    ]
    r = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert r.returncode == 1
    assert "setuid or setgid" in r.stderr


def test_config_json_validates_against_the_runtime_spec(
    user: User, busybox: str, shared: Path
) -> None:
    cid = user.run("create", busybox, "true", check=True).stdout.strip()
    config = json.loads(user.run("inspect", cid, check=True).stdout)[0]["Secpod"]["config"]
    validate_runtime_config(config, shared)


def test_read_only_is_a_flag_and_h_is_the_hostname(user: User, busybox: str) -> None:
    r = user.run("run", "--rm", "--read-only", busybox, "sh", "-c", "touch /x")
    assert r.returncode != 0 and "no such image" not in r.stderr, r.stderr
    assert "Read-only file system" in r.stderr
    r = user.run("run", "--rm", "--read-only=false", busybox, "sh", "-c", "touch /x && echo ok")
    assert r.returncode == 0 and r.stdout == "ok\n", r.stderr
    r = user.run("run", "--rm", "-h", "box1", busybox, "hostname")
    assert r.returncode == 0 and r.stdout == "box1\n", r.stderr
    r = user.run("run", "--rm", "-h", "bad_name!", busybox, "true")
    assert r.returncode == 2 and "invalid host name" in r.stderr and "hint:" in r.stderr
    assert user.run("run", "--help").stdout.startswith("usage: secpod run")


def test_setuid_root_wrapper_writes_nothing_as_root(user: User) -> None:
    """Real uid the user's, effective uid 0 (a setuid-root wrapper): refused, and nothing
    is created as root under the user's folders or in the host log folder; the refusal
    is recorded as the user."""
    host_log = Path("/var/lib/secpod/audit")
    before = sorted(host_log.rglob("*")) if host_log.exists() else None
    argv = ["setpriv", f"--ruid={user.uid}", "--euid=0", f"--regid={user.gid}",
            "--init-groups", "env", "-i", *[f"{k}={v}" for k, v in user.env.items()],
            str(SECPOD_BIN), "image", "ls"]
    r = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=str(user.home))
    assert r.returncode == 1, r.stderr
    assert "setuid or setgid" in r.stderr
    owned_by_root = [p for p in user.home.rglob("*") if p.lstat().st_uid == 0]
    assert owned_by_root == []
    after = sorted(host_log.rglob("*")) if host_log.exists() else None
    assert after == before
    rec = audit_records(user)[-1]
    assert rec["action"] == "preflight.refused" and rec["uid"] == user.uid


def test_flags_that_weaken_the_profile_are_said_and_shown(user: User, busybox: str) -> None:
    """`--cap-add` and `seccomp=unconfined` weaken the profile: said on stderr, and ps,
    inspect and the audit record show it as default+2 (each added capability counts)."""
    flags = ["--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined"]
    r = user.run("run", "--rm", *flags, busybox, "true")
    assert r.returncode == 0, r.stderr
    assert "weaken the profile, shown as default+2" in r.stderr
    assert "cap-add CAP_SYS_ADMIN" in r.stderr and "seccomp=unconfined" in r.stderr
    user.run("create", "--name", "weak", "--cap-add", "NET_RAW", *flags, busybox, "true",
             check=True)
    user.run("create", "--name", "plain", busybox, "true", check=True)
    listed = {c["name"]: c for c in json.loads(user.run("ps", "-a", "--json", check=True).stdout)}
    assert listed["weak"]["profile"] == "default+3"
    assert listed["plain"]["profile"] == "default"
    info = json.loads(user.run("inspect", "weak", check=True).stdout)[0]["Secpod"]
    assert info["profile"] == "default+3"
    assert sorted(info["confinement"]["weakened"][:2]) == ["cap-add CAP_NET_RAW",
                                                           "cap-add CAP_SYS_ADMIN"]
    creates = [r for r in audit_records(user) if r["action"] == "container.create"]
    assert [r["profile"] for r in creates][-2:] == ["default+3", "default"]
    plain = user.run("create", busybox, "true")
    assert "weaken" not in plain.stderr
