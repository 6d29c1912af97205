"""Escape attempts inside `secpod run --profile strict`: each must fail, and fail the right way.

A static probe (tests/security/probe.c, built with gcc -static here) tries each
attempt and prints one line per attempt; the image holding it is built with
secpod's own code and signed, as strict runs only signed images. The attempts
share one container run (module scope) to keep the suite fast; each has its own
test asserting the specific failure: EPERM from seccomp, EROFS from a read-only
mount, EINVAL for an unmapped id, ENOSYS for clone3, EAGAIN from the nproc
rlimit, empty content from a masked path.
"""

from __future__ import annotations

import errno
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from secpod.images.build import busybox_rootfs, write_layout
from tests.conftest import WORK, User, make_user

# Each test runs under crun and under runc (the `engine` fixture: the user's secpod.toml).
pytestmark = [pytest.mark.crun, pytest.mark.userns, pytest.mark.usefixtures("engine")]

PROBE_C = Path(__file__).with_name("probe.c")
IMAGE = "probe:latest"
PASSWORD = "correct horse battery staple"  # noqa: S105 - a test key's passphrase
EPERM, ENOENT, EAGAIN, EINVAL, EROFS, ENOSYS, EACCES = (
    errno.EPERM, errno.ENOENT, errno.EAGAIN, errno.EINVAL, errno.EROFS, errno.ENOSYS, errno.EACCES)


@pytest.fixture(scope="module")
def probe_layout() -> Path:
    """An OCI layout: busybox plus /bin/probe, and /bin/suid-probe (setuid root in the layer)."""
    WORK.mkdir(parents=True, exist_ok=True)
    dest = Path(tempfile.mkdtemp(prefix="probe-layout-", dir=WORK))
    dest.chmod(0o755)
    with tempfile.TemporaryDirectory() as tmp:
        root = busybox_rootfs(Path(tmp) / "rootfs")
        probe = root / "bin" / "probe"
        subprocess.run(["gcc", "-static", "-O1", "-Wall", "-Werror", "-o", str(probe),
                        str(PROBE_C)], check=True, capture_output=True)
        suid = root / "bin" / "suid-probe"
        suid.write_bytes(probe.read_bytes())
        suid.chmod(0o4755)
        write_layout(root, dest / "layout", cmd=["/bin/probe", "all"])
    subprocess.run(["chmod", "-R", "a+rX", str(dest)], check=True)
    return dest / "layout"


@pytest.fixture(scope="module")
def suser(probe_layout: Path) -> Iterator[User]:
    """The test user with the probe image imported, signed, and required to be signed."""
    for u in make_user(os.environ.get("SECPOD_TEST_USER", "secpodtest")):
        u.env = dict(u.env, COSIGN_PASSWORD=PASSWORD)
        u.run("image", "import", str(probe_layout), "--name", IMAGE, check=True)
        u.run("key", "generate", "--output-key-prefix", str(u.home / "release"), check=True)
        u.run("sign", IMAGE, "--key", str(u.home / "release.key"), check=True)
        u.run("trust", "set", "--type", "sigstoreSigned", "--pubkeysfile",
              str(u.home / "release.pub"), "docker.io/library/probe", check=True)
        u.run("trust", "set", "--type", "reject", "default", check=True)
        yield u


def parse(stdout: str) -> dict[str, str]:
    out = {}
    for line in stdout.splitlines():
        name, sep, result = line.partition(": ")
        if sep:
            out[name] = result
    return out


@pytest.fixture(scope="module")
def results(suser: User) -> dict[str, str]:
    r = suser.run("run", "--rm", "--profile", "strict", IMAGE, "/bin/probe", "all")
    assert r.returncode == 0, r.stderr
    found = parse(r.stdout)
    assert len(found) > 50, r.stdout
    return found


def err(n: int) -> str:
    return f"errno {n}"


SECCOMP_DENIED = [
    "mount", "umount", "unshare-user", "unshare-mount", "unshare-pid", "unshare-net",
    "unshare-ipc", "unshare-uts", "unshare-cgroup", "unshare-time", "clone-newuser",
    "clone-newns", "clone-newnet", "setns", "ptrace-attach", "ptrace-seize",
    "process_vm_readv", "bpf", "perf_event_open", "keyctl", "add_key", "kexec_load",
    "init_module", "finit_module", "open_by_handle_at", "io_uring_setup", "userfaultfd",
    "socket-raw", "socket-raw6", "socket-packet", "socket-vsock", "socket-vsock-seqpacket",
    "socket-bluetooth", "socket-alg", "socketpair-vsock", "mknod-char", "mknod-block", "sethostname",
    "reboot", "swapoff", "chroot", "pivot_root",
]


@pytest.mark.parametrize("attempt", SECCOMP_DENIED)
def test_denied_with_eperm(results: dict[str, str], attempt: str) -> None:
    assert results[attempt] == err(EPERM), f"{attempt}: {results[attempt]}"


