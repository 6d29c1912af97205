"""Profiles: TOML files of confinement settings, with ``extends`` inheritance.

Where a name is looked up, in this order: the built-ins shipped in
``secpod/policies/profiles/``, the administrator's ``/etc/secpod/profiles``, the
user's ``$XDG_CONFIG_HOME/secpod/profiles``. A user or administrator file may not
reuse a name from an earlier place (a user's own ``strict.toml`` would otherwise
weaken what ``--profile strict`` means): that is an error, not a silent choice.

A profile file (every key optional except where a built-in supplies it)::

    description = "..."
    extends = "strict"                  # inherit, then override (tables merge, values replace)

    [process]
    capabilities = ["CAP_CHOWN"]        # bounding = effective = permitted; none inheritable
    no_new_privileges = true
    rlimits = { nofile = 1024, nproc = [512, 512], core = 0 }   # N or [soft, hard]

    [seccomp]
    profile = "strict-seccomp.json"     # Docker/Podman JSON, relative to this file, or "unconfined"
    # or inline, same format: [seccomp.inline] defaultAction = ..., syscalls = [...]

    [filesystem]
    read_only_root = true
    masked_paths = ["/proc/kcore"]
    readonly_paths = ["/proc/sys"]
    allowed_bind_sources = ["~", "/tmp"]   # "/" = anywhere; "~" = the user's home
    volumes = "rw"                         # named volumes: "rw", "ro" (only :ro) or "none"
    tmpfs_size = "64m"                     # a run's --tmpfs/--mount type=tmpfs without a size
    devices = ["/dev/fuse"]                # host devices bound into the container
    [filesystem.tmpfs."/tmp"]
    size = "64m"
    mode = "1777"
    options = ["nosuid", "nodev"]

    [namespaces]
    create = ["mount", "pid", "ipc", "uts", "cgroup"]   # user: always; network: see [network]
    [network]
    mode = "private"                    # "private" (= "loopback"), "none", "pasta", "host"
    modes = ["none", "private", "pasta"]   # the --network modes a run may ask (default: all)
    publish = true                      # -p/-P allowed (inbound only)
    bind_addresses = ["127.0.0.1"]      # host addresses -p may bind ("0.0.0.0": any)
    ports = ["1024-65535"]              # host ports -p may bind
    egress = ["192.0.2.0/24:443/tcp"]   # pasta mode: the only destinations allowed out

    [sysctl]
    "net.ipv4.ping_group_range" = "0 0"

    [limits]
    enforce = "if-available"            # or "required"
    pids = 512
    memory = "1g"
    cpu_shares = 1024

    [selinux]
    enforce = "if-available"            # "required" | "if-available" | "off"
    type = "container_t"

    [apparmor]
    enforce = "if-available"
    profile = "secpod-default"

    [trust]
    require_signed = true

    [logs]
    size_max = "10m"                    # the container's log on disk, rotated files included
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path

from secpod import paths
from secpod._record import field, record
from secpod.errors import NotFound, ProfileError
from secpod.policies import capabilities as caps_mod
from secpod.policies import seccomp as seccomp_mod

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

BUILTIN_DIR = Path(__file__).resolve().parent / "profiles"
ADMIN_PROFILES = paths.ADMIN_DIR / "profiles"
ENFORCE = ("required", "if-available")
NAMESPACES = ("mount", "pid", "ipc", "uts", "cgroup", "time")
NETWORK_MODES = ("loopback", "private", "none", "pasta", "host")
RLIMITS = ("as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
           "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_SIZE_RE = re.compile(r"^(\d+)([kmg]?)$", re.IGNORECASE)
_MAX_DEPTH = 16

# key -> (type check, description); tables list their own keys.
_SCHEMA: dict[str, Any] = {
    "description": str,
    "extends": str,
    "process": {"capabilities": list, "no_new_privileges": bool, "rlimits": dict},
    "seccomp": {"profile": str, "inline": dict},
    "filesystem": {"read_only_root": bool, "masked_paths": list, "readonly_paths": list,
                   "allowed_bind_sources": list, "devices": list, "tmpfs": dict,
                   "volumes": str, "tmpfs_size": (str, int)},
    "namespaces": {"create": list},
    "network": {"mode": str, "modes": list, "publish": bool, "bind_addresses": list,
                "ports": list, "egress": list},
    "sysctl": dict,
    "limits": {"enforce": str, "pids": int, "memory": (str, int), "cpu_shares": int},
    "selinux": {"enforce": str, "type": str},
    "apparmor": {"enforce": str, "profile": str},
    "trust": {"require_signed": bool},
    "logs": {"size_max": (str, int)},
}
_TMPFS_KEYS = {"size": (str, int), "mode": str, "options": list}


@record(frozen=True)
class Tmpfs:
    """One tmpfs mount of ``[filesystem.tmpfs]``."""

    path: str
    size: int            # bytes
    mode: str            # octal string, e.g. "1777"
    options: tuple[str, ...]


@record(frozen=True)
class Profile:
    """The effective settings of a profile, inheritance resolved and validated."""

    name: str
    source: str                              # the file it came from
    description: str
    chain: tuple[str, ...]                   # this name, then what it extends, nearest first
    capabilities: tuple[str, ...]
    no_new_privileges: bool
    rlimits: tuple[tuple[str, int, int], ...]    # (name, soft, hard)
    seccomp: seccomp_mod.SeccompProfile | None   # None: unconfined
    seccomp_source: str                          # file, "inline" or "unconfined"
    read_only_root: bool
    masked_paths: tuple[str, ...]
    readonly_paths: tuple[str, ...]
    allowed_bind_sources: tuple[str, ...]
    devices: tuple[str, ...]
    tmpfs: tuple[Tmpfs, ...]
    namespaces: tuple[str, ...]               # without user and network
    network: str
    sysctls: tuple[tuple[str, str], ...]
    limits_enforce: str
    pids_limit: int | None
    memory_limit: int | None
    cpu_shares: int | None
    selinux_enforce: str                      # "required" | "if-available" | "off"
    selinux_type: str
    apparmor_enforce: str
    apparmor_profile: str
    require_signed: bool
    log_size_max: int = 10 << 20              # bytes: sandbox.logs.DEFAULT_SIZE_MAX
    # [network] besides mode (docs/networking.md)
    network_modes: tuple[str, ...] = ("none", "private", "pasta", "host")
    publish: bool = True
    bind_addresses: tuple[str, ...] = ("127.0.0.1", "::1")
    port_ranges: tuple[tuple[int, int], ...] = ((1, 65535),)
    egress: tuple[str, ...] = ()
    volumes: str = "rw"                       # named volumes: "rw" | "ro" | "none"
    tmpfs_size: int = 64 << 20                # a run's tmpfs without a size (bytes)
    raw: Mapping[str, Any] = field(repr=False, compare=False, default_factory=dict)

    def settings(self) -> dict[str, Any]:
        """The effective settings as plain data (``profile show --json``, hashing)."""
        return {
            "name": self.name,
            "source": self.source,
            "description": self.description,
            "extends": list(self.chain[1:]),
            "capabilities": list(self.capabilities),
            "no_new_privileges": self.no_new_privileges,
            "rlimits": {n: [s, h] for n, s, h in self.rlimits},
            "seccomp": {"source": self.seccomp_source,
                        "default_action": self.seccomp.default_action if self.seccomp else None,
                        "entries": len(self.seccomp.rules) if self.seccomp else 0},
            "read_only_root": self.read_only_root,
            "masked_paths": list(self.masked_paths),
            "readonly_paths": list(self.readonly_paths),
            "allowed_bind_sources": list(self.allowed_bind_sources),
            "devices": list(self.devices),
            "tmpfs": {t.path: {"size": t.size, "mode": t.mode, "options": list(t.options)}
                      for t in self.tmpfs},
            "volumes": self.volumes,
            "tmpfs_size": self.tmpfs_size,
            "namespaces": list(self.namespaces),
            "network": self.network,
            "network_policy": {"modes": list(self.network_modes), "publish": self.publish,
                               "bind_addresses": list(self.bind_addresses),
                               "ports": [f"{lo}-{hi}" for lo, hi in self.port_ranges],
                               "egress": list(self.egress)},
            "sysctl": dict(self.sysctls),
            "limits": {"enforce": self.limits_enforce, "pids": self.pids_limit,
                       "memory": self.memory_limit, "cpu_shares": self.cpu_shares},
            "selinux": {"enforce": self.selinux_enforce, "type": self.selinux_type},
            "apparmor": {"enforce": self.apparmor_enforce, "profile": self.apparmor_profile},
            "trust": {"require_signed": self.require_signed},
            "logs": {"size_max": self.log_size_max},
        }


def user_profiles_dir() -> Path:
    return paths.config_dir() / "profiles"


def search_dirs() -> list[tuple[str, Path]]:
    """(kind, folder) in lookup order."""
    return [("builtin", BUILTIN_DIR), ("admin", ADMIN_PROFILES), ("user", user_profiles_dir())]


def _check_admin_file(path: Path) -> None:
    # The administrator's profiles carry the administrator's authority: refuse them
    # if anyone but root could have written them.
    for p in (path, path.parent):
        st = p.stat()
        if st.st_uid != 0 or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise ProfileError(
                f"{p} is not owned by root or is writable by group or others",
                hint=f"as root: chown root:root {p} && chmod go-w {p}")


def find(name: str) -> tuple[str, Path]:
    """The (kind, file) of profile ``name``. Raises NotFound or ProfileError (shadowing)."""
    if not _NAME_RE.match(name):
        raise ProfileError(f"{name!r} is not a valid profile name",
                           hint="profile names are lower-case letters, digits, '.', '_' and '-'")
    found: list[tuple[str, Path]] = []
    for kind, folder in search_dirs():
        f = folder / f"{name}.toml"
        try:
            if f.is_file():
                found.append((kind, f))
        except OSError:
            continue
    if not found:
        raise NotFound(f"no profile named {name!r}",
                       hint="`secpod profile ls` lists the profiles you can use")
    if len(found) > 1:
        raise ProfileError(
            f"{found[1][1]} reuses the name of the {found[0][0]} profile {name!r}",
            hint=f"rename {found[1][1]}: a {found[1][0]} profile may not replace a "
                 f"{found[0][0]} one")
    if found[0][0] == "admin":
        _check_admin_file(found[0][1])
    return found[0]


def available() -> Iterator[tuple[str, str, Path]]:
    """(name, kind, file) of every profile file, in lookup order."""
    for kind, folder in search_dirs():
        try:
            files = sorted(folder.glob("*.toml"))
        except OSError:
            continue
        for f in files:
            yield f.stem, kind, f


def _parsed_builtin(path: Path, raw: bytes) -> dict[str, Any] | None:
    """The shipped parse of a built-in profile file, if it is of exactly these bytes
    (profiles/parsed.json, written by _gen_parsed: it spares a run importing tomllib)."""
    if path.parent != BUILTIN_DIR:
        return None
    import hashlib

    try:
        entry = json.loads((BUILTIN_DIR / "parsed.json").read_bytes()).get(path.name)
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get("sha256") != hashlib.sha256(raw).hexdigest():
        return None
    doc = entry.get("document")
    return doc if isinstance(doc, dict) else None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ProfileError(f"cannot read profile {path}: {e}",
                           hint="check that the file exists and is readable UTF-8") from e
    parsed = _parsed_builtin(path, raw)
    if parsed is not None:
        return parsed
    import tomllib

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ProfileError(f"{path}: not valid TOML: {e}",
                           hint="fix the syntax at the line and column given") from e


def _type_ok(value: Any, kind: Any) -> bool:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        return False
    return isinstance(value, kinds)


def validate_keys(doc: Mapping[str, Any], source: str) -> None:
    """Reject unknown keys and wrongly typed values, naming file and key."""
    for key, value in doc.items():
        if key not in _SCHEMA:
            raise ProfileError(f"{source}: unknown key {key!r}",
                               hint="known keys: " + ", ".join(sorted(_SCHEMA)))
        spec = _SCHEMA[key]
        if isinstance(spec, dict):
            if not isinstance(value, dict):
                raise ProfileError(f"{source}: [{key}] must be a table")
            for sub, subval in value.items():
                if sub not in spec:
                    raise ProfileError(f"{source}: unknown key {key}.{sub}",
                                       hint=f"keys of [{key}]: " + ", ".join(sorted(spec)))
                if not _type_ok(subval, spec[sub]):
                    raise ProfileError(f"{source}: {key}.{sub} has the wrong type "
                                       f"({type(subval).__name__})")
            for t, tval in (value.get("tmpfs") or {}).items() if key == "filesystem" else ():
                if not isinstance(tval, dict):
                    raise ProfileError(f"{source}: filesystem.tmpfs.{t!r} must be a table")
                for tk, tv in tval.items():
                    if tk not in _TMPFS_KEYS:
                        raise ProfileError(f"{source}: unknown key filesystem.tmpfs.{t!r}.{tk}",
                                           hint="tmpfs keys: size, mode, options")
                    if not _type_ok(tv, _TMPFS_KEYS[tk]):
                        raise ProfileError(f"{source}: filesystem.tmpfs.{t!r}.{tk} has the "
                                           "wrong type")
        elif not _type_ok(value, spec):
            raise ProfileError(f"{source}: {key} has the wrong type ({type(value).__name__})")


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "inline":
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _raw_chain(name: str, path: Path | None = None) -> tuple[dict[str, Any], list[str], str]:
    """Merged raw document, the chain of names, and the leaf's source path."""
    chain: list[str] = []
    docs: list[tuple[dict[str, Any], Path]] = []
    current: str | None = name
    current_path = path
    while current is not None or current_path is not None:
        if current_path is None:
            assert current is not None
            _, current_path = find(current)
        label = current if current is not None else current_path.stem
        if label in chain:
            raise ProfileError(
                f"{current_path}: profile {label!r} extends itself "
                f"({' -> '.join([*chain, label])})",
                hint="remove the cycle from the `extends` keys")
        if len(chain) >= _MAX_DEPTH:
            raise ProfileError(f"{current_path}: `extends` is nested deeper than {_MAX_DEPTH}")
        chain.append(label)
        doc = _read_toml(current_path)
        validate_keys(doc, str(current_path))
        docs.append((doc, current_path))
        current = doc.get("extends")
        current_path = None
    merged: dict[str, Any] = {}
    for doc, p in reversed(docs):
        d = dict(doc)
        sec = d.get("seccomp")
        if isinstance(sec, dict) and "profile" in sec and sec["profile"] != "unconfined":
            # Relative seccomp paths are relative to the file that names them.
            ref = Path(sec["profile"]).expanduser()
            d["seccomp"] = {"profile": str(ref if ref.is_absolute() else p.parent / ref)}
        elif isinstance(sec, dict) and "inline" in sec:
            d["seccomp"] = {"inline": sec["inline"], "_file": str(p)}
        merged = _merge(merged, d)
        if isinstance(sec, dict) and "profile" in sec:
            merged["seccomp"].pop("inline", None)
            merged["seccomp"].pop("_file", None)
        elif isinstance(sec, dict) and "inline" in sec:
            merged["seccomp"].pop("profile", None)
    return merged, chain, str(docs[0][1])


