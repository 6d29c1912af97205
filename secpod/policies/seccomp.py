"""Seccomp: the Docker/Podman profile JSON in, OCI ``linux.seccomp`` out, libseccomp to check.

The input format is the one moby and containers/common read (``defaultAction``,
``defaultErrnoRet``, ``archMap`` or the older ``architectures``, ``syscalls``
with ``names``/``name``, ``action``, ``errnoRet``, ``args``, ``includes`` and
``excludes`` on ``caps``, ``arches`` and ``minKernel``, ``flags``,
``listenerPath``, ``listenerMetadata``; containers/common's ``defaultErrno``
and ``errno`` names are accepted when they agree with the numbers). A field we
do not know is an error naming it, never silently ignored.

Conditions are resolved as moby does: an entry is kept when the host's
architecture (Go name, e.g. ``amd64``) is in ``includes.arches`` (if given) and
not in ``excludes.arches``, every cap of ``includes.caps`` is in the
container's bounding set and none of ``excludes.caps`` is, and the running
kernel is at least ``includes.minKernel`` and below ``excludes.minKernel``.

Syscall names: a name that libseccomp knows for any architecture is accepted
(it may be a no-op on this one, like ``_llseek`` on x86_64). A name libseccomp
does not know at all is accepted only if it is a real Linux syscall newer than
the installed libseccomp (the table :data:`NEWER_SYSCALLS`): the OCI output keeps
it, and :class:`SeccompReport` lists it under ``unresolved`` because this host's
crun, which resolves names through the same libseccomp, cannot apply it (the call
then gets the default action). Any other name is a ProfileError naming it.
"""

from __future__ import annotations

import errno as _errno
import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from secpod._record import record
from secpod.errors import ProfileError

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

ACTIONS = frozenset({
    "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY",
})
OPERATORS = frozenset({
    "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE",
    "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ",
})
FLAGS = frozenset({
    "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
})
# Go architecture names (what includes/excludes.arches use) -> libseccomp names.
GO_TO_SCMP: Mapping[str, str] = {
    "amd64": "SCMP_ARCH_X86_64", "386": "SCMP_ARCH_X86", "x86": "SCMP_ARCH_X86",
    "x32": "SCMP_ARCH_X32", "arm": "SCMP_ARCH_ARM", "arm64": "SCMP_ARCH_AARCH64",
    "mips": "SCMP_ARCH_MIPS", "mipsle": "SCMP_ARCH_MIPSEL", "mips64": "SCMP_ARCH_MIPS64",
    "mips64le": "SCMP_ARCH_MIPSEL64", "mips64n32": "SCMP_ARCH_MIPS64N32",
    "mipsel64n32": "SCMP_ARCH_MIPSEL64N32", "ppc": "SCMP_ARCH_PPC", "ppc64": "SCMP_ARCH_PPC64",
    "ppc64le": "SCMP_ARCH_PPC64LE", "s390": "SCMP_ARCH_S390", "s390x": "SCMP_ARCH_S390X",
    "riscv64": "SCMP_ARCH_RISCV64", "loong64": "SCMP_ARCH_LOONGARCH64",
    "parisc": "SCMP_ARCH_PARISC", "parisc64": "SCMP_ARCH_PARISC64",
}
SCMP_ARCHES = frozenset(GO_TO_SCMP.values()) | {
    "SCMP_ARCH_M68K", "SCMP_ARCH_SH", "SCMP_ARCH_SHEB",
}
# Linux syscalls (6.6 .. 6.16) that libseccomp 2.5.4 has no name for. Upstream
# profiles list them; a newer libseccomp resolves them.
NEWER_SYSCALLS = frozenset({
    "lsm_get_self_attr", "lsm_set_self_attr", "lsm_list_modules", "mseal", "statmount",
    "listmount", "setxattrat", "getxattrat", "listxattrat", "removexattrat",
    "open_tree_attr", "file_getattr", "file_setattr", "uretprobe", "uprobe",
    "riscv_hwprobe", "futex_wake", "futex_wait", "futex_requeue", "map_shadow_stack",
    "cachestat", "fchmodat2",
})

