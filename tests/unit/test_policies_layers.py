"""One generator per hardening layer: a profile, a spec and a (fake) host in; the fragment
of OCI settings and the unenforced list out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from secpod._record import replace
from secpod.errors import HostError, ProfileError, Refused, UsageError
from secpod.policies import load
from secpod.policies.capabilities import ALL_CAPS
from secpod.policies.layers import (
    Fragment,
    apparmor,
    capabilities,
    mounts,
    namespaces,
    resources,
    seccomp,
    selinux,
)
from secpod.sandbox.host import CgroupMode, HostFeatures
from secpod.spec import ContainerSpec, Mount, Resources, Security

LIMITS = frozenset({"cpu", "memory", "pids"})

# This host, as the suite sees it: hybrid cgroups, no SELinux, no AppArmor.
HOST = HostFeatures(cgroup_mode=CgroupMode.HYBRID, cgroup_delegated=False,
                    selinux_enabled=False, apparmor_enabled=False,
                    apparmor_profiles=frozenset(), seccomp=True, arch="amd64")
# A host that enforces everything secpod asks.
ABLE = replace(HOST, cgroup_mode=CgroupMode.V2, cgroup_delegated=True,
    cgroup_controllers=LIMITS, selinux_enabled=True,
               apparmor_enabled=True,
               apparmor_profiles=frozenset({"secpod-strict", "secpod-default"}))
STRICT = load("strict")
DEFAULT = load("default")


def spec(**kw: object) -> ContainerSpec:
    return ContainerSpec(image="busybox", **kw)  # type: ignore[arg-type]


def only(frag: Fragment, *keys: str) -> None:
    """The fragment says nothing outside ``keys`` (process, linux, mounts, unenforced...)."""
    for name in ("process", "linux", "mounts", "unenforced"):
        if name not in keys:
            assert not getattr(frag, name), (name, getattr(frag, name))


# --- capabilities ---------------------------------------------------------------------


def test_capabilities_of_the_profile_and_the_flags() -> None:
    f = capabilities.generate(STRICT, spec(), HOST)
    assert f.process == {"capabilities": {"bounding": [], "effective": [], "permitted": [],
                                          "inheritable": [], "ambient": []},
                         "noNewPrivileges": True}
    assert f.summary == {"caps": [], "no_new_privileges": True}
    only(f, "process")
    f = capabilities.generate(STRICT, spec(security=Security(cap_add=("CAP_NET_RAW",))), HOST)
    caps = f.process["capabilities"]
    assert caps["bounding"] == caps["effective"] == caps["permitted"] == ["CAP_NET_RAW"]
    assert caps["inheritable"] == caps["ambient"] == []


def test_cap_drop_all_then_add() -> None:
    sec = Security(cap_drop=("ALL",), cap_add=("CAP_CHOWN", "CAP_KILL"))
    f = capabilities.generate(DEFAULT, spec(security=sec), HOST)
    assert f.summary["caps"] == ["CAP_CHOWN", "CAP_KILL"]
    f = capabilities.generate(DEFAULT, spec(security=Security(cap_drop=("CAP_CHOWN",))), HOST)
    assert "CAP_CHOWN" not in f.summary["caps"] and len(f.summary["caps"]) == 10
    f = capabilities.generate(STRICT, spec(security=Security(cap_add=("ALL",))), HOST)
    assert f.summary["caps"] == list(ALL_CAPS)
    with pytest.raises(UsageError, match="unknown capability 'CAP_FLY'"):
        capabilities.generate(STRICT, spec(security=Security(cap_add=("CAP_FLY",))), HOST)


def test_no_new_privileges() -> None:
    off = capabilities.generate(STRICT, spec(security=Security(no_new_privileges=False)), HOST)
    assert off.process["noNewPrivileges"] is False and off.summary["no_new_privileges"] is False
    loose = replace(STRICT, no_new_privileges=False)
    assert capabilities.generate(loose, spec(), HOST).process["noNewPrivileges"] is False
    on = capabilities.generate(loose, spec(security=Security(no_new_privileges=True)), HOST)
    assert on.process["noNewPrivileges"] is True


# --- seccomp --------------------------------------------------------------------------


@pytest.fixture
def no_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(seccomp, "_REPORTS", {})


def test_seccomp_of_the_profile(no_cache: None) -> None:
    f = seccomp.generate(STRICT, spec(), HOST)
    only(f, "linux")
    assert f.linux["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    assert f.linux["seccomp"]["architectures"] == ["SCMP_ARCH_X86_64"]
    s = f.summary["seccomp"]
    assert s["enabled"] and s["source"] == "strict-seccomp.json" and s["rules"] > 300
    assert s["default"] == "SCMP_ACT_ERRNO" and s["bpf_instructions"] > 0
    assert f.seccomp_report is not None and f.seccomp_report.rules == s["rules"]


def test_seccomp_unconfined_and_a_file(tmp_path: Path, no_cache: None) -> None:
    f = seccomp.generate(STRICT, spec(security=Security(seccomp="unconfined")), HOST)
    assert f.linux == {} and f.seccomp_report is None
    assert f.summary["seccomp"] == {"enabled": False, "source": "unconfined", "rules": 0,
                                    "bpf_instructions": 0, "default": None, "unresolved": []}
    mine = tmp_path / "mine.json"
    mine.write_text(json.dumps({"defaultAction": "SCMP_ACT_KILL_PROCESS", "syscalls": [
        {"names": ["read", "write", "exit_group", "mseal"], "action": "SCMP_ACT_ALLOW"}]}))
    f = seccomp.generate(STRICT, spec(security=Security(seccomp=str(mine))), HOST)
    assert f.linux["seccomp"] == {"defaultAction": "SCMP_ACT_KILL_PROCESS", "syscalls": [
        {"names": ["read", "write", "exit_group", "mseal"], "action": "SCMP_ACT_ALLOW"}]}
    s = f.summary["seccomp"]
    assert (s["source"], s["rules"], s["default"]) == ("mine.json", 3, "SCMP_ACT_KILL_PROCESS")
    assert s["unresolved"] == ["mseal"]     # newer than this host's libseccomp
    mine.write_text('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["raed"], '
                    '"action": "SCMP_ACT_ERRNO"}]}')
    with pytest.raises(ProfileError, match="unknown syscall 'raed'"):
        seccomp.generate(STRICT, spec(security=Security(seccomp=str(mine))), HOST)


def test_seccomp_follows_the_capabilities(no_cache: None) -> None:
    def allowed(f: Fragment) -> set[str]:
        return {n for e in f.linux["seccomp"]["syscalls"] if e["action"] == "SCMP_ACT_ALLOW"
                for n in e["names"]}

    plain = seccomp.generate(DEFAULT, spec(), HOST)
    ptrace = seccomp.generate(DEFAULT, spec(security=Security(cap_add=("CAP_SYS_PTRACE",))),
                              HOST)
    assert "kcmp" not in allowed(plain) and "kcmp" in allowed(ptrace)


def test_seccomp_on_a_kernel_without_it(no_cache: None) -> None:
    bare = replace(HOST, seccomp=False)
    with pytest.raises(HostError, match="this kernel has no seccomp"):
        seccomp.generate(STRICT, spec(), bare)
    assert seccomp.generate(STRICT, spec(security=Security(seccomp="unconfined")), bare).linux \
        == {}


# --- SELinux --------------------------------------------------------------------------


def test_selinux_on_a_host_without_it() -> None:
    f = selinux.generate(STRICT, spec(), HOST)
    only(f, "unenforced")
    assert f.unenforced == ("SELinux label (container_t): SELinux is not enabled on this host",)
    assert f.summary == {"selinux": None}
    with pytest.raises(HostError, match="requires an SELinux label") as e:
        selinux.generate(replace(STRICT, selinux_enforce="required"), spec(), HOST)
    assert 'enforce is "if-available"' in (e.value.hint or "")


@pytest.mark.parametrize("host", [HOST, ABLE], ids=["no-selinux", "selinux"])
def test_selinux_off_or_disabled_sets_nothing(host: HostFeatures) -> None:
    for prof, sec in ((replace(STRICT, selinux_enforce="off"), Security()),
                      (replace(STRICT, selinux_enforce="required"), Security(label_disable=True))):
        f = selinux.generate(prof, spec(security=sec), host)
        only(f)
        assert f.summary == {"selinux": None}


def test_selinux_label_and_mount_label() -> None:
    f = selinux.generate(replace(STRICT, selinux_type="secpod_strict_t"), spec(), ABLE)
    only(f, "process", "linux")
    label = f.process["selinuxLabel"]
    assert label.startswith("system_u:system_r:secpod_strict_t:s0:c")
    level = label.split(":", 3)[3]
    assert f.linux == {"mountLabel": f"system_u:object_r:container_file_t:{level}"}
    assert f.summary == {"selinux": label}


def test_mcs_level_avoids_the_levels_in_use(monkeypatch: pytest.MonkeyPatch) -> None:
    import secrets

    draws = iter([5, 9,      # c5,c10: in use
                  9, 4,      # c4,c9: in use
                  3, 0])     # c0,c3
    monkeypatch.setattr(secrets, "randbelow", lambda n: next(draws))
    in_use = frozenset({"s0:c5,c10", "s0:c4,c9"})
    f = selinux.generate(STRICT, spec(), ABLE, mcs_in_use=in_use)
    assert f.process["selinuxLabel"].endswith(":s0:c0,c3")
    assert f.linux["mountLabel"].endswith(":s0:c0,c3")


def test_mcs_levels_are_two_distinct_categories() -> None:
    in_use = frozenset(selinux.mcs_level() for _ in range(50))
    for _ in range(300):
        level = selinux.mcs_level(in_use)
        assert level not in in_use
        lo, hi = (int(c[1:]) for c in level.removeprefix("s0:").split(","))
        assert 0 <= lo < hi < 1024


# --- AppArmor -------------------------------------------------------------------------


def test_apparmor_not_enabled_or_not_loaded() -> None:
    f = apparmor.generate(STRICT, spec(), HOST)
    only(f, "unenforced")
    assert f.unenforced == ("AppArmor profile secpod-strict: AppArmor is not enabled in this "
                            "kernel",)
    loaded_other = replace(HOST, apparmor_enabled=True, apparmor_profiles=frozenset({"x"}))
    f = apparmor.generate(STRICT, spec(), loaded_other)
    assert f.unenforced == ("AppArmor profile secpod-strict: the AppArmor profile "
                            "secpod-strict is not loaded (`secpod system install-apparmor`, "
                            "as root)",)
    assert f.summary == {"apparmor": None}


def test_apparmor_loaded() -> None:
    f = apparmor.generate(STRICT, spec(), ABLE)
    only(f, "process")
    assert f.process == {"apparmorProfile": "secpod-strict"}
    assert f.summary == {"apparmor": "secpod-strict"}
    f = apparmor.generate(STRICT, spec(security=Security(apparmor="secpod-default")), ABLE)
    assert f.process == {"apparmorProfile": "secpod-default"}


def test_apparmor_required_or_asked_by_name_refuses() -> None:
    with pytest.raises(HostError, match="requires the AppArmor profile secpod-strict, and "
                                        "AppArmor is not enabled"):
        apparmor.generate(replace(STRICT, apparmor_enforce="required"), spec(), HOST)
    with pytest.raises(HostError, match="the AppArmor profile mine is not loaded"):
        apparmor.generate(STRICT, spec(security=Security(apparmor="mine")), ABLE)


@pytest.mark.parametrize("host", [HOST, ABLE], ids=["no-apparmor", "apparmor"])
def test_apparmor_off_or_unconfined_sets_nothing(host: HostFeatures) -> None:
    for prof, sec in ((replace(STRICT, apparmor_enforce="off"), Security()),
                      (replace(STRICT, apparmor_enforce="required"),
                       Security(apparmor="unconfined"))):
        f = apparmor.generate(prof, spec(security=sec), host)
        only(f)
        assert f.summary == {"apparmor": None}


# --- namespaces -----------------------------------------------------------------------


def test_namespaces_and_the_network() -> None:
    f = namespaces.generate(STRICT, spec(), HOST)
    only(f, "linux")
    assert [n["type"] for n in f.linux["namespaces"]] == ["mount", "network", "pid", "ipc",
                                                          "uts", "cgroup"]
    assert f.summary == {"namespaces": ["user", "mount", "network", "pid", "ipc", "uts",
                                        "cgroup"], "network": "loopback",
                         "network_mode": "private"}
    for asked, mode in (("none", "none"), ("loopback", "private"), ("private", "private")):
        summary = namespaces.generate(STRICT, spec(network=asked), HOST).summary
        assert (summary["network"], summary["network_mode"]) == ("loopback", mode)
    # strict's [network] modes leave out the host's network, whatever the floor allows
    with pytest.raises(Refused, match="profile strict does not allow --network host"):
        namespaces.generate(STRICT, spec(network="host"), HOST)
    host_net = namespaces.generate(DEFAULT, spec(network="host"), HOST)
    assert "network" not in [n["type"] for n in host_net.linux["namespaces"]]
    assert host_net.summary["network"] == "host"
    # a profile on the host's network, with the run asking for its own
    shared = replace(DEFAULT, network="host", namespaces=("mount", "pid"))
    assert namespaces.generate(shared, spec(), HOST).summary["namespaces"] == ["user", "mount",
                                                                                "pid"]
    own = namespaces.generate(shared, spec(network="none"), HOST)
    assert [n["type"] for n in own.linux["namespaces"]] == ["mount", "network", "pid"]
    with pytest.raises(UsageError, match="unsupported --network 'bridge'"):
        namespaces.generate(STRICT, spec(network="bridge"), HOST)


def test_sysctls_and_the_hosts_network() -> None:
    prof = replace(STRICT, sysctls=(("kernel.shmmax", "1024"),
                                    ("net.ipv4.ping_group_range", "0 0")),
                   network_modes=("private", "host"))
    f = namespaces.generate(prof, spec(), HOST)
    assert f.linux["sysctl"] == {"kernel.shmmax": "1024", "net.ipv4.ping_group_range": "0 0"}
    with pytest.raises(ProfileError, match="net.\\* sysctls need the container's own network"):
        namespaces.generate(prof, spec(network="host"), HOST)
    ipc_only = replace(STRICT, sysctls=(("kernel.shmmax", "1024"),), network_modes=("host",))
    assert namespaces.generate(ipc_only, spec(network="host"), HOST).linux["sysctl"] == {
        "kernel.shmmax": "1024"}
    assert "sysctl" not in namespaces.generate(STRICT, spec(), HOST).linux


# --- mounts ---------------------------------------------------------------------------


def test_mounts_of_the_profile() -> None:
    f = mounts.generate(STRICT, spec(), HOST)
    only(f, "linux", "mounts")
    assert f.root_readonly is True and f.summary == {"read_only_root": True}
    assert f.mounts == (
        {"destination": "/run", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "nodev", "mode=755", "size=16777216"]},
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "nodev", "mode=1777", "size=67108864"]})
    assert f.linux == {"maskedPaths": list(STRICT.masked_paths),
                       "readonlyPaths": list(STRICT.readonly_paths)}
    fuse = mounts.generate(replace(DEFAULT, devices=("/dev/fuse",)), spec(), HOST)
    assert fuse.mounts == ({"destination": "/dev/fuse", "type": "bind", "source": "/dev/fuse",
                            "options": ["bind", "nosuid", "noexec"]},)


def test_read_only_root() -> None:
    assert mounts.generate(DEFAULT, spec(), HOST).root_readonly is False
    ro = spec(security=Security(read_only=True))
    assert mounts.generate(DEFAULT, ro, HOST).root_readonly is True
    rw = spec(security=Security(read_only=False))
    f = mounts.generate(STRICT, rw, HOST)
    assert f.root_readonly is False and f.summary == {"read_only_root": False}


def test_user_tmpfs_options() -> None:
    asked = (Mount("tmpfs", "/scratch"),
             Mount("tmpfs", "/fast", size=1 << 20, mode=0o700, exec_=True),
             Mount("tmpfs", "/seen", read_only=True, mode=0))
    f = mounts.generate(DEFAULT, spec(mounts=asked), HOST)
    assert f.mounts == (
        {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "nodev", "noexec", "mode=1777", "size=67108864"]},
        {"destination": "/fast", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "nodev", "mode=700", "size=1048576"]},
        {"destination": "/seen", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "nodev", "noexec", "ro", "mode=0", "size=67108864"]})
    assert f.unenforced == ()


def test_bind_mounts_against_the_allowed_sources(tmp_path: Path) -> None:
    data = tmp_path / "data"          # tmp_path is under /tmp: strict allows it
    data.mkdir()
    (tmp_path / "link").symlink_to(data)
    (tmp_path / "to-etc").symlink_to("/etc")
    f = mounts.generate(STRICT, spec(mounts=(Mount("bind", "/d", str(tmp_path / "link"),
                                                   read_only=True),)), HOST)
    assert f.mounts[-1] == {"destination": "/d", "type": "bind", "source": str(data),
                            "options": ["rbind", "ro", "nosuid", "nodev", "rprivate"]}
    for source in ("/etc", str(tmp_path / "to-etc"), "/usr/share"):
        with pytest.raises(Refused, match="profile strict does not allow bind mounts from /") as e:
            mounts.generate(STRICT, spec(mounts=(Mount("bind", "/e", source),)), HOST)
        assert e.value.hint == ("allowed sources: ~, /tmp, /var/tmp; or use a profile that "
                                "extends it with more")
    rw = mounts.generate(DEFAULT, spec(mounts=(Mount("bind", "/e", "/etc"),)), HOST)
    assert rw.mounts[-1]["options"] == ["rbind", "rw", "nosuid", "nodev", "rprivate"]
    with pytest.raises(UsageError, match="does not exist"):
        mounts.generate(DEFAULT, spec(mounts=(Mount("bind", "/e", str(tmp_path / "no")),)),
                        HOST)
    with pytest.raises(UsageError, match="is not an absolute path"):
        mounts.generate(DEFAULT, spec(mounts=(Mount("bind", "/e", "relative"),)), HOST)


def test_home_in_the_allowed_sources_is_the_users_passwd_home(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pwd

    monkeypatch.setenv("HOME", "/etc")              # $HOME does not count
    prof = replace(STRICT, allowed_bind_sources=("~",))
    root_home = pwd.getpwnam("root").pw_dir
    f = mounts.generate(prof, spec(mounts=(Mount("bind", "/h", root_home),)), HOST,
                        user="root")
    assert f.mounts[-1]["source"] == root_home
    with pytest.raises(Refused):
        mounts.generate(prof, spec(mounts=(Mount("bind", "/h", "/etc"),)), HOST, user="root")


@pytest.mark.parametrize("asked,message", [
    ((Mount("tmpfs", "/tmp"),), "two mounts at /tmp"),         # strict's own tmpfs
    ((Mount("bind", "/run", "/tmp"),), "two mounts at /run"),
    ((Mount("tmpfs", "/a"), Mount("bind", "/a", "/tmp")), "two mounts at /a"),
    ((Mount("tmpfs", "/"),), "mount destination '/' must be an absolute path below /"),
    ((Mount("tmpfs", "/."),), "mount destination '/.'"),
    ((Mount("bind", "//", "/tmp"),), "mount destination '//'"),
    ((Mount("tmpfs", "/a/../.."),), "mount destination '/a/../..'"),
    ((Mount("tmpfs", "relative"),), "mount destination 'relative'"),
])
def test_mount_destinations(asked: tuple[Mount, ...], message: str) -> None:
    with pytest.raises(UsageError) as e:
        mounts.generate(STRICT, spec(mounts=asked), HOST)
    assert message in e.value.message


def test_mount_kinds() -> None:
    with pytest.raises(UsageError, match="unsupported mount type 'npipe' at /v"):
        mounts.generate(STRICT, spec(mounts=(Mount("npipe", "/v"),)), HOST)


# --- resources ------------------------------------------------------------------------


def test_rlimits() -> None:
    f = resources.generate(STRICT, spec(), ABLE)
    assert {r["type"]: (r["soft"], r["hard"]) for r in f.process["rlimits"]} == {
        "RLIMIT_NOFILE": (1024, 1024), "RLIMIT_NPROC": (512, 512), "RLIMIT_CORE": (0, 0)}
    assert f.summary["rlimits"] == {"core": [0, 0], "nofile": [1024, 1024],
                                    "nproc": [512, 512]}
    assert resources.generate(DEFAULT, spec(), ABLE).process == {"rlimits": []}


def test_cgroup_limits_where_enforceable() -> None:
    f = resources.generate(STRICT, spec(), ABLE)
    only(f, "process", "linux")
    assert f.linux == {"resources": {"pids": {"limit": 512}, "memory": {"limit": 1 << 30},
                                     "cpu": {"shares": 1024}}}
    assert f.summary["limits"] == {"pids": 512, "memory": 1 << 30, "cpu_shares": 1024}
    tighter = spec(resources=Resources(pids_limit=10, memory=64 << 20, cpu_shares=2))
    assert resources.generate(STRICT, tighter, ABLE).linux["resources"] == {
        "pids": {"limit": 10}, "memory": {"limit": 64 << 20}, "cpu": {"shares": 2}}
    # looser: a weakening the floor judged before; what it let through applies
    looser = spec(resources=Resources(pids_limit=4096))
    assert resources.generate(STRICT, looser, ABLE).linux["resources"]["pids"] == {
        "limit": 4096}
    # the profile has no memory limit: the request adds one
    f = resources.generate(DEFAULT, spec(resources=Resources(memory=64 << 20)), ABLE)
    assert f.linux["resources"] == {"pids": {"limit": 2048}, "memory": {"limit": 64 << 20}}
    none = replace(DEFAULT, pids_limit=None)
    f = resources.generate(none, spec(), ABLE)
    assert f.linux == {} and f.unenforced == () and f.summary["limits"] == {
        "pids": None, "memory": None, "cpu_shares": None}
    assert resources.generate(none, spec(), HOST).unenforced == ()


def test_cgroup_limits_this_host_cannot_enforce() -> None:
    f = resources.generate(STRICT, spec(resources=Resources(pids_limit=10)), HOST)
    only(f, "process", "unenforced")
    why = "cgroups are in hybrid mode, rootless limits are not enforced"
    assert f.unenforced == (f"pids limit 10: {why}", f"memory limit {1 << 30} bytes: {why}",
                            f"cpu shares 1024: {why}")
    assert f.summary["limits"]["pids"] == 10
    for mode, reason in (
            (CgroupMode.V1, "cgroups are v1, rootless limits are not enforced"),
            (CgroupMode.NONE, "cgroups are none, rootless limits are not enforced"),
            (CgroupMode.V2, "no cgroup is delegated to this user")):
        host = replace(HOST, cgroup_mode=mode)
        assert resources.generate(DEFAULT, spec(), host).unenforced == (
            f"pids limit 2048: {reason}",)


def test_required_limits_refuse() -> None:
    must = replace(DEFAULT, limits_enforce="required", pids_limit=None)
    assert resources.generate(must, spec(), HOST).unenforced == ()    # nothing to enforce
    with pytest.raises(HostError) as e:
        resources.generate(must, spec(resources=Resources(pids_limit=10, memory=1 << 20)), HOST)
    assert e.value.message == (
        "profile default requires pids limit 10, memory limit 1048576 bytes, and this host "
        "cannot enforce them: cgroups are in hybrid mode, rootless limits are not enforced")
    assert "cgroup v2 delegated" in (e.value.hint or "")
    assert resources.generate(must, spec(resources=Resources(pids_limit=10)), ABLE).linux == {
        "resources": {"pids": {"limit": 10}}}
