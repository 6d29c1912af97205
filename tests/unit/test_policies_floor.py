"""The administrator's floor: parsing, ownership, minimum/allowed, run flags, never-mounts."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from secpod.errors import AdminPolicyError, FloorRefused
from secpod.policies import RunRequest, load
from secpod.policies.confine import weakenings
from secpod.policies.floor import AdminPolicy, check, load_admin_policy, parse_admin_policy

USER = os.environ.get("SECPOD_TEST_USER", "secpodtest")


def policy(text: str) -> AdminPolicy:
    return parse_admin_policy(Path("/etc/secpod/policy.toml"), text)


def run(pol: AdminPolicy, profile: str = "strict", **kw: object) -> None:
    req = RunRequest(profile=profile, user=USER, **kw)  # type: ignore[arg-type]
    prof = load(profile)
    check(prof, req, weakenings(prof, req), "amd64", policy=pol)


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
        run(pol, cap_add=("CHOWN",))
    with pytest.raises(FloorRefused, match="seccomp=unconfined"):
        run(pol, security_opts=("seccomp=unconfined",))
    with pytest.raises(FloorRefused, match="no-new-privileges=false"):
        run(pol, security_opts=("no-new-privileges=false",))
    with pytest.raises(FloorRefused, match="read-only=false"):
        run(pol, read_only=False)
    with pytest.raises(FloorRefused, match="--network host is not allowed"):
        run(pol, network="host")
    run(pol, cap_drop=("ALL",))                       # tightening is always fine
    allowing = policy('[floor]\nminimum = "strict"\n'
                      'may_weaken = ["cap-add", "read-only=false", "network=host"]\n')
    run(allowing, cap_add=("CHOWN",), read_only=False, network="host")


def test_flags_that_stay_above_the_floor_pass() -> None:
    pol = policy('[floor]\nminimum = "default"\n')
    run(pol, "strict", read_only=False, cap_add=("CHOWN",))
    with pytest.raises(FloorRefused, match="CAP_SYS_ADMIN"):
        run(pol, "default", cap_add=("SYS_ADMIN",))


def test_network_host_without_any_policy_is_refused() -> None:
    prof = load("default")
    req = RunRequest(network="host", user=USER)
    with pytest.raises(FloorRefused, match="no administrator's policy allows it"):
        check(prof, req, weakenings(prof, req), "amd64", policy=None)


def test_never_mount(tmp_path: Path) -> None:
    home = Path(pwd.getpwnam(USER).pw_dir)
    pol = policy('[mounts]\nnever = ["/", "/etc", "/var/run/*.sock", "~/.ssh"]\n')
    for src in ("/", "/etc", "/etc/ssh", str(home / ".ssh"), str(home)):
        with pytest.raises(FloorRefused, match="may not be mounted") as e:
            run(pol, "default", volumes=((src, "/mnt", True),))
        assert "mounts.never" in e.value.message
    link = tmp_path / "innocent"
    link.symlink_to("/etc")
    with pytest.raises(FloorRefused, match="matches /etc"):
        run(pol, "default", volumes=((str(link), "/mnt", True),))
    sock = tmp_path / "run"          # /var/run/*.sock also catches /run/x.sock
    assert Path("/var/run").resolve() == Path("/run")
    with pytest.raises(FloorRefused, match=r"matches /var/run/\*\.sock"):
        run(pol, "default", volumes=(("/run/podman.sock", "/s", False),))
    run(pol, "default", volumes=((str(tmp_path), "/data", False),))
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
        run(pol, security_opts=(f"seccomp={path}",))
    (user_dir / "notify.toml").write_text(f'extends = "strict"\n[seccomp]\nprofile = "{path}"\n')
    with pytest.raises(FloorRefused, match=r"profile notify is below the floor: seccomp: allows"):
        run(pol, "notify")
    # errno and kill on the same calls stay at the floor
    doc["syscalls"][-1] = {"names": ["mount", "unshare"], "action": "SCMP_ACT_KILL_PROCESS"}
    path.write_text(json.dumps(doc))
    run(pol, security_opts=(f"seccomp={path}",))


def test_a_listener_default_action_is_below_strict(tmp_path: Path) -> None:
    import json

    from secpod.policies.profile import BUILTIN_DIR

    doc = json.loads((BUILTIN_DIR / "strict-seccomp.json").read_text())
    doc.update(defaultAction="SCMP_ACT_NOTIFY", listenerPath=str(tmp_path / "l.sock"))
    path = tmp_path / "notify.json"
    path.write_text(json.dumps(doc))
    pol = policy('[floor]\nminimum = "strict"\n')
    with pytest.raises(FloorRefused, match="default action SCMP_ACT_NOTIFY, where the reference"):
        run(pol, security_opts=(f"seccomp={path}",))


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
