"""Seccomp: the Docker/Podman format in, OCI out, real libseccomp to compile and enforce."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from secpod.errors import ProfileError
from secpod.policies import _gen_strict
from secpod.policies import seccomp as sc
from secpod.policies.profile import BUILTIN_DIR

STRICT_JSON = BUILTIN_DIR / "strict-seccomp.json"
CC_JSON = BUILTIN_DIR / "containers-common-seccomp.json"


def test_strict_seccomp_is_reproducible_from_containers_common() -> None:
    assert _gen_strict.render() == STRICT_JSON.read_text(), \
        "run python3 -m secpod.policies._gen_strict"


def test_shipped_containers_common_copy_is_upstream(shared: Path) -> None:
    upstream = shared / "conformance/profiles/containers-common-seccomp.json"
    assert json.loads(CC_JSON.read_text()) == json.loads(upstream.read_text())


@pytest.mark.parametrize("name", ["containers-common-seccomp.json", "moby-default-seccomp.json"])
def test_real_profiles_load_convert_and_compile(shared: Path, name: str) -> None:
    prof = sc.load(shared / "conformance/profiles" / name)
    oci = prof.to_oci("amd64", ["CAP_CHOWN", "CAP_SETUID"], kernel=(6, 1))
    assert oci["defaultAction"] == "SCMP_ACT_ERRNO"
    assert oci["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    names = {n for e in oci["syscalls"] for n in e["names"]}
    assert {"read", "openat", "execve"} <= names
    # cap-conditioned entries: CAP_SYS_ADMIN is not held, so no unconditional mount of bpf
    allowed_plain = {n for e in oci["syscalls"] if e["action"] == "SCMP_ACT_ALLOW"
                     and not e.get("args") for n in e["names"]}
    assert "bpf" not in allowed_plain and "arch_prctl" in allowed_plain
    assert "riscv_flush_icache" not in names          # other architecture
    report = sc.compile_oci(oci, name)
    assert report.rules > 300 and report.bpf_instructions > 300
    # names newer than this libseccomp are kept and reported, never dropped silently
    assert set(report.unresolved) <= sc.NEWER_SYSCALLS


def test_moby_min_kernel_and_caps_are_resolved(shared: Path) -> None:
    prof = sc.load(shared / "conformance/profiles/moby-default-seccomp.json")

    def allowed(oci: dict) -> set[str]:
        return {n for e in oci["syscalls"] if e["action"] == "SCMP_ACT_ALLOW" for n in e["names"]}

    assert "ptrace" in allowed(prof.to_oci("amd64", [], kernel=(4, 8)))
    assert "ptrace" not in allowed(prof.to_oci("amd64", [], kernel=(4, 7)))
    assert "reboot" not in allowed(prof.to_oci("amd64", [], kernel=(6, 1)))
    assert "reboot" in allowed(prof.to_oci("amd64", ["CAP_SYS_BOOT"], kernel=(6, 1)))
    # clone: filtered without CAP_SYS_ADMIN (excludes.caps), s390 variant not on amd64
    clones = [e for e in prof.to_oci("amd64", [], kernel=(6, 1))["syscalls"]
              if e["names"] == ["clone"]]
    assert [c["args"][0]["index"] for c in clones] == [0]
    assert clones[0]["args"][0]["value"] == 2114060288


def _profile(**over: object) -> dict:
    doc: dict = {"defaultAction": "SCMP_ACT_ERRNO",
                 "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}
    doc.update(over)
    return doc


def test_unknown_syscall_is_an_error_naming_it() -> None:
    doc = _profile(syscalls=[{"names": ["read", "raed"], "action": "SCMP_ACT_ALLOW"}])
    with pytest.raises(ProfileError, match="unknown syscall 'raed'") as e:
        sc.parse(doc, "mine.json")
    assert "mine.json" in e.value.message


def test_name_known_only_on_another_architecture_is_accepted() -> None:
    prof = sc.parse(_profile(syscalls=[{"names": ["_llseek", "s390_runtime_instr"],
                                        "action": "SCMP_ACT_ALLOW"}]), "x.json")
    assert sc.compile_oci(prof.to_oci("amd64", [])).unresolved == ()


def test_unsupported_field_is_named() -> None:
    with pytest.raises(ProfileError, match=r"syscalls\[0\]: unsupported field 'nmaes'"):
        sc.parse(_profile(syscalls=[{"nmaes": ["read"], "action": "SCMP_ACT_ALLOW"}]), "f")
    with pytest.raises(ProfileError, match="unsupported field 'defaultActon'"):
        sc.parse({"defaultActon": "SCMP_ACT_ALLOW"}, "f")


def test_malformed_json_names_the_line(tmp_path: Path) -> None:
    f = tmp_path / "bad.json"
    f.write_text('{\n "defaultAction": "SCMP_ACT_ERRNO",\n "syscalls": [,]\n}')
    with pytest.raises(ProfileError, match=r"bad.json: line 3"):
        sc.load(f)


@pytest.mark.parametrize("field,value,message", [
    ("defaultAction", "SCMP_ACT_MAYBE", "unknown action"),
    ("flags", ["SECCOMP_FILTER_FLAG_FOO"], "unknown flag"),
    ("archMap", [{"architecture": "SCMP_ARCH_Z80", "subArchitectures": []}],
     "unknown architecture"),
    ("defaultErrnoRet", -1, "unsigned 32-bit"),
])
def test_bad_fields(field: str, value: object, message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        sc.parse(_profile(**{field: value}), "f")


def test_errno_name_must_agree_with_number() -> None:
    with pytest.raises(ProfileError, match="errno ENOSYS is 38"):
        sc.parse(_profile(defaultErrnoRet=1, defaultErrno="ENOSYS"), "f")


def test_libseccomp_rejection_names_the_syscall() -> None:
    prof = sc.parse(_profile(syscalls=[{"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [
        {"index": 0, "value": 1, "op": "SCMP_CMP_GT"},
        {"index": 0, "value": 9, "op": "SCMP_CMP_LT"}]}]), "f")
    with pytest.raises(ProfileError, match="libseccomp rejects the rule for 'socket'"):
        sc.compile_oci(prof.to_oci("amd64", []), "f")


# What strict must deny, called for real under the compiled filter. The child runs
# as root with no other confinement, so EPERM here comes from seccomp. Arguments
# are invalid on purpose: if the filter let a call through, the kernel would
# answer EINVAL/EFAULT/EBADF rather than act.
_PROBE = r"""
import ctypes, json, os, socket, sys, tempfile
import seccomp
from secpod.policies import seccomp as sc
oci = json.loads(sys.stdin.read())
filt, _, _ = sc.build_filter(oci)
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
nr = lambda n: seccomp.resolve_syscall(seccomp.Arch.NATIVE, n)
tmp = tempfile.mkdtemp()
fifo = os.path.join(tmp, "fifo").encode()
dev = os.path.join(tmp, "dev").encode()
calls = {
  "mount": ("mount", 0, 0, 0, 0, 0), "umount2": ("umount2", 0, 0),
  "unshare": ("unshare", 0), "setns": ("setns", -1, 0),
  "ptrace": ("ptrace", 2, 0, 0, 0), "process_vm_readv": ("process_vm_readv", 0, 0, 0, 0, 0, 1),
  "keyctl": ("keyctl", 0, -1, 0), "add_key": ("add_key", 0, 0, 0, 0, 0),
  "request_key": ("request_key", 0, 0, 0, 0), "bpf": ("bpf", -1, 0, 0),
  "perf_event_open": ("perf_event_open", 0, 0, -1, -1, 0),
  "kexec_load": ("kexec_load", 0, 0, 0, 0), "kexec_file_load": ("kexec_file_load", -1, -1, 0, 0, 0),
  "init_module": ("init_module", 0, 0, 0), "finit_module": ("finit_module", -1, 0, 0),
  "delete_module": ("delete_module", 0, 0),
  "open_by_handle_at": ("open_by_handle_at", -1, 0, 0),
  "name_to_handle_at": ("name_to_handle_at", -1, 0, 0, 0, 0),
  "io_uring_setup": ("io_uring_setup", 0, 0),
  "io_uring_enter": ("io_uring_enter", -1, 0, 0, 0, 0, 0),
  "io_uring_register": ("io_uring_register", -1, 0, 0, 0),
  "userfaultfd": ("userfaultfd", -1), "pivot_root": ("pivot_root", 0, 0), "chroot": ("chroot", 0),
  "swapon": ("swapon", 0, 0), "swapoff": ("swapoff", 0), "reboot": ("reboot", 0, 0, 0, 0),
  "syslog": ("syslog", 10, 0, 0), "acct": ("acct", 1), "quotactl": ("quotactl", 0, 0, 0, 0),
  "fsopen": ("fsopen", 0, 0), "open_tree": ("open_tree", -1, 0, 0),
  "personality_other": ("personality", 0x0400000),
  "clone_newns": ("clone", 0x00020000 | 0x00010000, 0, 0, 0, 0),
  "clone_newuser": ("clone", 0x10000000 | 0x00010000, 0, 0, 0, 0),
  "clone_newnet": ("clone", 0x40000000 | 0x00010000, 0, 0, 0, 0),
  "clone3": ("clone3", 0, 0),
  "mknod_chr": ("mknodat", -100, dev, 0o020600, 0x103),
  "mknod_blk": ("mknodat", -100, dev, 0o060600, 0x801),
  "socket_packet": ("socket", 17, 3, 0), "socket_inet_raw": ("socket", 2, 3, 1),
  "socket_inet6_raw": ("socket", 10, 3 | 0o2000000, 58), "socket_inet_packet": ("socket", 2, 10, 0),
  "mknod_fifo": ("mknodat", -100, fifo, 0o010600, 0),
  "socket_tcp": ("socket", 2, 1 | 0o2000000, 0), "socket_udp6": ("socket", 10, 2, 0),
  "socket_unix": ("socket", 1, 5, 0), "socket_netlink_raw": ("socket", 16, 3, 0),
  "getpid": ("getpid",),
  # families a network namespace does not isolate, or that strict does not need
  "socket_vsock": ("socket", 40, 1, 0), "socket_vsock_seqpacket": ("socket", 40, 5, 0),
  "socket_bluetooth": ("socket", 31, 5, 0), "socket_alg": ("socket", 38, 5, 0),
  "socket_can": ("socket", 29, 2, 1), "socket_tipc": ("socket", 30, 5, 0),
  "socket_xdp": ("socket", 44, 3, 0), "socket_key": ("socket", 15, 3, 2),
  "socket_appletalk": ("socket", 5, 2, 0), "socket_qipcrtr": ("socket", 42, 2, 0),
  "socket_family_99": ("socket", 99, 1, 0),
  "socketpair_vsock": ("socketpair", 40, 1, 0, 0), "socketpair_tipc": ("socketpair", 30, 5, 0, 0),
  "socketpair_unix": ("socketpair", 1, 1, 0, 0),
}
filt.load()
out = {}
for key, (name, *args) in calls.items():
    ctypes.set_errno(0)
    r = libc.syscall(nr(name), *[ctypes.c_long(a) if isinstance(a, int) else a for a in args])
    out[key] = ctypes.get_errno() if r == -1 else "ok"
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def strict_results() -> dict[str, object]:
    oci = sc.load(STRICT_JSON).to_oci("amd64", [])
    proc = subprocess.run([sys.executable, "-c", _PROBE], input=json.dumps(oci),
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


DENIED = ["mount", "umount2", "unshare", "setns", "ptrace", "process_vm_readv", "keyctl",
          "add_key", "request_key", "bpf", "perf_event_open", "kexec_load", "kexec_file_load",
          "init_module", "finit_module", "delete_module", "open_by_handle_at",
          "name_to_handle_at", "io_uring_setup", "io_uring_enter", "io_uring_register",
          "userfaultfd", "pivot_root", "chroot", "swapon", "swapoff", "reboot", "syslog",
          "acct", "quotactl", "fsopen", "open_tree", "personality_other", "clone_newns",
          "clone_newuser", "clone_newnet", "mknod_chr", "mknod_blk", "socket_packet",
          "socket_inet_raw", "socket_inet6_raw", "socket_inet_packet",
          "socket_vsock", "socket_vsock_seqpacket", "socket_bluetooth", "socket_alg",
          "socket_can", "socket_tipc", "socket_xdp", "socket_key", "socket_appletalk",
          "socket_qipcrtr", "socket_family_99", "socketpair_vsock", "socketpair_tipc"]


@pytest.mark.parametrize("call", DENIED)
def test_strict_denies(strict_results: dict[str, object], call: str) -> None:
    assert strict_results[call] == 1, f"{call}: {strict_results[call]} (want EPERM)"


def test_strict_clone3_is_enosys_so_libc_falls_back(strict_results: dict[str, object]) -> None:
    assert strict_results["clone3"] == 38


@pytest.mark.parametrize("call", ["mknod_fifo", "socket_tcp", "socket_udp6", "socket_unix",
                                  "socket_netlink_raw", "getpid"])
def test_strict_allows_ordinary_calls(strict_results: dict[str, object], call: str) -> None:
    assert strict_results[call] == "ok"


def test_strict_has_no_sub_architectures() -> None:
    oci = sc.load(STRICT_JSON).to_oci("amd64", [])
    assert oci["architectures"] == ["SCMP_ARCH_X86_64"]
    assert oci["defaultErrnoRet"] == 1


def test_strict_lets_unix_socketpair_through(strict_results: dict[str, object]) -> None:
    # The probe passes a NULL array: the kernel's EFAULT shows the filter let it through.
    assert strict_results["socketpair_unix"] == 14
