"""Pure unit tests of the sandbox: id mappings, rootfs lookups, process args, logs, cgroups."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from secpod.errors import HostError, MalformedInput, UsageError
from secpod.sandbox import bundle, host, idmap, rootfs
from secpod.sandbox.monitor import LogWriter
from secpod.spec import Process
from secpod.spec.flags import parse_env


def test_subordinate_ranges_by_name_and_number(tmp_path: Path) -> None:
    f = tmp_path / "subuid"
    f.write_text("alice:100000:65536\n1001:300000:10\nbob:200000:65536\nbroken line\nalice:x:1\n")
    assert idmap.subordinate_ranges(f, "alice", 1001) == [
        idmap.Range(100000, 65536),
        idmap.Range(300000, 10),
    ]
    assert idmap.subordinate_ranges(tmp_path / "missing", "alice", 1001) == []


def test_mappings_put_the_user_at_container_root() -> None:
    maps = idmap.mappings(1001, [idmap.Range(100000, 65536), idmap.Range(300000, 10)])
    assert [m.as_oci() for m in maps] == [
        {"containerID": 0, "hostID": 1001, "size": 1},
        {"containerID": 1, "hostID": 100000, "size": 65536},
        {"containerID": 65537, "hostID": 300000, "size": 10},
    ]


@pytest.mark.parametrize("bad", [idmap.Range(0, 10), idmap.Range(1000, 5)])
def test_mappings_never_include_host_root_or_own_id(bad: idmap.Range) -> None:
    with pytest.raises(HostError):
        idmap.mappings(1001, [bad])


def test_resolve_clamps_symlinks_to_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (root / "abs").symlink_to("/etc")
    (root / "up").symlink_to("../../../../etc")
    (root / "loop").symlink_to("loop")
    assert rootfs.resolve(root, "/abs/passwd") == root / "etc" / "passwd"
    assert rootfs.resolve(root, "/up/passwd") == root / "etc" / "passwd"
    assert rootfs.resolve(root, "/../../etc/passwd") == root / "etc" / "passwd"
    assert rootfs.resolve(root, "/new/dir") == root / "new" / "dir"
    with pytest.raises(MalformedInput):
        rootfs.resolve(root, "/loop/x")


def test_find_executable_and_user_lookup(tmp_path: Path) -> None:
    root = tmp_path
    (root / "bin").mkdir()
    tool = root / "bin" / "tool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    (root / "bin" / "alias").symlink_to("tool")
    (root / "etc").mkdir()
    (root / "etc" / "passwd").write_text(
        "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n"
    )
    (root / "etc" / "group").write_text("root:x:0:\nstaff:x:50:\n")
    found, _ = rootfs.find_executable(root, "alias", "/usr/bin:/bin")
    assert found == tool and rootfs.is_executable(found)
    assert rootfs.find_executable(root, "missing", "/bin")[0] is None
    assert rootfs.lookup_user(root, "app") == (1000, 1001, "/home/app")
    assert rootfs.lookup_user(root, "app:staff") == (1000, 50, "/home/app")
    assert rootfs.lookup_user(root, "4242:7")[:2] == (4242, 7)
    with pytest.raises(MalformedInput, match="nobody"):
        rootfs.lookup_user(root, "nobody")


def test_process_args_follow_docker_rules() -> None:
    cfg = {"Entrypoint": ["/entry"], "Cmd": ["default"]}
    assert bundle.process_args(cfg, Process()) == ["/entry", "default"]
    assert bundle.process_args(cfg, Process(command=("x",))) == ["/entry", "x"]
    assert bundle.process_args(cfg, Process(entrypoint=(), command=("sh",))) == ["sh"]
    with pytest.raises(UsageError):
        bundle.process_args({}, Process())


def test_process_env_merges_image_and_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FROM_HOST", "yes")
    # -e KEY alone is resolved where the spec is made (tests/unit/test_spec_flags.py)
    process = Process(env=parse_env(["A=2", "FROM_HOST", "UNSET_ONE"]))
    env = bundle.process_env({"Env": ["A=1", "PATH=/bin"]}, process, "h1")
    assert "A=2" in env and "PATH=/bin" in env and "FROM_HOST=yes" in env
    assert "HOSTNAME=h1" in env and not any(e.startswith("UNSET_ONE") for e in env)


def test_log_writer_keeps_partial_lines(tmp_path: Path) -> None:
    log = LogWriter(tmp_path / "log")
    log.write(b"stdout", b"a\nb")
    log.write(b"stdout", b"c\n")
    log.write(b"stderr", b"tail")
    log.close()
    lines = [ln.split(b" ", 1)[1] for ln in (tmp_path / "log").read_bytes().splitlines()]
    assert lines == [b"stdout F a", b"stdout F bc", b"stderr P tail"]


@pytest.mark.parametrize(
    ("mounts", "mode"),
    [
        (
            "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"
            "32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"
            "41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n",
            host.CgroupMode.HYBRID,
        ),
        (
            "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"
            "32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n",
            host.CgroupMode.V1,
        ),
        ("31 23 0:28 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n", host.CgroupMode.V2),
        ("", host.CgroupMode.NONE),
    ],
)
def test_cgroup_mode_from_mountinfo(mounts: str, mode: host.CgroupMode) -> None:
    assert host._cgroup_mode(mounts) is mode


def test_probe_reads_this_host() -> None:
    features = host.probe()
    assert features.seccomp
    assert not features.can_limit_resources or features.cgroup_mode is host.CgroupMode.V2
    assert os.uname().machine  # probe has no side effects to check beyond not raising


def test_selinux_levels_in_use_skip_exited_containers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from secpod.sandbox import state

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    labels = {"a": "system_u:system_r:container_t:s0:c1,c2",
              "b": "system_u:system_r:container_t:s0:c3,c4", "c": None}
    for name, label in labels.items():
        cid, cname, _ = state.reserve(name)
        ctr = state.Container(id=cid, name=cname, image_ref="x", image_digest="sha256:0",
                              profile="strict", profile_hash="h", created=state.now(),
                              args=["true"], root_mode="shared-readonly",
                              confinement={"selinux": label}, exit_recorded=(name == "b"))
        ctr.save()
    assert state.selinux_levels_in_use() == frozenset({"s0:c1,c2"})


@pytest.mark.parametrize("dest", [
    "/a/../../x/made",              # .. after a missing directory
    "/etc/made",                    # /etc -> missing/../../../x: a link through a missing dir
    "/rel/made",                    # rel -> ../../x
    "/abs/made",                    # abs -> /../../x
    "/deep/../../../x/made",
])
def test_paths_from_an_image_stay_inside_the_root(tmp_path: Path, dest: str) -> None:
    root = tmp_path / "a" / "b" / "rootfs"
    root.mkdir(parents=True)
    (root / "etc").symlink_to("missing/../../../x")
    (root / "rel").symlink_to("../../x")
    (root / "abs").symlink_to("/../../x")
    (root / "deep").mkdir()
    outside = tmp_path / "a" / "x"
    for directory in (True, False):
        rootfs.ensure_mountpoint(root, dest, directory=directory)
        assert not outside.exists() and not (tmp_path / "x").exists()
        assert rootfs.resolve(root, dest).is_relative_to(root)
    assert (rootfs.resolve(root, dest)).is_dir()


def test_user_lookup_does_not_leave_the_root(tmp_path: Path) -> None:
    host = tmp_path / "hostetc"
    host.mkdir()
    (host / "passwd").write_text("evil:x:0:0::/root:/bin/sh\n")
    root = tmp_path / "rootfs"
    root.mkdir()
    (root / "etc").symlink_to(f"gone/../../{host.name}")
    with pytest.raises(MalformedInput, match="user 'evil' is not in the image's /etc/passwd"):
        rootfs.lookup_user(root, "evil")
    os.mkfifo(root / "fifo")
    (root / "etc").unlink()
    (root / "etc").mkdir()
    (root / "etc" / "passwd").symlink_to("../fifo")     # a FIFO would hang a plain open()
    with pytest.raises(MalformedInput, match="user 'evil'"):
        rootfs.lookup_user(root, "evil")


def test_a_file_on_the_way_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(MalformedInput, match="/file is not a directory"):
        rootfs.ensure_mountpoint(tmp_path, "/file/sub", directory=True)
