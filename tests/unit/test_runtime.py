"""secpod.toml and the runtime classes' judgement of a config (no binary is run)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from secpod import config, runtime
from secpod.errors import MalformedInput, UsageError
from secpod.runtime.crun import CrunRuntime
from secpod.runtime.runc import RuncRuntime

FILE = Path("/home/u/.config/secpod/secpod.toml")


def test_secpod_toml_names_the_runtime() -> None:
    s = config.parse('[engine]\nruntime = "runc"\n', FILE)
    assert (s.runtime, s.source) == ("runc", str(FILE))
    assert config.parse("", FILE).runtime is None
    assert config.parse("[engine]\n", FILE).runtime is None


@pytest.mark.parametrize(("text", "words"), [
    ("[engine\n", "is not valid TOML"),
    ('runtime = "runc"\n', "unknown setting 'runtime'"),
    ('[engin]\nruntime = "runc"\n', "unknown setting 'engin'"),
    ('[engine]\nruntme = "runc"\n', "unknown setting engine.runtme"),
    ('[engine]\nruntime = "/usr/sbin/runc"\n', "engine.runtime must be one of crun, runc"),
    ("[engine]\nruntime = 1\n", "engine.runtime must be one of crun, runc"),
])
def test_a_malformed_secpod_toml_is_named_never_ignored(text: str, words: str) -> None:
    with pytest.raises(MalformedInput) as e:
        config.parse(text, FILE)
    assert str(FILE) in e.value.message and words in e.value.message, e.value.message
    assert "docs/configuration.md" in (e.value.hint or "")


def test_the_users_file_comes_before_the_administrators(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from secpod import paths

    user, admin = tmp_path / "user", tmp_path / "admin"
    (user / "secpod").mkdir(parents=True)
    admin.mkdir()
    monkeypatch.setenv("XDG_CONFIG_HOME", str(user))
    monkeypatch.setattr(paths, "ADMIN_DIR", admin)
    assert config.load().runtime is None
    (admin / "secpod.toml").write_text('[engine]\nruntime = "runc"\n')
    assert config.load().source == str(admin / "secpod.toml")
    (user / "secpod" / "secpod.toml").write_text('[engine]\nruntime = "crun"\n')
    assert (config.load().runtime, config.load().source) == (
        "crun", str(user / "secpod" / "secpod.toml"))


def test_choose_prefers_the_flag_then_the_file_then_crun(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from secpod import paths
    from secpod.policies import floor

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setattr(paths, "ADMIN_DIR", tmp_path / "none")
    monkeypatch.setattr(floor, "load_admin_policy", lambda path=None: None)
    assert runtime.choose(None, "u") == "crun"
    (tmp_path / "secpod").mkdir()
    (tmp_path / "secpod" / "secpod.toml").write_text('[engine]\nruntime = "runc"\n')
    assert runtime.choose(None, "u") == "runc"
    assert runtime.choose("crun", "u") == "crun"


def test_an_unknown_runtime_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown OCI runtime 'kata'"):
        runtime.open_runtime("kata")


def _config(**linux: object) -> dict[str, object]:
    return {"process": {"args": ["true"], "user": {"uid": 0, "gid": 0}},
            "linux": {"seccomp": {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": []},
                      **linux},
            "mounts": [], "annotations": {}}


def test_a_plain_strict_config_suits_both_runtimes() -> None:
    cfg = _config()
    assert RuncRuntime("runc", Path("/r")).refuses(cfg) == []
    assert CrunRuntime("crun", Path("/r")).unenforced(cfg) == []
    assert CrunRuntime("crun", Path("/r")).refuses(cfg) == []


def test_runc_names_what_it_would_fail_on() -> None:
    rt = RuncRuntime("runc", Path("/r"))
    notify = {"defaultAction": "SCMP_ACT_ERRNO", "flags": ["SECCOMP_FILTER_FLAG_LOG"],
              "syscalls": [{"names": ["mount"], "action": "SCMP_ACT_NOTIFY"}]}
    cfg = _config(seccomp=notify, resources={"pids": {"limit": 10}},
                  cgroupsPath="/user.slice/x")
    cfg["process"]["user"]["additionalGids"] = [10]  # type: ignore[index]
    cfg["mounts"] = [{"destination": "/d", "source": "/s", "type": "bind",
                      "options": ["bind", "idmap"]}]
    refused = "\n".join(rt.refuses(cfg))
    for words in ("seccomp flags SECCOMP_FILTER_FLAG_LOG", "SCMP_ACT_NOTIFY rule without a "
                  "listenerPath", "additionalGids", "cgroup resources or a cgroupsPath",
                  "idmapped mounts"):
        assert words in refused, refused
    # where the user can write a cgroup, resources are runc's to apply
    limited = RuncRuntime("runc", Path("/r"), can_limit_resources=True)
    assert not any("cgroup" in r for r in limited.refuses(cfg))
    # device rules alone are not a resource request (the bundle always has them)
    assert rt.refuses(_config(resources={"devices": [{"allow": False, "access": "rwm"}]})) == []


def test_runc_records_what_it_would_silently_ignore() -> None:
    cfg = _config()
    cfg["annotations"] = {"run.oci.keep_original_groups": "0", "org.example": "x"}
    words = RuncRuntime("runc", Path("/r")).unenforced(cfg)
    assert words[0] == "annotations run.oci.keep_original_groups (crun's; runc ignores them)"
    extra = set(os.getgroups()) - {os.getgid()}
    assert any("supplementary groups" in w for w in words) == bool(extra)


def test_crun_records_notify_without_a_listener_as_not_enforced() -> None:
    notify = {"defaultAction": "SCMP_ACT_ALLOW",
              "syscalls": [{"names": ["mount"], "action": "SCMP_ACT_NOTIFY"}]}
    (words,) = CrunRuntime("crun", Path("/r")).unenforced(_config(seccomp=notify))
    assert "ENOSYS" in words


def test_the_command_lines_differ_where_the_runtimes_do() -> None:
    log = Path("/l/runtime.log")
    assert CrunRuntime("/usr/bin/crun", Path("/r")).global_args(log) == [
        "--root=/r", "--cgroup-manager=disabled", "--log=file:/l/runtime.log",
        "--log-format=json"]
    assert RuncRuntime("/usr/sbin/runc", Path("/r")).global_args(log) == [
        "--root=/r", "--log=/l/runtime.log", "--log-format=json"]
    assert CrunRuntime.console_socket_in_foreground
    assert not RuncRuntime.console_socket_in_foreground


# -- crun's state, read from its files (secpod.runtime.crun.read_state) ----------------

def _start_time(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[19])


def _crun_folder(root: Path, cid: str, **status: object) -> Path:
    folder = root / cid
    folder.mkdir(parents=True)
    base = {"pid": os.getpid(), "process-start-time": _start_time(os.getpid()),
            "cgroup-path": "", "scope": "", "rootfs": "/r", "systemd-cgroup": False,
            "bundle": "/b", "created": "2026-12-04T00:00:00Z", "owner": "u",
            "detached": True, "external_descriptors": "[]"}
    (folder / "status").write_text(json.dumps({**base, **status}))
    return folder


def test_crun_state_is_read_as_crun_decides_it(tmp_path: Path) -> None:
    from secpod.runtime.crun import read_state

    assert read_state(tmp_path, "none") is None              # crun does not know it
    (tmp_path / "half").mkdir()
    assert read_state(tmp_path, "half") is None              # no status file yet: neither
    _crun_folder(tmp_path, "live")
    got = read_state(tmp_path, "live")
    assert got is not None
    assert (got["status"], got["pid"], got["bundle"]) == ("running", os.getpid(), "/b")
    os.mkfifo(_crun_folder(tmp_path, "made") / "exec.fifo")  # until `crun start`
    assert (read_state(tmp_path, "made") or {}).get("status") == "created"
    # the pid taken by another process (another start time): the container's has ended
    _crun_folder(tmp_path, "reused", **{"process-start-time": _start_time(os.getpid()) - 1})
    assert read_state(tmp_path, "reused") == {**got, "id": "reused", "status": "stopped",
                                               "pid": 0}
    # older crun wrote no start time: a process with the pid is the container's
    _crun_folder(tmp_path, "old", **{"process-start-time": 0})
    assert (read_state(tmp_path, "old") or {}).get("status") == "running"


def test_a_zombie_init_is_stopped(tmp_path: Path) -> None:
    from secpod.runtime.crun import read_state

    child = os.fork()
    if child == 0:
        os._exit(0)
    try:
        started = _start_time(child)
        for _ in range(200):  # not reaped yet: a zombie with its pid and start time
            if Path(f"/proc/{child}/stat").read_text().rpartition(")")[2].split()[0] == "Z":
                break
            time.sleep(0.01)
        _crun_folder(tmp_path, "z", pid=child, **{"process-start-time": started})
        assert (read_state(tmp_path, "z") or {}).get("status") == "stopped"
    finally:
        os.waitpid(child, 0)


@pytest.mark.parametrize("status", [
    {"cgroup-path": "/user.slice/secpod-x"},   # a freezer: only crun reads paused
    {"pid": "12"}, {"cgroup-path": None}, {"process-start-time": "1"}, {"pid": 0},
])
def test_what_the_files_do_not_settle_is_asked_of_crun(tmp_path: Path,
                                                        status: dict[str, object]) -> None:
    from secpod.runtime.crun import ASK_CRUN, read_state

    _crun_folder(tmp_path, "c", **status)
    assert read_state(tmp_path, "c") is ASK_CRUN
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "status").write_text("{")
    assert read_state(tmp_path, "bad") is ASK_CRUN


def test_crun_lists_from_its_files_and_asks_crun_when_one_is_not_settled(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from secpod.runtime._cli import CommandLineRuntime

    rt = CrunRuntime("/nonexistent/crun", tmp_path / "root")
    assert rt.all_states() == {} and rt.state("x") is None   # no root yet: no process
    _crun_folder(tmp_path / "root", "a")
    (tmp_path / "root" / "b").mkdir()                        # being made: not listed
    assert list(rt.all_states()) == ["a"]
    _crun_folder(tmp_path / "root", "c", **{"cgroup-path": "/c"})
    asked: list[str] = []
    monkeypatch.setattr(CommandLineRuntime, "all_states",
                        lambda self: asked.append("list") or {})
    monkeypatch.setattr(CommandLineRuntime, "state",
                        lambda self, cid: asked.append(cid) or None)
    assert rt.all_states() == {} and rt.state("c") is None and rt.state("a") is not None
    assert asked == ["list", "c"]
