"""``secpod doctor``: every preflight check, reported instead of stopping at the first."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Callable

from secpod._record import asdict, record
from secpod.errors import Error
from secpod.sandbox import host as hostmod
from secpod.sandbox import preflight


@record(frozen=True)
class Check:
    name: str
    status: str  # "ok", "warn" (runs, with less enforced) or "fail" (cannot run)
    detail: str
    hint: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return asdict(self)


def _version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False).stdout
    except OSError:
        return "?"
    return out.splitlines()[0].strip() if out else "?"


def _guard(name: str, fn: Callable[[], Check]) -> Check:
    try:
        return fn()
    except Error as e:
        return Check(name, "fail", e.message, e.hint)


def run_checks() -> list[Check]:
    features = hostmod.probe()
    checks: list[Check] = []

    def user() -> Check:
        preflight.refuse_root()
        return Check("user", "ok", f"uid {os.getuid()}, not root, no setuid/setgid wrapper")

    checks.append(_guard("user", user))

    def ids() -> Check:
        ident = preflight.identity()
        spans = ", ".join(f"{m.host_id}+{m.size}" for m in ident.uid_map[1:])
        return Check(
            "id mappings",
            "ok",
            f"container root = uid {ident.uid}; subordinate uids {spans}; "
            "newuidmap/newgidmap present",
        )

    if os.getuid() != 0:
        checks.append(_guard("id mappings", ids))
    checks.append(_guard("/etc/subuid", lambda: _grants_check("subuid")))
    checks.append(_guard("/etc/subgid", lambda: _grants_check("subgid")))

    if preflight.userns_allowed():
        probe = (
            subprocess.run(
                ["unshare", "--user", "true"], capture_output=True, text=True, check=False
            )
            if shutil.which("unshare")
            else None
        )
        if probe is None or probe.returncode == 0:
            checks.append(Check("user namespaces", "ok", "unprivileged user namespaces allowed"))
        else:
            checks.append(
                Check(
                    "user namespaces",
                    "fail",
                    probe.stderr.strip(),
                    "as root: sysctl -w user.max_user_namespaces=15000",
                )
            )
    else:
        checks.append(
            Check(
                "user namespaces",
                "fail",
                "unprivileged user namespaces are disabled",
                "as root: sysctl -w user.max_user_namespaces=15000",
            )
        )

    checks += _runtime_checks()
    conmon = shutil.which("conmon", path=os.environ.get("PATH", "") + ":/usr/bin")
    checks.append(
        Check("conmon", "ok", f"{conmon}: {_version([conmon, '--version'])}")
        if conmon
        else Check(
            "conmon",
            "fail",
            "conmon not found (needed for -d and create)",
            "apt-get install conmon",
        )
    )

    mode = features.cgroup_mode
    if mode is hostmod.CgroupMode.HYBRID:
        checks.append(
            Check(
                "cgroups",
                "fail",
                "hybrid layout: v1 controllers plus a v2 mount at "
                "/sys/fs/cgroup/unified; rootless crun refuses it (runc runs there, "
                "but only configs that ask for no cgroup, as secpod writes here)",
                preflight.HYBRID_HINT,
            )
        )
    elif features.can_limit_resources:
        checks.append(
            Check(
                "cgroups",
                "ok",
                "cgroup v2 with a delegated cgroup: pids and memory limits are enforced",
            )
        )
    elif mode is hostmod.CgroupMode.V2 and features.cgroup_delegated:
        checks.append(
            Check(
                "cgroups",
                "warn",
                "cgroup v2 with a delegated cgroup that offers no "
                f"{', '.join(features.missing_controllers)} controller (they are bound "
                "elsewhere, to v1 hierarchies): containers run with crun's cgroup manager "
                "disabled; pids/memory/cpu limits are not enforced (profiles that "
                "require them refuse to run)",
                "boot with systemd.unified_cgroup_hierarchy=1 so that every controller "
                "is in the v2 hierarchy",
            )
        )
    else:
        checks.append(
            Check(
                "cgroups",
                "warn",
                f"cgroup {mode.value} without delegation to this user: containers run "
                "with crun's cgroup manager disabled; pids/memory limits are not "
                "enforced (profiles that require them refuse to run)",
                "use cgroup v2 with systemd user delegation (Delegate=yes) to enforce limits",
            )
        )
    checks.append(
        Check(
            "seccomp",
            "ok" if features.seccomp else "fail",
            "seccomp filters available" if features.seccomp else "no seccomp",
        )
    )
    checks.append(
        Check(
            "selinux",
            "ok" if features.selinux_enabled else "warn",
            "SELinux enabled: container labels enforced"
            if features.selinux_enabled
            else "SELinux is off: labels are recorded as not enforced",
        )
    )
    checks.append(
        Check(
            "apparmor",
            "ok" if features.apparmor_enabled else "warn",
            f"AppArmor enabled, {len(features.apparmor_profiles)} profiles loaded"
            if features.apparmor_enabled
            else "AppArmor is not in this kernel: profiles are recorded as not enforced",
        )
    )
    checks.append(
        Check(
            "landlock",
            "ok" if hostmod.landlock_available() else "warn",
            "Landlock available" if hostmod.landlock_available() else "Landlock not available",
        )
    )
    checks += network_checks()
    checks.append(overlay_check())
    checks.append(keyring_check(os.getuid()))
    return checks


def keyring_check(uid: int, key_users: str = "/proc/key-users") -> Check:
    """How many more containers the kernel's key quota lets this user hold at once: crun
    gives every container a session keyring of its own, and with the quota full every
    create fails with "Disk quota exceeded" (200 keys per user by default)."""
    try:
        with open(key_users) as f:
            lines = f.read().splitlines()
    except OSError as e:
        return Check("key quota", "warn", f"cannot read {key_users}: {e.strerror}")
    used, limit = 0, 0
    for line in lines:
        who, _, rest = line.partition(":")
        fields = rest.split()
        if who.strip() == str(uid) and len(fields) >= 3 and "/" in fields[2]:
            used, limit = (int(x) for x in fields[2].split("/"))
            break
    else:  # no keys yet: the limit is the sysctl's
        try:
            with open("/proc/sys/kernel/keys/maxkeys") as f:
                limit = int(f.read())
        except (OSError, ValueError):
            return Check("key quota", "warn", f"no line for uid {uid} in {key_users}")
    free = limit - used
    detail = (f"{used} of {limit} kernel keys in use: about {free} more containers can be "
              "held at once (the runtime gives each a session keyring)")
    if free >= 20:
        return Check("key quota", "ok", detail)
    return Check("key quota", "warn", detail,
                 "as root: sysctl -w kernel.keys.maxkeys=2000 kernel.keys.maxbytes=200000 "
                 "(or remove containers you no longer need: secpod container prune)")


def network_checks(tun: str = "/dev/net/tun") -> list[Check]:
    """What networking this host gives a user: published ports (``-p``), and the tun
    device that pasta and slirp4netns need for an outbound network (docs/networking.md)."""
    from secpod.network.ports import UNPRIVILEGED_PORT_SYSCTL, unprivileged_port_start

    start = unprivileged_port_start()
    out = [Check("published ports", "ok",
                 f"-p works in --network private; host ports from {start} up "
                 f"({UNPRIVILEGED_PORT_SYSCTL} = {start})")]
    try:
        st = os.stat(tun)
        usable = os.access(tun, os.R_OK | os.W_OK)
        detail = f"{tun}: mode {st.st_mode & 0o7777:04o}, owner uid {st.st_uid}"
    except OSError as e:
        usable, detail = False, f"{tun}: {e.strerror}"
    if usable:
        out.append(Check("tun device", "ok", f"{detail}: usable by you (pasta, slirp4netns)"))
    else:
        out.append(Check(
            "tun device", "warn",
            f"{detail}: not readable and writable by you, so pasta and slirp4netns (an "
            "outbound network for rootless containers) fail with 'Permission denied'; "
            "-p in --network private does not need it",
            hint=f"as root: chmod 0666 {tun} (its usual mode; udev sets it on most "
                 "distributions, and this host has no udev: make it lasting with a "
                 "tmpfiles.d line 'z /dev/net/tun 0666 root root -')"))
    pasta = shutil.which("pasta")
    out.append(Check("pasta", "ok" if pasta else "warn",
                     f"{pasta}: {_version([pasta, '--version'])}" if pasta else
                     "pasta not found: --network pasta is refused",
                     hint=None if pasta else "apt-get install passt"))
    nft = shutil.which("nft")
    out.append(Check("nft", "ok" if nft else "warn",
                     f"{nft}: pasta's egress allow lists ([network] egress)" if nft else
                     "nft not found: a pasta container whose profile has an egress list "
                     "fails to start", hint=None if nft else "apt-get install nftables"))
    return out


def overlay_check() -> Check:
    """Whether kernel overlayfs mounts in a user namespace, as a writable root needs
    (docs/adr/0006-overlay-root.md): tried, in a scratch folder, with util-linux's
    unshare."""
    import tempfile

    name = "overlay root"
    try:
        with tempfile.TemporaryDirectory(prefix="secpod-doctor-") as tmp:
            for d in ("lower", "upper", "work", "merged"):
                os.mkdir(os.path.join(tmp, d))
            opts = f"lowerdir={tmp}/lower,upperdir={tmp}/upper,workdir={tmp}/work,userxattr"
            proc = subprocess.run(
                ["unshare", "--user", "--map-root-user", "--mount", "mount", "-t", "overlay",
                 "overlay", "-o", opts, f"{tmp}/merged"],
                capture_output=True, text=True, timeout=20, check=False)
            # overlay's work/work is made without any permission bits
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(tmp, "work", "work"), 0o700)
    except (OSError, subprocess.TimeoutExpired) as e:
        return Check(name, "fail", f"cannot try an overlay mount: {e}",
                     hint="util-linux's unshare and mount are needed")
    if proc.returncode == 0:
        return Check(name, "ok", "kernel overlayfs mounts in a user namespace: a writable "
                     "root is an overlay over the image's tree (no copy)")
    return Check(name, "fail",
                 f"kernel overlayfs does not mount in a user namespace here "
                 f"({proc.stderr.strip() or proc.returncode}): containers with a writable "
                 "root cannot be made",
                 hint="a kernel of 5.11 or later mounts it; meanwhile run with --read-only "
                      "(or --profile strict)")


def _runtime_checks() -> list[Check]:
    """crun and runc: found or not, their versions, which one new containers get and
    whether the administrator's floor allows it."""
    from secpod import config, runtime
    from secpod.policies import floor
    from secpod.runtime.runc import runc_path

    try:
        default = config.load().runtime or runtime.DEFAULT
        settings = ""
    except Error as e:
        default, settings = runtime.DEFAULT, e.message
    out = []
    for name, binary in (("crun", shutil.which("crun")), ("runc", runc_path())):
        role = " (the default for new containers)" if name == default else ""
        try:
            floor.check_runtime(name, None)
            refused = ""
        except Error as e:
            refused = e.message
        if binary is None:
            out.append(Check(name, "fail" if name == default else "warn",
                             f"{name} not found{role}", f"apt-get install {name}"))
        elif refused:
            out.append(Check(name, "fail" if name == default else "warn",
                             f"{binary}{role}: {refused}",
                             "choose an allowed one: [engine] runtime in secpod.toml"))
        else:
            version = _version([binary, "--version"])
            out.append(Check(name, "ok", f"{binary}: {version}{role}"))
    if settings:
        out.append(Check("secpod.toml", "fail", settings, "fix or remove the file"))
    return out


