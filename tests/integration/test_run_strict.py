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


# Every module a signed strict `run --rm` may load, under crun or runc, after the
# interpreter's own start-up (issue 18). A module new on this path costs every run: measure
# it (scripts/bench.sh --instructions, docs/BENCHMARKS.md) before adding it here.
STRICT_RUN_MODULES = frozenset({
    "secpod", "secpod._files", "secpod._lazy", "secpod._record", "secpod.audit",
    "secpod.audit._canon", "secpod.audit._log", "secpod.audit._merkle", "secpod.audit._note",
    "secpod.audit._policy", "secpod.audit._store", "secpod.cli", "secpod.cli._flags",
    "secpod.cli._output", "secpod.config", "secpod.errors", "secpod.images",
    "secpod.images._content", "secpod.images._manifest", "secpod.images._store",
    "secpod.images.reference", "secpod.paths", "secpod.policies", "secpod.policies._cache",
    "secpod.policies.capabilities", "secpod.policies.confine", "secpod.policies.floor",
    "secpod.policies.layers", "secpod.policies.layers.apparmor",
    "secpod.policies.layers.capabilities", "secpod.policies.layers.mounts",
    "secpod.policies.layers.namespaces", "secpod.policies.layers.resources",
    "secpod.policies.layers.seccomp", "secpod.policies.layers.selinux",
    "secpod.policies.profile", "secpod.policies.seccomp", "secpod.policies.seccomp_bpf",
    "secpod.runtime",
    "secpod.runtime._cli", "secpod.runtime.crun", "secpod.runtime.runc", "secpod.sandbox",
    "secpod.sandbox.bundle", "secpod.sandbox.create", "secpod.sandbox.environment",
    "secpod.sandbox.events", "secpod.sandbox.host", "secpod.sandbox.idmap",
    "secpod.sandbox.logs", "secpod.sandbox.monitor", "secpod.sandbox.operations",
    "secpod.sandbox.preflight", "secpod.sandbox.rootfs", "secpod.sandbox.run",
    "secpod.sandbox.signals", "secpod.sandbox.spawn", "secpod.sandbox.state",
    "secpod.sandbox.userns", "secpod.signing", "secpod.signing._json",
    "secpod.signing._openssl", "secpod.signing.identity", "secpod.signing.keys",
    "secpod.signing.payload", "secpod.signing.policy", "secpod.signing.requirements",
    "secpod.signing.sigstore", "secpod.signing.store", "secpod.spec", "secpod.spec.flags",
    "__future__", "_blake2", "_ctypes", "_datetime", "_hashlib", "_json", "_locale", "_sre",
    "_struct", "_weakrefset", "_winapi", "argparse", "base64", "binascii", "collections.abc",
    "copyreg", "ctypes", "ctypes._endian", "datetime", "enum", "errno", "fcntl", "fnmatch",
    "gc", "gettext", "hashlib", "ipaddress", "json", "json.decoder", "json.encoder",
    "json.scanner", "locale", "math", "nt", "ntpath", "pathlib", "pwd", "re", "re._casefix",
    "re._compiler", "re._constants", "re._parser", "seccomp", "select", "signal", "struct",
    "urllib", "urllib.parse",
})


def test_a_strict_run_loads_none_of_the_slow_modules(user: User, signed_busybox: str,
                                                     engine: str) -> None:
    """The start-up work of docs/BENCHMARKS.md stays done: a signed strict run imports no
    dataclasses (records, ADR 0003), typing, tomllib (parsed built-in profiles) or
    cryptography (libcrypto through secpod.signing._openssl). (A secpod.toml, when a
    user has one, costs tomllib: here the runtime is asked for with --runtime.)"""
    (user.home / "config" / "secpod" / "secpod.toml").unlink()
    # The second run, as a user's every run after the first: the first one also makes
    # the audit log's key and the seccomp cache (tempfile and what it imports).
    argv = [sys.executable, "-X", "importtime", "-m", "secpod", "run", "--rm",
            "--runtime", engine, "--profile", "strict", signed_busybox, "true"]
    assert user.sh(argv).returncode == 0
    r = user.sh(argv)
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
    assert loaded <= STRICT_RUN_MODULES, sorted(loaded - STRICT_RUN_MODULES)
    # shutil (bz2, lzma), subprocess (threading, selectors): secpod._files and
    # sandbox/spawn.py do what a run needs of them
    assert not loaded & {"shutil", "bz2", "lzma", "tempfile", "subprocess", "threading",
                         "selectors"}


def test_a_strict_run_starts_one_process(user: User, signed_busybox: str, engine: str) -> None:
    """secpod itself starts exactly one process for a foreground strict run: the runtime's
    `run` (no create-then-start, no helper of its own). strace follows only secpod (no
    -f), so the setuid id-map helpers the runtime starts still work."""
    trace = user.home / "spawns.trace"
    r = user.sh(["strace", "-qq", "-o", str(trace), "-e", "trace=fork,vfork,clone,clone3",
                 "-e", "signal=none", sys.executable, "-m", "secpod", "run", "--rm",
                 "--profile", "strict", signed_busybox, "true"])
    assert r.returncode == 0, r.stderr
    calls = [line for line in trace.read_text().splitlines()
             if line.split("(")[0] in ("fork", "vfork", "clone", "clone3")]
    assert len(calls) == 1, calls