_TOP_KEYS = frozenset({
    "defaultAction", "defaultErrnoRet", "defaultErrno", "archMap", "architectures",
    "syscalls", "flags", "listenerPath", "listenerMetadata",
})
_SYSCALL_KEYS = frozenset({
    "names", "name", "action", "errnoRet", "errno", "args", "comment", "includes", "excludes",
})
_FILTER_KEYS = frozenset({"caps", "arches", "minKernel"})
_ARG_KEYS = frozenset({"index", "value", "valueTwo", "op"})
_U64 = (1 << 64) - 1
_KERNEL_RE = re.compile(r"^(\d+)\.(\d+)")


@record(frozen=True)
class SeccompArg:
    """One argument comparison of a rule (``args[]``)."""

    index: int
    value: int
    value_two: int
    op: str

    def to_oci(self) -> dict[str, Any]:
        d: dict[str, Any] = {"index": self.index, "value": self.value, "op": self.op}
        if self.value_two:
            d["valueTwo"] = self.value_two
        return d


@record(frozen=True)
class Filter:
    """``includes`` or ``excludes`` of one entry."""

    caps: tuple[str, ...] = ()
    arches: tuple[str, ...] = ()
    min_kernel: tuple[int, int] | None = None


@record(frozen=True)
class SeccompRule:
    """One ``syscalls[]`` entry, with its conditions."""

    names: tuple[str, ...]
    action: str
    errno_ret: int | None
    args: tuple[SeccompArg, ...]
    includes: Filter
    excludes: Filter
    comment: str = ""

    def applies(self, arch: str, caps: frozenset[str], kernel: tuple[int, int]) -> bool:
        """moby's resolution of one entry for a host architecture, caps and kernel."""
        ex, inc = self.excludes, self.includes
        if ex.arches and arch in ex.arches:
            return False
        if ex.caps and any(c in caps for c in ex.caps):
            return False
        if ex.min_kernel is not None and kernel >= ex.min_kernel:
            return False
        if inc.arches and arch not in inc.arches:
            return False
        if inc.caps and not all(c in caps for c in inc.caps):
            return False
        return not (inc.min_kernel is not None and kernel < inc.min_kernel)


@record(frozen=True)
class SeccompProfile:
    """A parsed Docker/Podman seccomp profile (conditions not yet resolved)."""

    source: str
    default_action: str
    default_errno_ret: int | None
    arch_map: tuple[tuple[str, tuple[str, ...]], ...]
    architectures: tuple[str, ...]
    rules: tuple[SeccompRule, ...]
    flags: tuple[str, ...] = ()
    listener_path: str | None = None
    listener_metadata: str | None = None

    def architectures_for(self, arch: str) -> list[str]:
        """The libseccomp arches for a host whose Go arch is ``arch``."""
        if self.architectures:
            return list(self.architectures)
        native = GO_TO_SCMP.get(arch)
        for main, subs in self.arch_map:
            if main == native:
                return [main, *subs]
        return []

    def to_oci(self, arch: str, caps: Iterable[str],
               kernel: tuple[int, int] | None = None) -> dict[str, Any]:
        """OCI ``linux.seccomp`` for a host arch (Go name), bounding caps and kernel."""
        capset = frozenset(caps)
        kern = kernel if kernel is not None else running_kernel()
        out: dict[str, Any] = {"defaultAction": self.default_action}
        if self.default_action in ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"):
            out["defaultErrnoRet"] = (self.default_errno_ret if self.default_errno_ret
                                      is not None else _errno.EPERM)
        arches = self.architectures_for(arch)
        if arches:
            out["architectures"] = arches
        if self.flags:
            out["flags"] = list(self.flags)
        if self.listener_path:
            out["listenerPath"] = self.listener_path
        if self.listener_metadata:
            out["listenerMetadata"] = self.listener_metadata
        syscalls = []
        for rule in self.rules:
            if not rule.applies(arch, capset, kern):
                continue
            entry: dict[str, Any] = {"names": list(rule.names), "action": rule.action}
            if rule.action in ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"):
                entry["errnoRet"] = rule.errno_ret if rule.errno_ret is not None else _errno.EPERM
            if rule.args:
                entry["args"] = [a.to_oci() for a in rule.args]
            syscalls.append(entry)
        out["syscalls"] = syscalls
        return out

    def names(self) -> frozenset[str]:
        return frozenset(n for r in self.rules for n in r.names)