def _grants_check(kind: str) -> Check:
    """Malformed lines and overlapping ranges in /etc/subuid or /etc/subgid, named."""
    from pathlib import Path

    from secpod.sandbox import idmap

    path = Path("/etc") / kind
    bad, overlaps = idmap.grant_problems(path)
    me = idmap.current_user()[0]
    problems = list(bad)
    for a, b in overlaps:
        who = (f"user {a.owner}'s own lines overlap" if a.owner == b.owner
               else f"users {a.owner} and {b.owner} share host ids")
        problems.append(f"{path}:{a.line} ({a.owner}:{a.start}:{a.count}) and {path}:{b.line} "
                        f"({b.owner}:{b.start}:{b.count}) overlap: {who}")
    if not problems:
        return Check(f"/etc/{kind}", "ok", "well formed, no two ranges overlap")
    mine = any(me in (a.owner, b.owner) for a, b in overlaps)
    return Check(
        f"/etc/{kind}",
        "fail" if mine else "warn",
        "; ".join(problems),
        f"as root: give every user a range of its own in /etc/{kind} (usermod "
        "--del-subuids/--add-subuids, --del-subgids/--add-subgids), one NAME:START:COUNT a line",
    )


def as_json(checks: list[Check]) -> dict[str, object]:
    return {"ok": all(c.status != "fail" for c in checks), "checks": [c.as_dict() for c in checks]}