def test_clone3_is_enosys(results: dict[str, str]) -> None:
    assert results["clone3"] == err(ENOSYS)


def test_chown_to_an_unmapped_id_fails(results: dict[str, str]) -> None:
    assert results["chown-unmapped"] == err(EINVAL)      # no mapping for 123456789
    assert results["chown-other"] == err(EPERM)          # mapped, but no CAP_CHOWN


@pytest.mark.parametrize("attempt", ["create-sys", "write-root", "write-etc"])
def test_writes_hit_read_only_mounts(results: dict[str, str], attempt: str) -> None:
    assert results[attempt] == err(EROFS), f"{attempt}: {results[attempt]}"


@pytest.mark.parametrize("path", ["proc-sys", "sys", "root"])
def test_system_paths_and_root_are_mounted_read_only(results: dict[str, str], path: str) -> None:
    assert results[f"mode-{path}"] == "ro"
    assert results["mode-tmp"] == "rw"


@pytest.mark.parametrize("attempt", ["write-proc-sys", "write-sys"])
def test_kernel_settings_are_not_writable(results: dict[str, str], attempt: str) -> None:
    # The files belong to the host's root, which the container cannot map: the
    # permission check (EACCES) refuses before the read-only mount (above) would.
    assert results[attempt] == err(EACCES), f"{attempt}: {results[attempt]}"


def test_sysrq_trigger_is_not_writable(results: dict[str, str]) -> None:
    # Read-only and owned by the host's root where the kernel has it; absent here otherwise.
    expected = ({err(EROFS), err(EACCES)} if Path("/proc/sysrq-trigger").exists()
                else {err(ENOENT)})
    assert results["write-sysrq"] in expected


@pytest.mark.parametrize("attempt", ["read-keys", "read-timer_list"])
def test_masked_files_read_empty(results: dict[str, str], attempt: str) -> None:
    assert results[attempt] == "bytes 0"


def test_kcore_yields_nothing(results: dict[str, str]) -> None:
    # Masked (empty) where the kernel has /proc/kcore; this kernel may not have it at all.
    expected = "bytes 0" if Path("/proc/kcore").exists() else err(ENOENT)
    assert results["read-kcore"] == expected


@pytest.mark.parametrize("attempt", ["list-firmware", "list-acpi"])
def test_masked_directories_are_empty(results: dict[str, str], attempt: str) -> None:
    assert results[attempt] == "entries 0"


@pytest.mark.parametrize("attempt", ["socket-tcp", "socketpair-unix", "mknod-fifo", "write-tmp"])
def test_ordinary_things_still_work(results: dict[str, str], attempt: str) -> None:
    assert results[attempt] == "ok"


def test_fork_bomb_is_contained_by_nproc(suser: User) -> None:
    # As container uid 1000 (a host uid of its own), so the count is the bomb's alone.
    r = suser.run("run", "--rm", "--profile", "strict", "--user", "1000", IMAGE,
                  "/bin/probe", "forkbomb", timeout=120)
    assert r.returncode == 0, r.stderr
    line = parse(r.stdout)["forkbomb"]
    forked, _, code = line.removeprefix("forked ").partition(" errno ")
    assert int(code) == EAGAIN
    assert 0 < int(forked) < 512


def test_setuid_root_binary_gains_nothing(suser: User) -> None:
    name = "suid-check"
    r = suser.run("run", "-d", "--name", name, "--profile", "strict", "--read-only=false",
                  IMAGE, "/bin/probe", "sleep")
    assert r.returncode == 0, r.stderr
    try:
        # The image's setuid bit is neutralised on import ...
        ls = suser.run("exec", name, "ls", "-ln", "/bin/suid-probe")
        assert ls.returncode == 0 and ls.stdout.startswith("-rwxr-xr-x"), ls.stdout + ls.stderr
        # ... and one made inside the container (root-owned, on the writable root) does
        # not raise a user's privilege either: noNewPrivileges.
        mk = suser.run("exec", name, "sh", "-c",
                       "cp /bin/probe /suid && chmod 4755 /suid && ls -ln /suid")
        assert mk.returncode == 0, mk.stderr
        assert mk.stdout.startswith("-rwsr-xr-x") and mk.stdout.split()[2] == "0"
        ids = suser.run("exec", "--user", "1000", name, "/suid", "ids")
        assert ids.returncode == 0, ids.stderr
        assert parse(ids.stdout)["ids"] == "uid 1000 euid 1000"
        nnp = suser.run("exec", "--user", "1000", name, "grep", "NoNewPrivs",
                        "/proc/self/status")
        assert nnp.stdout.split() == ["NoNewPrivs:", "1"]
    finally:
        suser.run("rm", "-f", name)