@record(frozen=True)
class SeccompReport:
    """What libseccomp made of an OCI ``linux.seccomp``."""

    rules: int                      # (syscall, condition set) rules libseccomp accepted
    bpf_instructions: int           # length of the compiled BPF program
    architectures: tuple[str, ...]
    unresolved: tuple[str, ...]     # names this libseccomp cannot resolve (NEWER_SYSCALLS)
    libseccomp: str

    def as_dict(self) -> dict[str, Any]:
        return {"rules": self.rules, "bpf_instructions": self.bpf_instructions,
                "architectures": list(self.architectures),
                "unresolved": list(self.unresolved), "libseccomp": self.libseccomp}


def running_kernel() -> tuple[int, int]:
    m = _KERNEL_RE.match(os.uname().release)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


# --- parsing ----------------------------------------------------------------


def _fail(source: str, where: str, what: str, hint: str | None = None) -> ProfileError:
    return ProfileError(f"{source}: {where}: {what}" if where else f"{source}: {what}",
                        hint=hint or "fix the seccomp profile (Docker/Podman JSON format)")


def _check_keys(source: str, where: str, obj: Mapping[str, Any], allowed: frozenset[str]) -> None:
    for key in obj:
        if key not in allowed:
            raise _fail(source, where, f"unsupported field {key!r}",
                        hint="secpod reads the Docker/Podman seccomp format; fields: "
                             + ", ".join(sorted(allowed)))


def _int(source: str, where: str, value: Any, *, bits: int = 64) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < (1 << bits):
        raise _fail(source, where, f"expected an unsigned {bits}-bit integer, got {value!r}")
    return value