def parse_size(value: str | int, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        if value <= 0:
            raise ProfileError(f"{where}: a size must be positive")
        return value
    m = _SIZE_RE.match(str(value).strip())
    if not m:
        raise ProfileError(f"{where}: {value!r} is not a size",
                           hint='sizes are bytes or a number with k, m or g, e.g. "64m"')
    n = int(m.group(1)) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()]
    if n <= 0:
        raise ProfileError(f"{where}: a size must be positive")
    return n


VOLUME_MODES = ("rw", "ro", "none")   # least strict first


def _volumes_mode(value: str, where: str) -> str:
    if value not in VOLUME_MODES:
        raise ProfileError(f"{where}: {value!r} is not one of rw, ro, none",
                           hint='"rw": named volumes as asked; "ro": only read-only ones; '
                                '"none": no named volumes')
    return value


def _str_list(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ProfileError(f"{where} must be a list of strings")
    return tuple(value)


def _abs_paths(value: Any, where: str, *, allow_home: bool = False) -> tuple[str, ...]:
    out = _str_list(value, where)
    for p in out:
        if allow_home and (p == "~" or p.startswith("~/")):
            continue
        if not p.startswith("/") or "\0" in p or "/../" in f"{p}/":
            raise ProfileError(f"{where}: {p!r} is not an absolute path")
    return out


def _enforce(value: Any, where: str, *, allow_off: bool) -> str:
    allowed = (*ENFORCE, "off") if allow_off else ENFORCE
    if value not in allowed:
        raise ProfileError(f"{where} must be one of {', '.join(allowed)}, not {value!r}")
    return str(value)


def build(doc: Mapping[str, Any], name: str, source: str, chain: tuple[str, ...]) -> Profile:
    """Validate a merged document into a Profile. Raises ProfileError."""
    proc = doc.get("process", {})
    src = source
    caps = tuple(caps_mod.normalize(c, source=f"{src}: process.capabilities")
                 for c in _str_list(proc.get("capabilities", []), f"{src}: process.capabilities"))
    caps = tuple(c for c in caps_mod.ALL_CAPS if c in set(caps))
    rlimits = []
    for rname, rval in sorted((proc.get("rlimits") or {}).items()):
        if rname not in RLIMITS:
            raise ProfileError(f"{src}: unknown rlimit process.rlimits.{rname}",
                               hint="rlimits: " + ", ".join(RLIMITS))
        if isinstance(rval, int) and not isinstance(rval, bool):
            soft = hard = rval
        elif (isinstance(rval, list) and len(rval) == 2
              and all(isinstance(v, int) and not isinstance(v, bool) for v in rval)):
            soft, hard = rval
        else:
            raise ProfileError(f"{src}: process.rlimits.{rname} must be N or [soft, hard]")
        if not (0 <= soft <= hard < 1 << 64):
            raise ProfileError(f"{src}: process.rlimits.{rname}: need 0 <= soft <= hard")
        rlimits.append((rname, soft, hard))

    sec = doc.get("seccomp", {})
    seccomp_profile: seccomp_mod.SeccompProfile | None
    if "inline" in sec:
        where = f"{sec.get('_file', src)}: seccomp.inline"
        seccomp_profile = seccomp_mod.parse(sec["inline"], where)
        seccomp_source = "inline"
    elif sec.get("profile", "unconfined") == "unconfined":
        seccomp_profile, seccomp_source = None, "unconfined"
    else:
        seccomp_path = Path(sec["profile"])
        if not seccomp_path.is_file():
            raise ProfileError(f"{src}: seccomp.profile: cannot read seccomp profile "
                               f"{seccomp_path}: no such file",
                               hint="a relative path is relative to the profile file "
                                    "that names it")
        seccomp_profile = seccomp_mod.load(seccomp_path)
        seccomp_source = str(seccomp_path)

    fs = doc.get("filesystem", {})
    tmpfs = []
    for tpath, t in sorted((fs.get("tmpfs") or {}).items()):
        where = f"{src}: filesystem.tmpfs.{tpath!r}"
        if not tpath.startswith("/") or tpath == "/":
            raise ProfileError(f"{where}: the mount point must be an absolute path below /")
        mode = t.get("mode", "1777")
        if not re.fullmatch(r"[0-7]{3,4}", mode):
            raise ProfileError(f"{where}.mode: {mode!r} is not an octal mode")
        opts = _str_list(t.get("options", ["nosuid", "nodev"]), f"{where}.options")
        for o in opts:
            if o not in ("nosuid", "nodev", "noexec", "exec", "suid", "dev", "ro", "rw",
                         "relatime", "noatime", "strictatime", "nr_inodes"):
                raise ProfileError(f"{where}.options: unsupported option {o!r}",
                                   hint="size and mode have their own keys")
        tmpfs.append(Tmpfs(tpath, parse_size(t.get("size", "64m"), f"{where}.size"), mode, opts))

    ns = _str_list(doc.get("namespaces", {}).get("create", list(NAMESPACES[:5])),
                   f"{src}: namespaces.create")
    for n in ns:
        if n not in NAMESPACES and n != "user":
            raise ProfileError(f"{src}: namespaces.create: unknown namespace {n!r}",
                               hint="namespaces: " + ", ".join(NAMESPACES)
                               + " (user is always created; network follows [network] mode)")
    if "mount" not in ns:
        raise ProfileError(f"{src}: namespaces.create must include \"mount\"",
                           hint="a container always has its own mount namespace")
    network = doc.get("network", {}).get("mode", "loopback")
    if network not in NETWORK_MODES:
        raise ProfileError(f"{src}: network.mode must be one of {', '.join(NETWORK_MODES)}")
    net_policy = _network_policy(doc.get("network", {}), src)

    sysctls = []
    for k, v in sorted((doc.get("sysctl") or {}).items()):
        if not isinstance(v, str | int) or isinstance(v, bool):
            raise ProfileError(f"{src}: sysctl.{k} must be a string or a number")
        if not re.fullmatch(r"[a-z0-9_]+(\.[a-zA-Z0-9_*-]+)+", k):
            raise ProfileError(f"{src}: sysctl: {k!r} is not a sysctl name")
        if not (k.startswith(("net.", "kernel.shm", "kernel.msg", "kernel.sem"))
                or k == "fs.mqueue" or k.startswith("fs.mqueue.")):
            raise ProfileError(f"{src}: sysctl {k!r} is not namespaced",
                               hint="only net.*, kernel.shm*/msg*/sem* and fs.mqueue.* apply "
                                    "to a container alone")
        sysctls.append((k, str(v)))

    limits = doc.get("limits", {})
    lim_enf = _enforce(limits.get("enforce", "if-available"), f"{src}: limits.enforce",
                       allow_off=False)
    pids = limits.get("pids")
    if pids is not None and pids <= 0:
        raise ProfileError(f"{src}: limits.pids must be positive")
    memory = limits.get("memory")
    mem = parse_size(memory, f"{src}: limits.memory") if memory is not None else None
    shares = limits.get("cpu_shares")
    if shares is not None and not 2 <= shares <= 262144:
        raise ProfileError(f"{src}: limits.cpu_shares must be between 2 and 262144")

    se = doc.get("selinux", {})
    aa = doc.get("apparmor", {})
    aa_profile = aa.get("profile", "secpod-default")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", aa_profile):
        raise ProfileError(f"{src}: apparmor.profile: {aa_profile!r} is not a profile name")
    se_type = se.get("type", "container_t")
    if not re.fullmatch(r"[a-z0-9_]+_t", se_type):
        raise ProfileError(f"{src}: selinux.type: {se_type!r} is not an SELinux type")
    description = doc.get("description", "")
    return Profile(
        name=name, source=source, description=description, chain=chain,
        capabilities=caps,
        no_new_privileges=proc.get("no_new_privileges", True),
        rlimits=tuple(rlimits),
        seccomp=seccomp_profile, seccomp_source=seccomp_source,
        read_only_root=fs.get("read_only_root", False),
        masked_paths=_abs_paths(fs.get("masked_paths"), f"{src}: filesystem.masked_paths"),
        readonly_paths=_abs_paths(fs.get("readonly_paths"), f"{src}: filesystem.readonly_paths"),
        allowed_bind_sources=_abs_paths(fs.get("allowed_bind_sources", ["/"]),
                                        f"{src}: filesystem.allowed_bind_sources",
                                        allow_home=True),
        devices=_abs_paths(fs.get("devices"), f"{src}: filesystem.devices"),
        tmpfs=tuple(tmpfs),
        volumes=_volumes_mode(fs.get("volumes", "rw"), f"{src}: filesystem.volumes"),
        tmpfs_size=parse_size(fs.get("tmpfs_size", "64m"), f"{src}: filesystem.tmpfs_size"),
        namespaces=tuple(n for n in NAMESPACES if n in ns),
        network=network,
        sysctls=tuple(sysctls),
        limits_enforce=lim_enf, pids_limit=pids, memory_limit=mem, cpu_shares=shares,
        selinux_enforce=_enforce(se.get("enforce", "if-available"), f"{src}: selinux.enforce",
                                 allow_off=True),
        selinux_type=se_type,
        apparmor_enforce=_enforce(aa.get("enforce", "if-available"), f"{src}: apparmor.enforce",
                                  allow_off=True),
        apparmor_profile=aa_profile,
        require_signed=doc.get("trust", {}).get("require_signed", False),
        log_size_max=_log_size(doc.get("logs", {}).get("size_max"), f"{src}: logs.size_max"),
        **net_policy,
        raw=doc,
    )


def _network_policy(net: Mapping[str, Any], src: str) -> dict[str, Any]:
    """[network] modes, publish, bind_addresses, ports, egress (each validated)."""
    out: dict[str, Any] = {}
    if "modes" in net:
        modes = _str_list(net["modes"], f"{src}: network.modes")
        for m in modes:
            if m not in NETWORK_MODES:
                raise ProfileError(f"{src}: network.modes: unknown mode {m!r}",
                                   hint="modes: none, private, pasta, host")
        out["network_modes"] = tuple(dict.fromkeys("private" if m == "loopback" else m
                                                   for m in modes))
    if "publish" in net:
        if not isinstance(net["publish"], bool):
            raise ProfileError(f"{src}: network.publish must be true or false")
        out["publish"] = net["publish"]
    if "bind_addresses" in net:
        import ipaddress

        addrs = []
        for a in _str_list(net["bind_addresses"], f"{src}: network.bind_addresses"):
            try:
                addrs.append(str(ipaddress.ip_address(a)))
            except ValueError as e:
                raise ProfileError(f"{src}: network.bind_addresses: {a!r} is not an IP "
                                   "address", hint='e.g. ["127.0.0.1"], or "0.0.0.0" for '
                                   "every address") from e
        out["bind_addresses"] = tuple(addrs)
    if "ports" in net:
        from secpod.network import ports as ports_mod

        ranges = []
        for r in _str_list(net["ports"], f"{src}: network.ports"):
            try:
                ranges.append(ports_mod.parse_port_range(r, f"{src}: network.ports"))
            except ValueError as e:
                raise ProfileError(str(e), hint='e.g. ["8000-8999", "443"]') from e
        out["port_ranges"] = tuple(ranges)
    if "egress" in net:
        from secpod.network import ports as ports_mod

        rules = _str_list(net["egress"], f"{src}: network.egress")
        for r in rules:
            try:
                ports_mod.parse_egress(r, f"{src}: network.egress")
            except ValueError as e:
                raise ProfileError(str(e), hint='ADDRESS[/PREFIX]:PORT[-PORT]/tcp|udp, e.g. '
                                   '"192.0.2.0/24:443/tcp"') from e
        out["egress"] = tuple(rules)
    return out


def _log_size(value: str | int | None, where: str) -> int:
    from secpod.sandbox.logs import DEFAULT_SIZE_MAX, MIN_SIZE_MAX

    if value is None:
        return DEFAULT_SIZE_MAX
    n = parse_size(value, where)
    if n < MIN_SIZE_MAX:
        raise ProfileError(f"{where}: {value!r} is below the smallest log size, "
                           f"{MIN_SIZE_MAX >> 10}k",
                           hint="the log is kept in two files of half the size each; "
                                'give at least "64k"')
    return n


_CACHE: dict[tuple[str, ...], Profile] = {}


def _stamp(chain_files: list[Path]) -> tuple[str, ...]:
    out = []
    for f in chain_files:
        try:
            st = f.stat()
            out.append(f"{f}:{st.st_mtime_ns}:{st.st_size}:{st.st_ino}")
        except OSError:
            out.append(f"{f}:missing")
    return tuple(out)


def load(name: str) -> Profile:
    """The effective profile ``name`` (built-in, administrator's or user's).

    Raises NotFound if no such profile exists, ProfileError if it (or anything it
    extends, or its seccomp file) is malformed, names an unknown key, capability
    or syscall, or extends itself.
    """
    _, path = find(name)
    key = (name, *_stamp([path]))
    if key in _CACHE and path.parent == BUILTIN_DIR:
        return _CACHE[key]
    doc, chain, source = _raw_chain(name)
    prof = build(doc, name, source, tuple(chain))
    if path.parent == BUILTIN_DIR:
        _CACHE[key] = prof
    return prof


def load_file(path: Path) -> Profile:
    """A profile from any file (``profile lint FILE``); its ``extends`` are looked up by name."""
    doc, chain, source = _raw_chain(path.stem, path)
    return build(doc, path.stem, source, tuple(chain))


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


def home_of(user: str | None) -> Path | None:
    """The home folder of ``user`` (or of the invoking user) from the password database.

    Not ``$HOME``: a user could point that anywhere (``HOME=/etc``), and ``~`` in a
    profile's allowed bind sources must not follow it.
    """
    import pwd

    try:
        if user:
            return Path(pwd.getpwnam(user).pw_dir)
        return Path(pwd.getpwuid(os.getuid()).pw_dir)
    except KeyError:
        return None
