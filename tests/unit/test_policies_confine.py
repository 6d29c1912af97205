"""confine(): built-in profiles to OCI settings, host fallbacks, the OCI schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from secpod._record import replace
from secpod.errors import FloorRefused, HostError, NotFound, ProfileError, Refused, UsageError
from secpod.policies import Confinement, confine, load
from secpod.sandbox.host import CgroupMode, HostFeatures
from secpod.spec import ContainerSpec, Mount, Resources, Security

LIMITS = frozenset({"cpu", "memory", "pids"})

PODMAN_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
               "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
               "CAP_SYS_CHROOT", "CAP_SETFCAP"]

# This host, as the suite sees it: hybrid cgroups, no SELinux, no AppArmor.
HOST = HostFeatures(cgroup_mode=CgroupMode.HYBRID, cgroup_delegated=False,
                    selinux_enabled=False, apparmor_enabled=False,
                    apparmor_profiles=frozenset(), seccomp=True, arch="amd64")


def spec(profile: str = "default", **kw: object) -> ContainerSpec:
    """A container spec of an image that does not matter here (confine never reads it)."""
    return ContainerSpec(image="busybox", profile=profile, **kw)  # type: ignore[arg-type]


def binds(*volumes: tuple[str, str, bool]) -> tuple[Mount, ...]:
    """-v SRC:DST[:ro] mounts as a spec holds them (sources as given, not resolved)."""
    return tuple(Mount("bind", dst, src, read_only=ro) for src, dst, ro in volumes)


@pytest.fixture
def user_profiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("HOME", str(tmp_path))
    d = tmp_path / "config" / "secpod" / "profiles"
    d.mkdir(parents=True)
    return d


def test_builtins_load() -> None:
    strict, default = load("strict"), load("default")
    assert strict.capabilities == () and strict.read_only_root and strict.require_signed
    assert list(default.capabilities) == PODMAN_CAPS and not default.read_only_root
    assert not default.require_signed
    assert strict.masked_paths == default.masked_paths
    assert "/proc/kcore" in strict.masked_paths and "/proc/sys" in strict.readonly_paths


def test_strict_confinement() -> None:
    c = confine(spec("strict"), HOST)
    caps = c.process["capabilities"]
    assert all(caps[k] == [] for k in ("bounding", "effective", "permitted", "inheritable",
                                       "ambient"))
    assert c.process["noNewPrivileges"] is True
    assert {r["type"]: (r["soft"], r["hard"]) for r in c.process["rlimits"]} == {
        "RLIMIT_NOFILE": (1024, 1024), "RLIMIT_NPROC": (512, 512), "RLIMIT_CORE": (0, 0)}
    assert c.root_readonly and c.require_signed
    assert [n["type"] for n in c.linux["namespaces"]] == [
        "mount", "network", "pid", "ipc", "uts", "cgroup"]
    assert c.linux["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    assert c.linux["seccomp"]["defaultErrnoRet"] == 1
    assert "resources" not in c.linux
    tmpfs = {m["destination"]: m["options"] for m in c.mounts if m["type"] == "tmpfs"}
    assert set(tmpfs) == {"/tmp", "/run"}  # noqa: S108
    assert all("nosuid" in o and "nodev" in o and any(x.startswith("size=") for x in o)
               for o in tmpfs.values())
    s = c.summary
    assert s["caps"] == [] and s["seccomp"]["enabled"] and s["seccomp"]["rules"] > 300
    assert s["read_only_root"] and s["selinux"] is None and s["apparmor"] is None
    assert "pids limit 512: cgroups are in hybrid mode, rootless limits are not enforced" \
        in c.unenforced
    assert any(u.startswith("SELinux") for u in c.unenforced)
    assert any(u.startswith("AppArmor") for u in c.unenforced)


def test_default_confinement() -> None:
    c = confine(spec(), HOST)
    assert c.profile == "default" and not c.root_readonly and not c.require_signed
    assert c.process["capabilities"]["bounding"] == PODMAN_CAPS
    assert c.process["capabilities"]["effective"] == PODMAN_CAPS
    assert c.linux["seccomp"]["defaultErrnoRet"] == 38    # containers-common: ENOSYS
    assert c.mounts == ()


def test_profile_hash_is_stable_and_tracks_settings() -> None:
    a = confine(spec("strict"), HOST)
    b = confine(spec("strict"), HOST)
    c = confine(spec("strict", security=Security(cap_add=("NET_BIND_SERVICE",))), HOST)
    assert a.profile_hash == b.profile_hash != c.profile_hash
    assert a.profile_hash.startswith("sha256:") and len(a.profile_hash) == 71


def test_cap_flags() -> None:
    c = confine(spec(security=Security(cap_drop=("ALL",), cap_add=("net_bind_service",))), HOST)
    assert c.process["capabilities"]["bounding"] == ["CAP_NET_BIND_SERVICE"]
    with pytest.raises(UsageError, match="unknown capability 'CAP_FLY'"):
        confine(spec(security=Security(cap_add=("CAP_FLY",))), HOST)


def test_cap_add_changes_seccomp_resolution() -> None:
    plain = confine(spec(), HOST).linux["seccomp"]
    more = confine(spec(security=Security(cap_add=("SYS_PTRACE",))), HOST).linux["seccomp"]

    def allowed(s: dict) -> set[str]:
        return {n for e in s["syscalls"] if e["action"] == "SCMP_ACT_ALLOW" for n in e["names"]}

    assert "kcmp" not in allowed(plain) and "kcmp" in allowed(more)


def test_security_opts() -> None:
    c = confine(spec(security=Security(seccomp="unconfined", no_new_privileges=False)), HOST)
    assert "seccomp" not in c.linux and c.process["noNewPrivileges"] is False
    assert c.summary["seccomp"] == {"enabled": False, "source": "unconfined", "rules": 0,
                                    "bpf_instructions": 0, "default": None, "unresolved": []}
    assert list(c.weakened) == ["seccomp=unconfined: no seccomp filter",
                                       "no-new-privileges=false: setuid binaries may gain "
                                       "privilege"]
    # (the syntax of --security-opt, e.g. "privileged=true" refused: test_spec_flags.py)


def test_security_opt_seccomp_file(tmp_path: Path) -> None:
    f = tmp_path / "mine.json"
    f.write_text(json.dumps({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"}]}))
    c = confine(spec(security=Security(seccomp=str(f))), HOST)
    assert c.linux["seccomp"]["syscalls"] == [
        {"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"}]
    assert c.summary["seccomp"]["rules"] == 3
    f.write_text(json.dumps({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["reed"], "action": "SCMP_ACT_ALLOW"}]}))
    with pytest.raises(ProfileError, match="unknown syscall 'reed'"):
        confine(spec(security=Security(seccomp=str(f))), HOST)


def test_volumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    data = tmp_path / "data"
    data.mkdir()
    link = tmp_path / "link"
    link.symlink_to(data)
    c = confine(spec(mounts=binds((str(link), "/data", True))), HOST)
    assert c.mounts == ({"destination": "/data", "type": "bind", "source": str(data),
                         "options": ["rbind", "ro", "nosuid", "nodev", "rprivate"]},)
    with pytest.raises(UsageError, match="does not exist"):
        confine(spec(mounts=binds((str(tmp_path / "nope"), "/d", False))), HOST)
    with pytest.raises(UsageError, match="absolute path below /"):
        confine(spec(mounts=binds((str(data), "relative", False))), HOST)
    # strict allows bind sources under ~, /tmp and /var/tmp only
    with pytest.raises(Refused, match="does not allow bind mounts from /etc"):
        confine(spec("strict", mounts=binds(("/etc", "/e", True))), HOST)
    ok = confine(spec("strict", mounts=binds((str(data), "/d", False))), HOST)
    assert ok.mounts[-1]["source"] == str(data)


def test_network() -> None:
    assert confine(spec(network="none"), HOST).summary["network"] == "loopback"
    with pytest.raises(FloorRefused, match="--network host"):
        confine(spec(network="host"), HOST)
    with pytest.raises(UsageError):
        confine(spec(network="bridge"), HOST)


def test_unknown_profile() -> None:
    with pytest.raises(NotFound, match="no profile named 'nosuch'"):
        confine(spec("nosuch"), HOST)


@pytest.mark.parametrize("table", ["selinux", "apparmor", "limits"])
def test_required_refuses_and_if_available_records(user_profiles: Path, table: str) -> None:
    (user_profiles / "must.toml").write_text(
        f'extends = "strict"\n[{table}]\nenforce = "required"\n')
    with pytest.raises(HostError) as e:
        confine(spec("must"), HOST)
    assert "requires" in e.value.message and e.value.hint
    (user_profiles / "may.toml").write_text(
        f'extends = "strict"\n[{table}]\nenforce = "if-available"\n')
    c = confine(spec("may"), HOST)
    word = {"selinux": "SELinux", "apparmor": "AppArmor", "limits": "pids limit"}[table]
    assert any(u.startswith(word) for u in c.unenforced)
    assert c.summary["unenforced"] == list(c.unenforced)


def test_resources_only_where_enforceable() -> None:
    v2 = replace(HOST, cgroup_mode=CgroupMode.V2, cgroup_delegated=True,
    cgroup_controllers=LIMITS)
    c = confine(spec("strict"), v2)
    assert c.linux["resources"] == {"pids": {"limit": 512}, "memory": {"limit": 1 << 30},
                                    "cpu": {"shares": 1024}}
    assert not any("limit" in u for u in c.unenforced)


def test_lsms_where_available() -> None:
    host = replace(HOST, selinux_enabled=True, apparmor_enabled=True,
                   apparmor_profiles=frozenset({"secpod-strict"}))
    c = confine(spec("strict"), host, mcs_in_use=frozenset())
    label = c.process["selinuxLabel"]
    assert label.startswith("system_u:system_r:container_t:s0:c")
    level = label.split(":", 3)[3]
    assert c.linux["mountLabel"] == f"system_u:object_r:container_file_t:{level}"
    lo, hi = (int(x[1:]) for x in level.split(":")[1].split(","))
    assert 0 <= lo < hi < 1024
    assert c.process["apparmorProfile"] == "secpod-strict"
    assert c.summary["selinux"] == label and c.summary["apparmor"] == "secpod-strict"
    assert c.unenforced == tuple(u for u in c.unenforced if "limit" in u)


# --- the OCI runtime-spec schema ---------------------------------------------


def _validator(shared: Path):  # type: ignore[no-untyped-def]
    from jsonschema import Draft4Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    folder = shared / "oci-schemas" / "runtime-spec"
    resources = []
    for f in folder.glob("*.json"):
        doc = json.loads(f.read_text())
        resources.append((f.name, Resource.from_contents(doc, default_specification=DRAFT4)))
        resources.append((f.as_uri(), Resource.from_contents(doc, default_specification=DRAFT4)))
    registry = Registry().with_resources(resources)
    schema = json.loads((folder / "config-schema.json").read_text())
    schema.setdefault("$id", (folder / "config-schema.json").as_uri())
    return Draft4Validator(schema, registry=registry)


def _config(c: Confinement) -> dict:
    return {
        "ociVersion": "1.0.2",
        "process": {"user": {"uid": 0, "gid": 0}, "cwd": "/", "args": ["/bin/true"],
                    "env": ["PATH=/bin"], **c.process},
        "root": {"path": "rootfs", "readonly": c.root_readonly},
        "hostname": "secpod",
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}, *c.mounts],
        "linux": {**c.linux, "namespaces": [*c.linux["namespaces"], {"type": "user"}],
                  "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
                  "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]},
    }


@pytest.mark.parametrize("request_", [
    spec("strict"),
    spec("default"),
    spec("strict", security=Security(cap_add=("CHOWN",)), mounts=(
        *binds(("/tmp", "/t", True)), Mount("tmpfs", "/scratch", size=1 << 20, mode=0o700))),
    spec("default", security=Security(seccomp="unconfined"),
         resources=Resources(pids_limit=10, memory=64 << 20, cpu_shares=512)),
], ids=["strict", "default", "strict-flags", "default-unconfined"])
def test_config_validates_against_oci_schema(shared: Path, request_: ContainerSpec) -> None:
    validator = _validator(shared)
    for host in (HOST, replace(HOST, cgroup_mode=CgroupMode.V2, cgroup_delegated=True,
    cgroup_controllers=LIMITS,
                               selinux_enabled=True)):
        config = _config(confine(request_, host))
        errors = sorted(validator.iter_errors(config), key=lambda e: list(e.path))
        assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]


def test_schema_validator_catches_a_bad_config(shared: Path) -> None:
    config = _config(confine(spec("strict"), HOST))
    config["linux"]["seccomp"]["defaultAction"] = "SCMP_ACT_MAYBE"
    assert list(_validator(shared).iter_errors(config))


def test_user_tmpfs_and_resource_requests() -> None:
    v2 = replace(HOST, cgroup_mode=CgroupMode.V2, cgroup_delegated=True,
    cgroup_controllers=LIMITS)
    asked = spec("strict", mounts=(Mount("tmpfs", "/scratch", size=1 << 20),
                                   Mount("tmpfs", "/bin2", exec_=True)),
                 resources=Resources(pids_limit=10, memory=2 << 30))
    c = confine(asked, v2)
    assert c.weakened == ("tmpfs-exec: programs may run from the tmpfs at /bin2",
                          "memory: memory limit 2147483648, above the profile's 1073741824")
    assert c.profile_label == "strict+2"
    assert c.linux["resources"] == {"pids": {"limit": 10}, "memory": {"limit": 2 << 30},
                                    "cpu": {"shares": 1024}}
    assert [m["options"] for m in c.mounts[-2:]] == [
        ["nosuid", "nodev", "noexec", "mode=1777", "size=1048576"],
        ["nosuid", "nodev", "mode=1777", "size=67108864"]]
    assert c.summary["limits"] == {"pids": 10, "memory": 2 << 30, "cpu_shares": 1024}
    here = confine(spec("strict", resources=Resources(pids_limit=10)), HOST)
    assert "pids limit 10: cgroups are in hybrid mode, rootless limits are not enforced" \
        in here.unenforced and here.weakened == ()
    # the hash covers what the bundle sets: a limit this host cannot set is not among it
    assert here.profile_hash == confine(spec("strict"), HOST).profile_hash
