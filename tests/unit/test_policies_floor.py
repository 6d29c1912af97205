"""The administrator's floor: parsing, ownership, minimum/allowed, run flags, never-mounts."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from secpod.errors import AdminPolicyError, FloorRefused
from secpod.policies import load
from secpod.policies.confine import weakenings
from secpod.policies.floor import (
    AdminPolicy,
    check,
    check_runtime,
    load_admin_policy,
    parse_admin_policy,
)
from secpod.spec import ContainerSpec, Mount, Resources, Security

USER = os.environ.get("SECPOD_TEST_USER", "secpodtest")


def policy(text: str) -> AdminPolicy:
    return parse_admin_policy(Path("/etc/secpod/policy.toml"), text)


def run(pol: AdminPolicy, profile: str = "strict", **kw: object) -> None:
    """Judge a spec of ``profile`` with ``kw`` (ContainerSpec fields) for USER."""
    spec = ContainerSpec(image="busybox", profile=profile, **kw)  # type: ignore[arg-type]
    prof = load(profile)
    check(prof, spec, weakenings(prof, spec), "amd64", user=USER, policy=pol)


def sec(**kw: object) -> Security:
    return Security(**kw)  # type: ignore[arg-type]


def volume(src: str, dst: str, ro: bool = False) -> tuple[Mount, ...]:
    return (Mount("bind", dst, src, read_only=ro),)


@pytest.fixture
def user_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    d = tmp_path / "config" / "secpod" / "profiles"
    d.mkdir(parents=True)
    return d


def test_minimum_refuses_a_weaker_profile_naming_the_rule() -> None:
    pol = policy('[floor]\nminimum = "strict"\n')
    run(pol, "strict")
    with pytest.raises(FloorRefused) as e:
        run(pol, "default")
    msg = e.value.message
    assert "(floor in /etc/secpod/policy.toml)" in msg and f"user {USER}" in msg
    assert "profile default is below the floor" in msg and "capabilities: adds" in msg
    assert "--profile strict" in (e.value.hint or "")


def test_profile_extending_the_floor_without_weakening_passes(user_dir: Path) -> None:
    (user_dir / "tighter.toml").write_text('extends = "strict"\n[network]\nmode = "none"\n'
                                           '[process]\nrlimits = { nofile = 64 }\n')
    (user_dir / "looser.toml").write_text('extends = "strict"\n[process]\n'
                                          'capabilities = ["SYS_PTRACE"]\n')
    pol = policy('[floor]\nminimum = "strict"\n')
    run(pol, "tighter")
    with pytest.raises(FloorRefused, match="capabilities: adds CAP_SYS_PTRACE"):
        run(pol, "looser")


def test_allowed_list() -> None:
    pol = policy('[floor]\nallowed = ["strict"]\n')
    run(pol, "strict")
    with pytest.raises(FloorRefused, match="profile default is not one of strict"):
        run(pol, "default")


def test_user_rule_replaces_the_default_and_groups_unite() -> None:
    pol = policy(f'[floor]\nminimum = "strict"\n[floor.users.{USER}]\nminimum = "default"\n')
    run(pol, "default")
    group = pwd.getpwnam(USER).pw_name  # the user's own group has its name (useradd)
    pol = policy(f'[floor]\nminimum = "strict"\n'
                 f'[floor.groups.nosuchgroup]\nminimum = "default"\n'
                 f'[floor.groups.{group}]\nallowed = ["strict", "default"]\n')
    run(pol, "default")
    pol = policy('[floor]\nminimum = "default"\n[floor.users.someoneelse]\nminimum = "strict"\n')
    run(pol, "default")


def test_flags_below_the_floor_need_may_weaken() -> None:
    pol = policy('[floor]\nminimum = "strict"\n')
    with pytest.raises(FloorRefused, match=r"--cap-add weakens profile strict \(CAP_CHOWN\)"):
        run(pol, security=sec(cap_add=("CHOWN",)))
    with pytest.raises(FloorRefused, match="seccomp=unconfined"):
        run(pol, security=sec(seccomp="unconfined"))
    with pytest.raises(FloorRefused, match="no-new-privileges=false"):
        run(pol, security=sec(no_new_privileges=False))
    with pytest.raises(FloorRefused, match=r"--read-only=false weakens profile strict"):
        run(pol, security=sec(read_only=False))
    with pytest.raises(FloorRefused, match="--network host is not allowed"):
        run(pol, network="host")
    run(pol, security=sec(cap_drop=("ALL",)))                       # tightening is always fine
    allowing = policy('[floor]\nminimum = "strict"\n'
                      'may_weaken = ["cap-add", "read-only=false", "network=host"]\n')
    run(allowing, security=sec(cap_add=("CHOWN",), read_only=False), network="host")


def test_flags_that_stay_above_the_floor_pass() -> None:
    pol = policy('[floor]\nminimum = "default"\n')
    run(pol, "strict", security=sec(read_only=False, cap_add=("CHOWN",)))
    with pytest.raises(FloorRefused, match="CAP_SYS_ADMIN"):
        run(pol, "default", security=sec(cap_add=("SYS_ADMIN",)))


def test_network_host_without_any_policy_is_refused() -> None:
    prof = load("default")
    spec = ContainerSpec(image="busybox", network="host")
    with pytest.raises(FloorRefused, match="no administrator's policy allows it"):
        check(prof, spec, weakenings(prof, spec), "amd64", user=USER, policy=None)


def test_never_mount(tmp_path: Path) -> None:
    home = Path(pwd.getpwnam(USER).pw_dir)
    pol = policy('[mounts]\nnever = ["/", "/etc", "/var/run/*.sock", "~/.ssh"]\n')
    for src in ("/", "/etc", "/etc/ssh", str(home / ".ssh"), str(home)):
        with pytest.raises(FloorRefused, match="may not be mounted") as e:
            run(pol, "default", mounts=volume(src, "/mnt", True))
        assert "mounts.never" in e.value.message
    link = tmp_path / "innocent"
    link.symlink_to("/etc")
    with pytest.raises(FloorRefused, match="matches /etc"):
        run(pol, "default", mounts=volume(str(link), "/mnt", True))
    sock = tmp_path / "run"          # /var/run/*.sock also catches /run/x.sock
    assert Path("/var/run").resolve() == Path("/run")
    with pytest.raises(FloorRefused, match=r"matches /var/run/\*\.sock"):
        run(pol, "default", mounts=volume("/run/podman.sock", "/s"))
    run(pol, "default", mounts=volume(str(tmp_path), "/data"))
    assert not sock.exists()


@pytest.mark.parametrize("text,message", [
    ("[flor]\nminimum = 'strict'\n", "unknown key 'flor'"),
    ("[floor]\nminimun = 'strict'\n", "unknown key floor.minimun"),
    ("[floor]\nmay_weaken = ['privileged']\n", "unknown run flag 'privileged'"),
    ("[floor.users.bob]\n", r"\[floor.users.bob\] is empty"),
    ("[mounts]\nnever = ['etc']\n", "absolute paths"),
    ("[audit]\nrequired = 'yes'\n", "audit.required must be true or false"),
    ("[pam]\nservice = '../shadow'\n", "pam.service must be a service name"),
    ("floor = [", "not valid TOML"),
    ("runtimes = 'crun'\n", r"\[runtimes\] takes one key: allowed"),
    ("[runtimes]\nallow = ['crun']\n", r"\[runtimes\] takes one key: allowed"),
    ("[runtimes]\nallowed = 'crun'\n", "runtimes.allowed must be a non-empty list"),
    ("[runtimes]\nallowed = []\n", "runtimes.allowed must be a non-empty list"),
    ("[runtimes]\nallowed = ['crun', 1]\n", "runtimes.allowed must be a non-empty list"),
    ("[runtimes]\nallowed = ['/usr/bin/crun']\n", "runtimes.allowed must be a non-empty list"),
    ("[mounts]\nvolumes = 'yes'\n", 'mounts.volumes must be "rw", "ro" or "none"'),
    ("[mounts]\ntmpfs_size_max = 'lots'\n", "'lots' is not a size"),
    ("[mounts]\ntmpfs_size_max = true\n", "mounts.tmpfs_size_max must be a size"),
    ("[mounts]\nsize = 1\n", "takes the keys never, volumes and tmpfs_size_max"),
])
def test_malformed_policy(text: str, message: str) -> None:
    with pytest.raises(AdminPolicyError, match=message):
        policy(text)


def test_exposed_settings() -> None:
    pol = policy('[trust]\npolicy = "/etc/secpod/trust.json"\n'
                 '[audit]\ncollector = "/run/secpod/audit.sock"\nrequired = true\n'
                 '[pam]\nservice = "secpod"\n')
    assert pol.trust_policy_path == Path("/etc/secpod/trust.json")
    assert pol.audit_collector == Path("/run/secpod/audit.sock") and pol.audit_required
    assert pol.pam_service == "secpod" and pol.default is None
    assert policy("").audit_collector is None and policy("").audit_required is False


def test_ownership_is_checked(tmp_path: Path) -> None:
    folder = tmp_path / "secpod"
    folder.mkdir(mode=0o755)
    f = folder / "policy.toml"
    f.write_text('[floor]\nminimum = "strict"\n')
    f.chmod(0o644)
    assert load_admin_policy(f) is not None
    assert load_admin_policy(folder / "absent.toml") is None
    f.chmod(0o664)
    with pytest.raises(AdminPolicyError, match="not owned by root or is writable"):
        load_admin_policy(f)
    f.chmod(0o644)
    os.chown(f, pwd.getpwnam(USER).pw_uid, -1)
    with pytest.raises(AdminPolicyError, match="not owned by root"):
        load_admin_policy(f)
    os.chown(f, 0, -1)
    folder.chmod(0o777)
    with pytest.raises(AdminPolicyError, match=f"{folder} is not owned by root or is writable"):
        load_admin_policy(f)


@pytest.mark.parametrize("action", ["SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE", "SCMP_ACT_LOG",
                                    "SCMP_ACT_TRAP"])
def test_handing_denied_syscalls_to_a_listener_is_below_strict(
        tmp_path: Path, user_dir: Path, action: str) -> None:
    import json

    from secpod.policies.profile import BUILTIN_DIR

    doc = json.loads((BUILTIN_DIR / "strict-seccomp.json").read_text())
    doc["listenerPath"] = str(tmp_path / "listener.sock")
    doc["syscalls"].append({"names": ["mount", "unshare"], "action": action})
    path = tmp_path / "notify.json"
    path.write_text(json.dumps(doc))
    pol = policy('[floor]\nminimum = "strict"\n')
    with pytest.raises(FloorRefused, match=rf"seccomp: allows mount, unshare \({action}\)"):
        run(pol, security=sec(seccomp=str(path)))
    (user_dir / "notify.toml").write_text(f'extends = "strict"\n[seccomp]\nprofile = "{path}"\n')
    with pytest.raises(FloorRefused, match=r"profile notify is below the floor: seccomp: allows"):
        run(pol, "notify")
    # errno and kill on the same calls stay at the floor
    doc["syscalls"][-1] = {"names": ["mount", "unshare"], "action": "SCMP_ACT_KILL_PROCESS"}
    path.write_text(json.dumps(doc))
    run(pol, security=sec(seccomp=str(path)))


def test_a_listener_default_action_is_below_strict(tmp_path: Path) -> None:
    import json

    from secpod.policies.profile import BUILTIN_DIR

    doc = json.loads((BUILTIN_DIR / "strict-seccomp.json").read_text())
    doc.update(defaultAction="SCMP_ACT_NOTIFY", listenerPath=str(tmp_path / "l.sock"))
    path = tmp_path / "notify.json"
    path.write_text(json.dumps(doc))
    pol = policy('[floor]\nminimum = "strict"\n')
    with pytest.raises(FloorRefused, match="default action SCMP_ACT_NOTIFY, where the reference"):
        run(pol, security=sec(seccomp=str(path)))


def test_bind_sources_are_compared_as_real_paths(tmp_path: Path, user_dir: Path) -> None:
    (tmp_path / "to-usr").symlink_to("/usr")
    pol = policy('[floor]\nminimum = "strict"\n')
    for name, sources in (("dotdot", '["~/../.."]'), ("link", f'["{tmp_path}/to-usr"]')):
        (user_dir / f"{name}.toml").write_text(
            f'extends = "strict"\n[filesystem]\nallowed_bind_sources = {sources}\n')
        with pytest.raises(FloorRefused, match=r"bind-mount sources: also .* \(= /"):
            run(pol, name)
    (user_dir / "inside.toml").write_text(
        f'extends = "strict"\n[filesystem]\nallowed_bind_sources = ["~/data", "{tmp_path}"]\n')
    run(pol, "inside")


def test_tmpfs_sizes_and_cpu_shares_are_compared(user_dir: Path) -> None:
    pol = policy('[floor]\nminimum = "strict"\n')
    (user_dir / "bigtmp.toml").write_text(
        'extends = "strict"\n[filesystem.tmpfs."/tmp"]\nsize = "8g"\n')
    with pytest.raises(FloorRefused, match=r"tmpfs /tmp: size 8589934592 \(reference: 67108864\)"):
        run(pol, "bigtmp")
    (user_dir / "cpu.toml").write_text('extends = "strict"\n[limits]\ncpu_shares = 262144\n')
    with pytest.raises(FloorRefused, match=r"cpu shares: 262144 \(reference: 1024\)"):
        run(pol, "cpu")
    (user_dir / "small.toml").write_text(
        'extends = "strict"\n[filesystem.tmpfs."/tmp"]\nsize = "1m"\n[limits]\ncpu_shares = 2\n')
    run(pol, "small")


def test_a_tmpfs_with_exec_passes_only_through_may_weaken() -> None:
    exe = (Mount("tmpfs", "/scratch", exec_=True),)
    for minimum in ("strict", "default"):   # no minimum can judge it, however low
        pol = policy(f'[floor]\nminimum = "{minimum}"\n')
        with pytest.raises(FloorRefused, match=r"--tmpfs with exec weakens profile strict "
                                               r"\(programs may run from the tmpfs at /scratch\)"):
            run(pol, mounts=exe)
        run(pol, mounts=(Mount("tmpfs", "/scratch"),))          # noexec: no weakening
    run(policy('[floor]\nminimum = "strict"\nmay_weaken = ["tmpfs-exec"]\n'), mounts=exe)
    run(policy('[mounts]\nnever = ["/etc"]\n'), mounts=exe)    # no floor rule: nothing judges


@pytest.mark.parametrize("flag,resources,message", [
    ("pids-limit", Resources(pids_limit=4096), r"--pids-limit weakens profile strict \(pids "
     r"limit 4096, above the profile's 512\).*pids limit: 4096 \(reference: 512\)"),
    ("memory", Resources(memory=2 << 30), r"--memory weakens profile strict \(memory limit "
     r"2147483648, above the profile's 1073741824\)"),
    ("cpu-shares", Resources(cpu_shares=4096), r"--cpu-shares weakens .*cpu shares: 4096 "
     r"\(reference: 1024\)"),
])
def test_resource_requests_above_the_profile_are_weakenings(flag: str, resources: Resources,
                                                             message: str) -> None:
    pol = policy('[floor]\nminimum = "strict"\n')
    with pytest.raises(FloorRefused, match=message):
        run(pol, resources=resources)
    run(policy(f'[floor]\nminimum = "strict"\nmay_weaken = ["{flag}"]\n'), resources=resources)
    # tighter than the profile: no weakening at all
    run(pol, resources=Resources(pids_limit=10, memory=1 << 20, cpu_shares=2))


def test_a_looser_request_that_stays_above_the_minimum_passes() -> None:
    pol = policy('[floor]\nminimum = "default"\n')    # default: pids 2048, no memory limit
    run(pol, "strict", resources=Resources(pids_limit=2048, memory=8 << 30))
    with pytest.raises(FloorRefused, match=r"pids limit: 4096 \(reference: 2048\)"):
        run(pol, "strict", resources=Resources(pids_limit=4096))


def test_check_runtime() -> None:
    check_runtime("runc", USER, policy=policy('[floor]\nminimum = "strict"\n'))
    only_crun = policy('[runtimes]\nallowed = ["crun"]\n')
    assert only_crun.runtimes == ("crun",)
    check_runtime("crun", USER, policy=only_crun)
    with pytest.raises(FloorRefused) as e:
        check_runtime("runc", USER, policy=only_crun)
    assert e.value.message == (
        "refused by the administrator's floor (runtimes.allowed in /etc/secpod/policy.toml) "
        f"for user {USER}: the OCI runtime runc is not allowed (allowed: crun)")
    assert e.value.hint == "use --runtime crun, or ask the administrator"
    both = policy('[runtimes]\nallowed = ["crun", "runc"]\n')
    check_runtime("runc", None, policy=both)


def test_check_runtime_reads_the_policy_file(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from secpod.policies import floor

    folder = tmp_path / "secpod"
    folder.mkdir(mode=0o755)
    monkeypatch.setattr(floor, "POLICY_FILE", folder / "policy.toml")
    check_runtime("runc", USER)                    # no file: any runtime secpod supports
    (folder / "policy.toml").write_text('[runtimes]\nallowed = ["crun"]\n')
    (folder / "policy.toml").chmod(0o644)
    with pytest.raises(FloorRefused, match=r"runtimes.allowed in .*: the OCI runtime runc"):
        check_runtime("runc", USER)
    (folder / "policy.toml").chmod(0o666)          # an unsafe file is refused, not ignored
    with pytest.raises(AdminPolicyError, match="writable by group or others"):
        check_runtime("crun", USER)


def test_named_volumes_and_tmpfs_sizes_under_the_floor(user_dir: Path) -> None:
    named = (Mount("volume", "/v", "data"),)
    run(policy("[mounts]\n"), "default", mounts=named)
    with pytest.raises(FloorRefused, match=r"mounts.volumes .*named volumes are not allowed"):
        run(policy('[mounts]\nvolumes = "none"\n'), "default", mounts=named)
    ro = policy('[mounts]\nvolumes = "ro"\n')
    with pytest.raises(FloorRefused, match="only read-only named volumes") as e:
        run(ro, "default", mounts=named)
    assert e.value.hint == "-v data:/v:ro"
    run(ro, "default", mounts=(Mount("volume", "/v", "data", read_only=True),))
    bound = policy('[mounts]\ntmpfs_size_max = "32m"\n')
    run(bound, "default", mounts=(Mount("tmpfs", "/t", size=32 << 20),))
    with pytest.raises(FloorRefused, match="the tmpfs at /t would be 33554433 bytes above"):
        run(bound, "default", mounts=(Mount("tmpfs", "/t", size=(32 << 20) + 1),))
    with pytest.raises(FloorRefused, match="the default size of profile default"):
        run(bound, "default", mounts=(Mount("tmpfs", "/t"),))
    with pytest.raises(FloorRefused, match="profile strict mounts a tmpfs of 67108864 bytes"):
        run(bound, "strict")
    (user_dir / "smalltmp.toml").write_text(
        'extends = "default"\n[filesystem]\ntmpfs_size = "8m"\nvolumes = "ro"\n')
    run(bound, "smalltmp", mounts=(Mount("tmpfs", "/t"),))
    from secpod.errors import Refused
    from secpod.policies.layers import mounts
    from tests.unit.test_policies_layers import HOST

    assert load("smalltmp").tmpfs_size == 8 << 20 and load("smalltmp").volumes == "ro"
    with pytest.raises(Refused, match="profile smalltmp does not allow writable named volumes"):
        mounts.generate(load("smalltmp"), ContainerSpec(image="b", mounts=named), HOST)
    frag = mounts.generate(load("smalltmp"), ContainerSpec(image="b", mounts=(
        Mount("volume", "/v", "data", read_only=True, subpath="a/b"), Mount("tmpfs", "/t"))),
        HOST)
    vol, tmp = frag.mounts[-2:]
    assert vol["source"].endswith("/secpod/volumes/data/_data/a/b") and vol["type"] == "bind"
    assert vol["options"] == ["rbind", "ro", "nosuid", "nodev", "rprivate"]
    assert f"size={8 << 20}" in tmp["options"]


def test_volume_modes_are_compared(user_dir: Path) -> None:
    (user_dir / "novol.toml").write_text('extends = "strict"\n[filesystem]\nvolumes = "none"\n')
    pol = policy('[floor]\nminimum = "novol"\n')
    with pytest.raises(FloorRefused, match=r"named volumes: rw \(reference: none\)"):
        run(pol, "strict")
    run(pol, "novol")