def _str_list(source: str, where: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(source, where, "expected a list of strings")
    return tuple(value)


def _errno_value(source: str, where: str, number: Any, name: Any) -> int | None:
    value = None if number is None else _int(source, where, number, bits=32)
    if name is not None and name != "":
        if not isinstance(name, str) or not hasattr(_errno, name):
            raise _fail(source, where, f"unknown errno name {name!r}")
        by_name = int(getattr(_errno, name))
        if value is not None and value != by_name:
            raise _fail(source, where,
                        f"errno {name} is {by_name}, but the number given is {value}")
        value = by_name
    return value


def _kernel(source: str, where: str, value: Any) -> tuple[int, int] | None:
    if value is None or value == "":
        return None
    m = _KERNEL_RE.match(value) if isinstance(value, str) else None
    if not m:
        raise _fail(source, where, f"minKernel must look like \"4.8\", got {value!r}")
    return int(m.group(1)), int(m.group(2))


def _filter(source: str, where: str, value: Any) -> Filter:
    if value is None:
        return Filter()
    if not isinstance(value, dict):
        raise _fail(source, where, "expected an object")
    _check_keys(source, where, value, _FILTER_KEYS)
    caps = _str_list(source, f"{where}.caps", value.get("caps"))
    from secpod.policies.capabilities import normalize

    caps = tuple(normalize(c, source=f"{source}: {where}.caps") for c in caps)
    arches = _str_list(source, f"{where}.arches", value.get("arches"))
    for a in arches:
        if a not in GO_TO_SCMP:
            raise _fail(source, f"{where}.arches", f"unknown architecture {a!r}",
                        hint="use Go names: " + ", ".join(sorted(GO_TO_SCMP)))
    return Filter(caps, arches, _kernel(source, f"{where}.minKernel", value.get("minKernel")))


def _args(source: str, where: str, value: Any) -> tuple[SeccompArg, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _fail(source, where, "expected a list")
    out = []
    for i, a in enumerate(value):
        w = f"{where}[{i}]"
        if not isinstance(a, dict):
            raise _fail(source, w, "expected an object")
        _check_keys(source, w, a, _ARG_KEYS)
        if "index" not in a or "value" not in a or "op" not in a:
            raise _fail(source, w, "an argument needs index, value and op")
        index = _int(source, f"{w}.index", a["index"], bits=32)
        if index > 5:
            raise _fail(source, f"{w}.index", f"syscalls have arguments 0..5, not {index}")
        if a["op"] not in OPERATORS:
            raise _fail(source, f"{w}.op", f"unknown operator {a['op']!r}",
                        hint="operators: " + ", ".join(sorted(OPERATORS)))
        out.append(SeccompArg(index, _int(source, f"{w}.value", a["value"]),
                              _int(source, f"{w}.valueTwo", a.get("valueTwo", 0) or 0),
                              a["op"]))
    return tuple(out)


def parse(data: bytes | str | Mapping[str, Any], source: str) -> SeccompProfile:
    """Parse a Docker/Podman seccomp profile. ``source`` names it in errors.

    Raises ProfileError for malformed JSON (with its line), an unsupported field
    (with its path), an unknown action, operator, architecture, capability, or
    syscall name (see the module docstring for which names are accepted).
    """
    if isinstance(data, Mapping):
        doc: Any = data
    else:
        try:
            doc = json.loads(data)
        except json.JSONDecodeError as e:
            raise _fail(source, f"line {e.lineno} column {e.colno}", f"not JSON: {e.msg}") from e
    if not isinstance(doc, dict):
        raise _fail(source, "", "a seccomp profile is a JSON object")
    _check_keys(source, "", doc, _TOP_KEYS)
    default = doc.get("defaultAction")
    if default not in ACTIONS:
        raise _fail(source, "defaultAction", f"missing or unknown action {default!r}",
                    hint="actions: " + ", ".join(sorted(ACTIONS)))
    default_errno = _errno_value(source, "defaultErrnoRet", doc.get("defaultErrnoRet"),
                                 doc.get("defaultErrno"))
    if doc.get("archMap") and doc.get("architectures"):
        raise _fail(source, "", "both 'architectures' and 'archMap' are given; use one")
    arch_map = []
    for i, entry in enumerate(doc.get("archMap") or []):
        w = f"archMap[{i}]"
        if not isinstance(entry, dict):
            raise _fail(source, w, "expected an object")
        _check_keys(source, w, entry, frozenset({"architecture", "subArchitectures"}))
        main = entry.get("architecture")
        if not isinstance(main, str):
            raise _fail(source, w, "architecture must be a string")
        subs = _str_list(source, f"{w}.subArchitectures", entry.get("subArchitectures"))
        for a in (main, *subs):
            if a not in SCMP_ARCHES:
                raise _fail(source, w, f"unknown architecture {a!r}")
        arch_map.append((main, subs))
    architectures = _str_list(source, "architectures", doc.get("architectures"))
    for a in architectures:
        if a not in SCMP_ARCHES:
            raise _fail(source, "architectures", f"unknown architecture {a!r}")
    flags = _str_list(source, "flags", doc.get("flags"))
    for f in flags:
        if f not in FLAGS:
            raise _fail(source, "flags", f"unknown flag {f!r}",
                        hint="flags: " + ", ".join(sorted(FLAGS)))
    listener = doc.get("listenerPath")
    if listener is not None and not isinstance(listener, str):
        raise _fail(source, "listenerPath", "expected a string")
    metadata = doc.get("listenerMetadata")
    if metadata is not None and not isinstance(metadata, str):
        raise _fail(source, "listenerMetadata", "expected a string")
    syscalls = doc.get("syscalls") or []
    if not isinstance(syscalls, list):
        raise _fail(source, "syscalls", "expected a list")
    rules = []
    for i, s in enumerate(syscalls):
        w = f"syscalls[{i}]"
        if not isinstance(s, dict):
            raise _fail(source, w, "expected an object")
        _check_keys(source, w, s, _SYSCALL_KEYS)
        names = _str_list(source, f"{w}.names", s.get("names"))
        if s.get("name"):
            if names:
                raise _fail(source, w, "both 'name' and 'names' are given; use one")
            if not isinstance(s["name"], str):
                raise _fail(source, f"{w}.name", "expected a string")
            names = (s["name"],)
        if not names:
            raise _fail(source, w, "an entry needs at least one syscall name")
        action = s.get("action")
        if action not in ACTIONS:
            raise _fail(source, f"{w}.action", f"missing or unknown action {action!r}",
                        hint="actions: " + ", ".join(sorted(ACTIONS)))
        if action == "SCMP_ACT_NOTIFY" and not listener:
            raise _fail(source, f"{w}.action", "SCMP_ACT_NOTIFY needs a listenerPath")
        comment = s.get("comment") or ""
        if not isinstance(comment, str):
            raise _fail(source, f"{w}.comment", "expected a string")
        rules.append(SeccompRule(
            names=names, action=action,
            errno_ret=_errno_value(source, f"{w}.errnoRet", s.get("errnoRet"), s.get("errno")),
            args=_args(source, f"{w}.args", s.get("args")),
            includes=_filter(source, f"{w}.includes", s.get("includes")),
            excludes=_filter(source, f"{w}.excludes", s.get("excludes")),
            comment=comment,
        ))
    if default == "SCMP_ACT_NOTIFY" and not listener:
        raise _fail(source, "defaultAction", "SCMP_ACT_NOTIFY needs a listenerPath")
    prof = SeccompProfile(source=source, default_action=default,
                          default_errno_ret=default_errno, arch_map=tuple(arch_map),
                          architectures=architectures, rules=tuple(rules), flags=flags,
                          listener_path=listener, listener_metadata=metadata)
    check_names(prof.names(), source)
    return prof


def load(path: Path) -> SeccompProfile:
    """Read and parse a seccomp profile file. Raises ProfileError (also when unreadable)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ProfileError(f"cannot read seccomp profile {path}: {e.strerror}",
                           hint="give the path of a Docker/Podman seccomp JSON file") from e
    return parse(data, str(path))


# --- libseccomp -------------------------------------------------------------


_KNOWN: dict[str, bool] = {}  # per process: a run checks the same ~360 names twice


def _known_to_libseccomp(name: str) -> bool:
    known = _KNOWN.get(name)
    if known is None:
        import seccomp  # type: ignore[import-not-found]  # Debian's python3-seccomp

        # -1 (__NR_SCMP_ERROR) means no architecture knows the name; a negative
        # pseudo-number means libseccomp knows it, just not on the native arch.
        known = _KNOWN[name] = int(seccomp.resolve_syscall(seccomp.Arch.NATIVE, name)) != -1
    return known


def check_names(names: Iterable[str], source: str) -> None:
    """Raise ProfileError for the first name that is no Linux syscall (see module doc)."""
    for name in sorted(set(names)):
        if not _known_to_libseccomp(name) and name not in NEWER_SYSCALLS:
            raise ProfileError(
                f"{source}: unknown syscall {name!r}",
                hint="no architecture has a syscall of that name; check the spelling "
                     "(names are those of syscalls(2), e.g. 'openat')")


def _scmp_action(seccomp: Any, action: str, errno_ret: int | None) -> Any:
    ret = _errno.EPERM if errno_ret is None else errno_ret
    return {
        "SCMP_ACT_ALLOW": lambda: seccomp.ALLOW,
        "SCMP_ACT_ERRNO": lambda: seccomp.ERRNO(ret),
        "SCMP_ACT_KILL": lambda: seccomp.KILL,
        "SCMP_ACT_KILL_THREAD": lambda: seccomp.KILL,
        "SCMP_ACT_KILL_PROCESS": lambda: seccomp.KILL_PROCESS,
        "SCMP_ACT_TRAP": lambda: seccomp.TRAP,
        "SCMP_ACT_TRACE": lambda: seccomp.TRACE(ret),
        "SCMP_ACT_LOG": lambda: seccomp.LOG,
        "SCMP_ACT_NOTIFY": lambda: seccomp.NOTIFY,
    }[action]()


def build_filter(oci: Mapping[str, Any], source: str = "seccomp") -> tuple[Any, int, set[str]]:
    """A libseccomp ``SyscallFilter`` for an OCI ``linux.seccomp``, as crun builds it.

    Returns (filter, rules added, names this libseccomp cannot resolve). Raises
    ProfileError when libseccomp rejects a rule (naming the syscall).
    """
    import seccomp

    ops = {"SCMP_CMP_NE": seccomp.NE, "SCMP_CMP_LT": seccomp.LT, "SCMP_CMP_LE": seccomp.LE,
           "SCMP_CMP_EQ": seccomp.EQ, "SCMP_CMP_GE": seccomp.GE, "SCMP_CMP_GT": seccomp.GT,
           "SCMP_CMP_MASKED_EQ": seccomp.MASKED_EQ}
    filt = seccomp.SyscallFilter(_scmp_action(seccomp, oci["defaultAction"],
                                              oci.get("defaultErrnoRet")))
    native = seccomp.system_arch() & 0xFFFFFFFF  # the bindings use signed AUDIT_ARCH values
    arches = list(oci.get("architectures") or [])
    for a in arches:
        arch = getattr(seccomp.Arch, a.removeprefix("SCMP_ARCH_"), None)
        if arch is None:
            raise ProfileError(f"{source}: libseccomp does not support {a}",
                               hint="remove the architecture from the profile")
        if int(arch) & 0xFFFFFFFF != native and not filt.exist_arch(arch):
            filt.add_arch(arch)
    rules = 0
    unresolved: set[str] = set()
    for i, entry in enumerate(oci.get("syscalls") or []):
        action = _scmp_action(seccomp, entry["action"], entry.get("errnoRet"))
        args = [seccomp.Arg(a["index"], ops[a["op"]], a["value"], a.get("valueTwo", 0))
                for a in entry.get("args") or []]
        for name in entry["names"]:
            if not _known_to_libseccomp(name):
                unresolved.add(name)
                continue
            try:
                filt.add_rule(action, name, *args)
            except (RuntimeError, ValueError, OSError) as e:
                raise ProfileError(
                    f"{source}: syscalls[{i}]: libseccomp rejects the rule for {name!r}: {e}",
                    hint="libseccomp allows one comparison per argument in a rule, and one "
                         "action per syscall and argument set") from e
            rules += 1
    return filt, rules, unresolved


def resolution(oci: Mapping[str, Any]) -> tuple[int, tuple[str, ...]]:
    """(rules, unresolved names) that :func:`build_filter` counts for ``oci``, without
    building the filter: one rule per syscall name libseccomp knows, per entry."""
    rules = 0
    unresolved: set[str] = set()
    for entry in oci.get("syscalls") or []:
        for name in entry["names"]:
            if _known_to_libseccomp(name):
                rules += 1
            else:
                unresolved.add(name)
    return rules, tuple(sorted(unresolved))


def compile_oci(oci: Mapping[str, Any], source: str = "seccomp") -> SeccompReport:
    """Compile an OCI ``linux.seccomp`` with libseccomp, as crun would, without loading it.

    Raises ProfileError when libseccomp rejects a rule (naming the syscall).
    """
    import tempfile

    filt, rules, unresolved = build_filter(oci, source)
    with tempfile.TemporaryFile() as fh:
        filt.export_bpf(fh)
        fh.flush()
        size = os.fstat(fh.fileno()).st_size
    return SeccompReport(rules=rules, bpf_instructions=size // 8,
                         architectures=tuple(oci.get("architectures") or ()),
                         unresolved=tuple(sorted(unresolved)),
                         libseccomp=libseccomp_version())


_VERSION: list[str] = []   # per process: asked by the report cache and the kept program


def libseccomp_version() -> str:
    """The loaded libseccomp's version, e.g. ``"2.5.4"`` (``seccomp_version(3)``)."""
    if not _VERSION:
        _VERSION.append(_ask_libseccomp())
    return _VERSION[0]


def _ask_libseccomp() -> str:
    import ctypes

    class _Version(ctypes.Structure):
        _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]

    try:
        lib = ctypes.CDLL("libseccomp.so.2")
        lib.seccomp_version.restype = ctypes.POINTER(_Version)
        v = lib.seccomp_version().contents
    except (OSError, AttributeError, ValueError):
        return "unknown"
    return f"{v.major}.{v.minor}.{v.micro}"
