"""The seccomp program secpod compiles once and hands to crun (run.oci.seccomp_bpf_data,
secpod.policies.seccomp_bpf): byte for byte what crun compiles of the same JSON, kept
per distinct filter, named in the container's record, and never taken from a bad entry."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import User

pytestmark = [pytest.mark.crun, pytest.mark.userns]

ANNOTATION = "run.oci.seccomp_bpf_data"


def _inspect(user: User, cid: str) -> dict[str, object]:
    r = user.run("inspect", cid)
    assert r.returncode == 0, r.stderr
    info: dict[str, object] = json.loads(r.stdout)[0]["Secpod"]
    return info


def _crun_compiles(user: User, config: dict[str, object], tag: str) -> bytes:
    """What crun itself compiles of ``config``'s seccomp JSON (the same config, without
    the annotation): the seccomp.bpf it writes into its state folder at `create`."""
    bundle = user.home / f"plain-{tag}"
    bundle.mkdir()
    plain = json.loads(json.dumps(config))
    plain["annotations"].pop(ANNOTATION)
    (bundle / "config.json").write_text(json.dumps(plain))
    root = user.home / f"crun-root-{tag}"
    for path in (bundle, bundle / "config.json"):
        os.chown(path, user.uid, user.gid)
    out = user.home / f"crun-{tag}.out"
    # The created container's init keeps crun's stdio: not pipes the test would wait on.
    created = user.sh(["sh", "-c", f'crun --root="{root}" --cgroup-manager=disabled create '
                       f'--bundle "{bundle}" plain-{tag} </dev/null >"{out}" 2>&1'])
    assert created.returncode == 0, out.read_text()
    try:
        return (root / f"plain-{tag}" / "seccomp.bpf").read_bytes()
    finally:
        user.sh(["crun", f"--root={root}", "delete", "-f", f"plain-{tag}"])


def _profile_file(user: User, shared: Path, name: str) -> str:
    path = user.home / name
    shutil.copy(shared / "conformance" / "profiles" / name, path)
    os.chown(path, user.uid, user.gid)
    return str(path)


@pytest.mark.parametrize("case", ["strict", "default", "containers-common", "moby"])
def test_crun_loads_the_program_it_would_compile(user: User, busybox: str,
                                                 signed_busybox: str, shared: Path,
                                                 case: str) -> None:
    """For secpod's two profiles and Podman's and Docker's own filters (three
    architectures each), the program in the bundle is the one crun makes of the JSON
    beside it, and the record names its digest."""
    args = {"strict": ["--profile", "strict", signed_busybox],
            "default": ["--profile", "default", "--read-only", busybox],
            "containers-common": ["--read-only", "--security-opt", "seccomp=" + _profile_file(
                user, shared, "containers-common-seccomp.json"), busybox],
            "moby": ["--read-only", "--security-opt", "seccomp=" + _profile_file(
                user, shared, "moby-default-seccomp.json"), busybox]}[case]
    r = user.run("create", *args, "cat", "/proc/self/status")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    info = _inspect(user, cid)
    config = info["config"]
    assert isinstance(config, dict)
    program = base64.b64decode(config["annotations"][ANNOTATION])
    assert len(program) % 8 == 0 and len(program) > 8
    assert program == _crun_compiles(user, config, case)
    seccomp = info["confinement"]["seccomp"]  # type: ignore[index]
    assert seccomp["bpf"] == "sha256:" + hashlib.sha256(program).hexdigest()
    assert seccomp["bpf_instructions"] == len(program) // 8
    for step in (["start", cid], ["wait", cid]):
        done = user.run(*step)
        assert done.returncode == 0, done.stderr
    logs = user.run("logs", cid)
    assert re.search(r"^Seccomp:\s*2$", logs.stdout, re.M), logs.stdout + logs.stderr


def _programs(user: User) -> list[Path]:
    return sorted((user.home / "data" / "secpod" / "seccomp").glob("*.bpf"))


def test_a_program_is_compiled_once_and_a_bad_entry_never_loaded(user: User,
                                                                 busybox: str) -> None:
    run = ["run", "--rm", "--profile", "default", "--read-only", busybox,
           "cat", "/proc/self/status"]
    assert user.run(*run).returncode == 0
    [entry] = _programs(user)
    good = entry.read_bytes()
    before = entry.stat()
    r = user.run(*run)
    assert r.returncode == 0, r.stderr
    assert _programs(user) == [entry]
    assert entry.stat().st_mtime_ns == before.st_mtime_ns   # read, not compiled again
    assert (entry.stat().st_mode & 0o777) == 0o600
    assert (entry.parent.stat().st_mode & 0o777) == 0o700

    # Not a BPF program's size (a cut write): compiled again, the entry replaced.
    entry.write_bytes(good[:7])
    r = user.run(*run)
    assert r.returncode == 0 and re.search(r"^Seccomp:\s*2$", r.stdout, re.M), r.stderr
    assert entry.read_bytes() == good

    # A symlink in its place is not followed (it could point at any program).
    decoy = user.file("decoy.bpf", good[:8])
    entry.unlink()
    entry.symlink_to(decoy)
    r = user.run(*run)
    assert r.returncode == 0, r.stderr
    assert not entry.is_symlink() and entry.read_bytes() == good
    assert decoy.read_bytes() == good[:8]

    # Writable by others: not used, written anew.
    entry.chmod(0o666)
    assert user.run(*run).returncode == 0
    assert (entry.stat().st_mode & 0o777) == 0o600 and entry.read_bytes() == good


def test_an_exec_runs_under_the_same_program(user: User, busybox: str) -> None:
    r = user.run("run", "-d", "--profile", "default", busybox, "sleep", "60")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    e = user.run("exec", cid, "cat", "/proc/self/status")
    assert e.returncode == 0, e.stderr
    assert re.search(r"^Seccomp:\s*2$", e.stdout, re.M), e.stdout
    assert re.search(r"^Seccomp_filters:\s*1$", e.stdout, re.M), e.stdout
    user.run("rm", "-f", cid)


def test_runc_compiles_the_filter_itself(user: User, busybox: str) -> None:
    r = user.run("create", "--runtime", "runc", "--profile", "default", "--read-only",
                 busybox, "true")
    assert r.returncode == 0, r.stderr
    info = _inspect(user, r.stdout.strip())
    assert ANNOTATION not in info["config"]["annotations"]  # type: ignore[index]
    assert "bpf" not in info["confinement"]["seccomp"]  # type: ignore[index]
    assert info["confinement"]["seccomp"]["enabled"] is True  # type: ignore[index]
