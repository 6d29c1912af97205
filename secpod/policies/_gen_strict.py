"""Derive ``profiles/strict-seccomp.json`` from the containers-common default profile.

Run from the repository root after updating ``profiles/containers-common-seccomp.json``:

    python3 -m secpod.policies._gen_strict            # rewrite the file
    python3 -m secpod.policies._gen_strict --check    # exit 1 if it is out of date

The derivation (kept here so a reviewer can read it, and a test re-runs it):

1. Default action: ERRNO with EPERM (default-deny).
2. Allowed: every name of containers-common's unconditional ALLOW entries and of its
   architecture-conditioned ALLOW entries, MINUS :data:`FORBIDDEN`. Capability-
   conditioned entries are dropped: strict grants no capabilities.
3. Only the main architecture of each ``archMap`` entry: no 32-bit or x32
   sub-architecture, so the 32-bit syscall table (and ``socketcall``, whose
   arguments seccomp cannot see) is not reachable.
4. Argument filters replace the plain entries for: ``clone`` (no namespace flags, as
   moby does; s390 takes flags in argument 1), ``clone3`` (ENOSYS, so libc falls back
   to clone, whose flags seccomp can see), ``socket`` (only the families a network
   namespace isolates, :data:`FAMILIES`: AF_UNIX, AF_INET, AF_INET6 with STREAM, DGRAM
   or SEQPACKET, and AF_NETLINK but not NETLINK_AUDIT; so no AF_VSOCK, whose port space
   every namespace shares, no AF_PACKET, no SOCK_RAW), ``socketpair`` (AF_UNIX only),
   ``mknod``/``mknodat`` (FIFOs,
   sockets and regular files only: no device nodes), and ``personality``
   (containers-common's safe values).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

HERE = Path(__file__).resolve().parent / "profiles"
SOURCE = HERE / "containers-common-seccomp.json"
TARGET = HERE / "strict-seccomp.json"

FORBIDDEN = frozenset({
    # mounts, old and new API
    "mount", "umount", "umount2", "pivot_root", "chroot", "fsopen", "fsconfig", "fsmount",
    "fspick", "move_mount", "open_tree", "mount_setattr",
    # namespaces
    "unshare", "setns",
    # other processes' memory
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    "process_madvise",
    # kernel keyring
    "keyctl", "add_key", "request_key",
    # kernel attack surface
    "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "fanotify_init", "fanotify_mark",
    # kernel and modules
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "reboot", "syslog", "acct", "swapon", "swapoff", "quotactl", "quotactl_fd",
    "lookup_dcookie", "nfsservctl", "uselib", "vm86", "vm86old",
    # handles that bypass path checks
    "open_by_handle_at", "name_to_handle_at",
    # host identity and time
    "sethostname", "setdomainname", "settimeofday", "stime", "clock_settime",
    "clock_settime64", "clock_adjtime", "clock_adjtime64", "adjtimex",
    # raw I/O and tty
    "ioperm", "iopl", "vhangup",
    # replaced by the argument-filtered entries below
    "clone", "clone3", "socket", "socketpair", "mknod", "mknodat", "personality",
})

_NS_FLAGS = 0x7E020000  # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
_AF_UNIX, _AF_NETLINK, _NETLINK_AUDIT = 1, 16, 9
# The address families strict allows: those whose endpoints a network namespace
# isolates (docs/profiles.md, "Socket families", says why each other family is out).
# An allow list, so a family a newer kernel adds is refused until it is judged here.
FAMILIES = (_AF_UNIX, 2, 10)   # AF_UNIX, AF_INET, AF_INET6 (AF_NETLINK has its own rule)
_SOCK_TYPE_MASK = 0xF   # the low bits; SOCK_NONBLOCK and SOCK_CLOEXEC sit above
_SOCK_OK = (1, 2, 5)    # STREAM, DGRAM, SEQPACKET (not RAW 3, RDM 4, PACKET 10)
_S_IFMT = 0o170000
_MKNOD_OK = (0, 0o100000, 0o010000, 0o140000)  # unset (regular), S_IFREG, S_IFIFO, S_IFSOCK


def _arg(index: int, op: str, value: int, two: int = 0) -> dict[str, Any]:
    d: dict[str, Any] = {"index": index, "value": value, "op": op}
    if two:
        d["valueTwo"] = two
    return d


def _allow(names: list[str], args: list[dict[str, Any]] | None = None,
           comment: str = "", **cond: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"names": names, "action": "SCMP_ACT_ALLOW"}
    if args:
        d["args"] = args
    if comment:
        d["comment"] = comment
    for k, v in cond.items():
        d[k] = v
    return d


def derive(src: dict[str, Any]) -> dict[str, Any]:
    allowed: set[str] = set()
    by_arch: dict[tuple[str, ...], set[str]] = {}
    personality: list[dict[str, Any]] = []
    for entry in src["syscalls"]:
        if entry["action"] != "SCMP_ACT_ALLOW":
            continue
        inc = entry.get("includes") or {}
        exc = entry.get("excludes") or {}
        if inc.get("caps") or inc.get("minKernel") or exc:
            continue
        names = [n for n in entry["names"] if n not in FORBIDDEN]
        if entry["names"] == ["personality"]:
            personality.extend(entry.get("args") or [])
            continue
        if entry.get("args"):
            continue
        if inc.get("arches"):
            by_arch.setdefault(tuple(inc["arches"]), set()).update(names)
        else:
            allowed.update(names)
    syscalls: list[dict[str, Any]] = [
        _allow(sorted(allowed), comment="containers-common's allow list minus what strict forbids"),
    ]
    for arches, arch_names in by_arch.items():
        if arch_names:
            syscalls.append(_allow(sorted(arch_names), includes={"arches": list(arches)}))
    for p in personality:
        syscalls.append(_allow(["personality"], [_arg(0, "SCMP_CMP_EQ", p["value"])]))
    syscalls.append(_allow(["clone"], [_arg(0, "SCMP_CMP_MASKED_EQ", _NS_FLAGS, 0)],
                           comment="no namespace flags", excludes={"arches": ["s390", "s390x"]}))
    syscalls.append(_allow(["clone"], [_arg(1, "SCMP_CMP_MASKED_EQ", _NS_FLAGS, 0)],
                           comment="s390 passes clone's flags second",
                           includes={"arches": ["s390", "s390x"]}))
    syscalls.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
                     "comment": "ENOSYS: libc falls back to clone, whose flags are filtered"})
    syscalls.append(_allow(["socket"], [_arg(0, "SCMP_CMP_EQ", _AF_NETLINK),
                                        _arg(2, "SCMP_CMP_NE", _NETLINK_AUDIT)],
                           comment="netlink (ip(8) uses SOCK_RAW here), not the audit family"))
    for family in FAMILIES:
        for t in _SOCK_OK:
            syscalls.append(_allow(["socket"], [_arg(0, "SCMP_CMP_EQ", family),
                                                _arg(1, "SCMP_CMP_MASKED_EQ", _SOCK_TYPE_MASK, t)]))
    syscalls.append(_allow(["socketpair"], [_arg(0, "SCMP_CMP_EQ", _AF_UNIX)],
                           comment="socketpair makes sockets of its family too: AF_UNIX only"))
    for t in _MKNOD_OK:
        syscalls.append(_allow(["mknod"], [_arg(1, "SCMP_CMP_MASKED_EQ", _S_IFMT, t)]))
        syscalls.append(_allow(["mknodat"], [_arg(2, "SCMP_CMP_MASKED_EQ", _S_IFMT, t)]))
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "archMap": [{"architecture": m["architecture"], "subArchitectures": []}
                    for m in src["archMap"]],
        "syscalls": syscalls,
    }


def render() -> str:
    src = json.loads(SOURCE.read_text())
    return json.dumps(derive(src), indent=2) + "\n"


def write_or_check(target: Path, text: str, module: str, argv: list[str]) -> int:
    """A generator's command line (this one's and _gen_parsed's): write ``text`` to
    ``target``, or with ``--check`` exit 1 when the file is not ``text``."""
    if "--check" in argv:
        if not target.exists() or target.read_text() != text:
            print(f"{target} is out of date: run python3 -m {module}", file=sys.stderr)
            return 1
        return 0
    from secpod._files import write_atomic

    write_atomic(target, text)
    print(f"wrote {target}", file=sys.stderr)
    return 0


def main(argv: list[str]) -> int:
    return write_or_check(TARGET, render(), "secpod.policies._gen_strict", argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
