"""`secpod run --profile strict`: what a user checks from inside the container."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from tests.conftest import User
from tests.integration.conftest import audit_records, validate_runtime_config

# Each test runs under crun and under runc (the `engine` fixture: the user's secpod.toml).
pytestmark = [pytest.mark.crun, pytest.mark.userns, pytest.mark.usefixtures("engine")]


def status_field(text: str, name: str) -> str:
    m = re.search(rf"^{name}:\s*(\S+)", text, re.M)
    assert m, f"{name} not in /proc/self/status:\n{text}"
    return m.group(1)


def test_strict_process_has_no_caps_nnp_and_seccomp(user: User, signed_busybox: str) -> None:
    r = user.run("run", "--rm", "--profile", "strict", signed_busybox, "cat", "/proc/self/status")
    assert r.returncode == 0, r.stderr
    assert status_field(r.stdout, "CapEff") == "0000000000000000"
    assert status_field(r.stdout, "CapPrm") == "0000000000000000"
    assert status_field(r.stdout, "CapBnd") == "0000000000000000"
    assert status_field(r.stdout, "NoNewPrivs") == "1"
    assert status_field(r.stdout, "Seccomp") == "2"


def test_uid_map_is_the_user_and_its_subordinate_range(user: User, signed_busybox: str) -> None:
    r = user.run("run", "--rm", "--profile", "strict", signed_busybox, "cat", "/proc/self/uid_map")
    assert r.returncode == 0, r.stderr
    rows = [[int(x) for x in line.split()] for line in r.stdout.splitlines()]
    assert rows[0] == [0, user.uid, 1]
    assert all(host != 0 for _, host, _ in rows), rows
    assert len(rows) == 2 and rows[1][0] == 1 and rows[1][1] >= 100000


def test_root_filesystem_is_read_only(user: User, signed_busybox: str) -> None:
    r = user.run(
        "run",
        "--rm",
        "--profile",
        "strict",
        signed_busybox,
        "sh",
        "-c",
        "echo x > /pwned; echo rc=$?; echo y > /tmp/ok && cat /tmp/ok",
    )
    assert "Read-only file system" in r.stderr
    assert "rc=1" in r.stdout
    assert "y" in r.stdout.splitlines()


def test_masked_paths_read_empty(user: User, signed_busybox: str) -> None:
    # /proc/kcore exists only on kernels built with it; where it exists it must read empty
    r = user.run(
        "run",
        "--rm",
        "--profile",
        "strict",
        signed_busybox,
        "sh",
        "-c",
        "cat /proc/keys /proc/timer_list | wc -c; ls -A /sys/firmware | wc -l; "
        "if [ -e /proc/kcore ]; then wc -c < /proc/kcore; else echo 0; fi",
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0", "0", "0"]


def test_network_is_loopback_only(user: User, signed_busybox: str) -> None:
    r = user.run("run", "--rm", "--profile", "strict", signed_busybox, "cat", "/proc/net/dev")
    assert r.returncode == 0, r.stderr
    ifaces = [line.split(":")[0].strip() for line in r.stdout.splitlines()[2:]]
    assert ifaces == ["lo"]


def test_exit_code_is_the_containers(user: User, signed_busybox: str) -> None:
    r = user.run("run", "--rm", "--profile", "strict", signed_busybox, "sh", "-c", "exit 42")
    assert r.returncode == 42


def test_strict_run_is_audited_create_start_exit(user: User, signed_busybox: str) -> None:
    r = user.run("run", "--rm", "--name", "audited", "--profile", "strict", signed_busybox, "true")
    assert r.returncode == 0, r.stderr
    recs = [x for x in audit_records(user) if (x.get("container") or {}).get("name") == "audited"]
    actions = [x["action"] for x in recs]
    assert actions == ["container.create", "container.start", "container.exit", "container.rm"]
    exit_rec = recs[2]
    assert exit_rec["exit_status"] == 0 and exit_rec["profile"] == "strict"
    assert exit_rec["uid"] == user.uid


def test_strict_refuses_unsigned_image_under_accept_anything(user: User, busybox: str) -> None:
    r = user.run("run", "--rm", "--profile", "strict", busybox, "true")
    assert r.returncode == 125
    assert "insecureAcceptAnything" in r.stderr
    refused = [x for x in audit_records(user) if x["action"] == "container.run.refused"]
    assert refused and refused[-1]["outcome"] == "refused"
    assert user.run("ps", "-a", "-q").stdout.strip() == ""


def test_strict_config_json_validates_and_inspect_reports_unenforced(
    user: User, signed_busybox: str, shared: Path
) -> None:
    r = user.run("create", "--profile", "strict", signed_busybox, "true")
    assert r.returncode == 0, r.stderr
    info = json.loads(user.run("inspect", r.stdout.strip(), check=True).stdout)[0]["Secpod"]
    validate_runtime_config(info["config"], shared)
    assert info["config"]["root"]["readonly"] is True
    assert "resources" not in info["config"]["linux"]
    # this host has no LSM and hybrid cgroups: recorded, not claimed
    assert info["unenforced"], info
    assert info["confinement"]["seccomp"]["enabled"] is True


def test_a_strict_run_loads_none_of_the_slow_modules(user: User, signed_busybox: str,
                                                     engine: str) -> None:
    """The start-up work of docs/BENCHMARKS.md stays done: a signed strict run imports no
    dataclasses (records, ADR 0003), typing, tomllib (parsed built-in profiles) or
    cryptography (libcrypto through secpod.signing._openssl). (A secpod.toml, when a
    user has one, costs tomllib: here the runtime is asked for with --runtime.)"""
    (user.home / "config" / "secpod" / "secpod.toml").unlink()
    r = user.sh([sys.executable, "-X", "importtime", "-m", "secpod", "run", "--rm",
                 "--runtime", engine, "--profile", "strict", signed_busybox, "true"])
    assert r.returncode == 0, r.stderr
    names = [line.split("|")[-1].strip() for line in r.stderr.splitlines()
             if line.startswith("import time:")]
    # What the interpreter's site set-up imported (a .pth file of the host's) comes
    # before secpod's first module and is not secpod's doing.
    first = next(i for i, n in enumerate(names) if n.split(".")[0] == "secpod")
    loaded = set(names[first:])
    assert "secpod.sandbox.create" in loaded and "secpod.signing._openssl" in loaded
    slow = {"dataclasses", "inspect", "typing", "tomllib", "cryptography", "nacl"}
    assert not loaded & slow, sorted(loaded & slow)
