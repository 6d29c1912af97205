"""secpod.spec.flags: each run/create flag's syntax, good and malformed, into a ContainerSpec."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from secpod.errors import UsageError
from secpod.spec import ContainerSpec, Mount, Security
from secpod.spec import flags as f


def parse(*argv: str, detach: bool = False) -> ContainerSpec:
    """What `secpod run ARGV` would be asked."""
    p = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    f.add_run_flags(p)
    return f.spec_from_args(p.parse_args(list(argv)), detach=detach)


# --- the whole command line ---------------------------------------------------------


def test_a_full_command_line(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    envf = tmp_path / "env"
    envf.write_text("# comment\n\n  FROM_FILE=1\nBOTH=file\n")
    spec = parse("--profile", "strict", "--name", "web", "-h", "box.local", "--rm",
                 "--runtime", "crun", "-e", "BOTH=flag", "--env-file", str(envf),
                 "-v", f"{tmp_path}/data:/data:ro", "--tmpfs", "/scratch:size=1m,mode=700",
                 "--mount", f"type=bind,src={tmp_path},dst=/host", "-w", "/data", "-u", "1000",
                 "-it", "--cap-drop", "ALL", "--cap-add", "net_bind_service",
                 "--security-opt", "no-new-privileges", "--read-only=false", "--network",
                 "loopback", "--pids-limit", "10", "-m", "64m", "--cpu-shares", "512",
                 "--entrypoint", "/bin/sh -c", "busybox", "echo", "hi", detach=True)
    assert (spec.image, spec.profile, spec.name, spec.hostname) == (
        "busybox", "strict", "web", "box.local")
    assert spec.auto_remove and spec.detach and spec.runtime == "crun"
    p = spec.process
    assert p.command == ("echo", "hi") and p.entrypoint == ("/bin/sh", "-c")
    assert p.env == (("FROM_FILE", "1"), ("BOTH", "flag"))      # -e wins over the file
    assert (p.workdir, p.user, p.interactive, p.tty) == ("/data", "1000", True, True)
    assert [(m.kind, m.destination, m.source, m.read_only) for m in spec.mounts] == [
        ("bind", "/data", str(tmp_path / "data"), True), ("bind", "/host", str(tmp_path), False),
        ("tmpfs", "/scratch", "", False)]
    assert (spec.mounts[2].size, spec.mounts[2].mode, spec.mounts[2].exec_) == (1 << 20, 0o700,
                                                                               False)
    s = spec.security
    assert s.cap_drop == ("ALL",) and s.cap_add == ("CAP_NET_BIND_SERVICE",)
    assert s.no_new_privileges is True and s.read_only is False and s.seccomp is None
    assert spec.network == "private"
    r = spec.resources
    assert (r.pids_limit, r.memory, r.cpu_shares) == (10, 64 << 20, 512)


def test_defaults() -> None:
    spec = parse("busybox")
    assert spec.profile == "default" and spec.runtime is None and not spec.detach
    assert spec.process.entrypoint is None and spec.process.command == ()
    assert spec.mounts == () and spec.network is None and spec.hostname is None
    assert spec.security.read_only is None and spec.security.no_new_privileges is None
    assert (spec.resources.pids_limit, spec.resources.memory) == (None, None)
    assert parse("--entrypoint", "", "busybox").process.entrypoint == ()


@pytest.mark.parametrize("argv,message", [
    (["-w", "relative", "busybox"], "the working directory 'relative' is not absolute"),
    (["--pids-limit", "0", "busybox"], "--pids-limit '0': give a positive number"),
    (["--pids-limit", "-3", "busybox"], "--pids-limit '-3': give a positive number"),
    (["--pids-limit", "ten", "busybox"], "--pids-limit 'ten': give a positive number"),
    (["--cpu-shares", "1", "busybox"], "--cpu-shares 1: give a number from 2 to 262144"),
    (["--cpu-shares", "262145", "busybox"], "--cpu-shares 262145: give a number from 2"),
    (["-m", "lots", "busybox"], "--memory: 'lots' is not a size"),
    (["-m", "0", "busybox"], "--memory: a size must be positive"),
    (["--network", "bridge", "busybox"], "unsupported --network 'bridge'"),
    (["--hostname=-bad", "busybox"], "invalid host name '-bad'"),
    (["-h", "under_score", "busybox"], "invalid host name 'under_score'"),
    (["--cap-add", "fly", "busybox"], "--cap-add: unknown capability 'fly'"),
    (["--cap-drop", "CAP_FLY", "busybox"], "--cap-drop: unknown capability 'CAP_FLY'"),
    (["--tmpfs", "/a", "--tmpfs", "/a", "busybox"], "two mounts at /a"),
    (["--tmpfs", "/a/", "-v", "/tmp:/a", "busybox"], "two mounts at /a"),
    (["--security-opt", "privileged=true", "busybox"], "unsupported --security-opt"),
])
def test_malformed_command_lines(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError) as e:
        parse(*argv)
    assert message in e.value.message


# --- environment ----------------------------------------------------------------------


def test_parse_env_order_and_host_values() -> None:
    environ = {"HOSTVAR": "from-host"}
    assert f.parse_env(["A=1", "B=", "A=2", "HOSTVAR", "MISSING", "C=x=y"], environ=environ) == (
        ("A", "2"), ("B", ""), ("HOSTVAR", "from-host"), ("C", "x=y"))


@pytest.mark.parametrize("item", ["=value", "", "BAD KEY=1", "TAB\tKEY", "NUL=a\0b"])
def test_parse_env_refuses_malformed_items(item: str) -> None:
    with pytest.raises(UsageError, match=r"invalid environment variable .* \(-e\)") as e:
        f.parse_env([item], environ={})
    assert e.value.hint == "use KEY=VALUE, or KEY alone to pass your own value"


def test_env_files(tmp_path: Path) -> None:
    good = tmp_path / "good.env"
    good.write_text("# a comment\r\n\n   INDENTED=1\nKEY_ALONE\nLAST=end\n")
    assert f.parse_env(["LAST=flag"], [str(good)], environ={"KEY_ALONE": "mine"}) == (
        ("INDENTED", "1"), ("KEY_ALONE", "mine"), ("LAST", "flag"))
    bad = tmp_path / "bad.env"
    bad.write_text("OK=1\n# fine\nBAD LINE=2\n")
    with pytest.raises(UsageError, match=rf"invalid environment variable 'BAD LINE=2' "
                                         rf"\(--env-file {bad}, line 3\)"):
        f.parse_env([], [str(bad)], environ={})
    bad.write_text("=nokey\n")
    with pytest.raises(UsageError, match=r"line 1\)"):
        f.parse_env([], [str(bad)], environ={})


def test_env_files_that_cannot_be_read(tmp_path: Path) -> None:
    big = tmp_path / "big.env"
    big.write_bytes(b"A=" + b"x" * f.MAX_ENV_FILE + b"\n")
    with pytest.raises(UsageError, match=f"--env-file {big} is larger than {f.MAX_ENV_FILE}"):
        f.parse_env([], [str(big)], environ={})
    exact = tmp_path / "exact.env"
    exact.write_bytes(b"A=" + b"x" * (f.MAX_ENV_FILE - 3) + b"\n")
    assert len(f.parse_env([], [str(exact)], environ={})[0][1]) == f.MAX_ENV_FILE - 3
    with pytest.raises(UsageError, match="cannot read --env-file .*missing") as e:
        f.parse_env([], [str(tmp_path / "missing")], environ={})
    assert e.value.hint == "give a readable file of KEY=VALUE lines"
    with pytest.raises(UsageError, match="cannot read --env-file"):
        f.parse_env([], [str(tmp_path)], environ={})               # a folder
    latin = tmp_path / "latin.env"
    latin.write_bytes(b"A=caf\xe9\n")
    with pytest.raises(UsageError, match=f"--env-file {latin} is not UTF-8 text"):
        f.parse_env([], [str(latin)], environ={})


# --- mounts ---------------------------------------------------------------------------


def test_parse_volume(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    m = f.parse_volume(f"{tmp_path}/link:/data/./x/:ro")
    assert (m.kind, m.source, m.destination, m.read_only) == (
        "bind", str(tmp_path / "real"), "/data/x", True)
    assert f.parse_volume(f"{tmp_path}:/d:rw").read_only is False
    assert f.parse_volume(f"{tmp_path}:/d").read_only is False


@pytest.mark.parametrize("text,message", [
    ("/tmp", "invalid volume '/tmp'"),
    ("/tmp:", "invalid volume '/tmp:'"),
    (":/d", "invalid volume ':/d'"),
    ("/tmp:/d:ro:extra", "invalid volume '/tmp:/d:ro:extra'"),
    ("/tmp:/d:z", "invalid volume mode 'z'"),
    ("/tmp:/d:nocopy", "invalid volume mode 'nocopy'"),      # only for a named volume
    ("/tmp:/d:shared", "shared propagation is refused"),
    ("vol:/d:rslave", "rslave propagation is refused"),
    ("/data", "anonymous volumes are not supported"),
    ("bad name:/d", "the volume name 'bad name' is not a volume name"),
    ("-x:/d", "the volume name '-x' is not a volume name"),
    ("_x:/d", "the volume name '_x' is not a volume name"),
    ("a" * 129 + ":/d", "is longer than 128 characters"),
    ("..:/d", "the volume source '..' is not an absolute path"),
    ("./dir:/d", "the volume source './dir' is not an absolute path"),
    ("relative/dir:/d", "the volume source 'relative/dir' is not an absolute path"),
    ("/no/such/path:/d", "the volume source /no/such/path does not exist"),
    ("/tmp:relative", "the mount destination 'relative' in '/tmp:relative' must be an "
                      "absolute path below /"),
    ("/tmp:/", "the mount destination '/'"),
    ("/tmp:/a/../..", "the mount destination '/a/../..'"),
    ("/tmp:/../etc", "the mount destination '/../etc'"),
])
def test_parse_volume_refuses(text: str, message: str) -> None:
    with pytest.raises(UsageError) as e:
        f.parse_volume(text)
    assert message in e.value.message


def test_bind_source_and_check_destination(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert f.bind_source("~") == str(tmp_path)
    with pytest.raises(UsageError, match="does not exist") as e:
        f.bind_source(str(tmp_path / "gone"))
    assert e.value.hint == "create it first; secpod does not create host paths"
    assert f.check_destination("/a//b/", "x") == "/a/b"
    with pytest.raises(UsageError, match="must be an absolute path below /"):
        f.check_destination("a/b", "x")


def test_parse_mount(tmp_path: Path) -> None:
    m = f.parse_mount(f"type=bind,source={tmp_path},target=/data,readonly")
    assert (m.kind, m.source, m.destination, m.read_only) == ("bind", str(tmp_path), "/data",
                                                              True)
    for spelling in ("ro", "readonly=true", "readonly=1", "ro=true"):
        assert f.parse_mount(f"type=bind,src={tmp_path},dst=/d,{spelling}").read_only
    assert not f.parse_mount(f"type=bind,src={tmp_path},destination=/d,readonly=0").read_only
    assert f.parse_mount(f"type=bind,src={tmp_path},dst=/d,bind-propagation=rprivate").source \
        == str(tmp_path)
    t = f.parse_mount("type=tmpfs,target=/t,tmpfs-size=2m,tmpfs-mode=755")
    assert (t.kind, t.destination, t.size, t.mode, t.exec_) == ("tmpfs", "/t", 2 << 20, 0o755,
                                                                False)
    t = f.parse_mount("type=tmpfs,dst=/t")
    assert (t.size, t.mode, t.read_only) == (None, None, False)


@pytest.mark.parametrize("text,message", [
    ("type=bind,source=/tmp", "has no target"),
    ("type=bind,target=/d", "has no source"),
    ("type=bind,src=/tmp,dst=/d,dst=/e", "gives target twice"),
    ("type=bind,src=/tmp,target=/d,destination=/e", "gives target twice"),
    ("type=bind,src=/tmp,dst=/d,colour=red", "unknown option 'colour'"),
    ("type=bind,src=/tmp,dst=/d,readonly=yes", "readonly takes true or false"),
    ("type=bind,src=/tmp,dst=/d,bind-propagation=shared", "bind-propagation=shared is "
                                                          "refused"),
    ("type=tmpfs,dst=/t,source=/tmp", "a tmpfs has no source"),
    ("type=tmpfs,dst=/t,tmpfs-mode=4755", "invalid tmpfs mode '4755'"),
    ("type=tmpfs,dst=/t,tmpfs-size=big", "tmpfs-size: 'big' is not a size"),
    ("type=volume,dst=/v", "anonymous volumes are not supported"),
    ("type=volume,src=a/b,dst=/v", "the volume name 'a/b' is not a volume name"),
    ("type=volume,src=..,dst=/v", "the volume name '..' is not a volume name"),
    ("type=volume,src=v,dst=/v,volume-driver=nfs", "volume-driver=nfs is not supported"),
    ("type=volume,src=v,dst=/v,volume-opt=type=nfs", "volume-opt is not supported"),
    ("type=volume,src=v,dst=/v,volume-subpath=/abs", "volume-subpath must be a relative"),
    ("type=volume,src=v,dst=/v,volume-subpath=a/../..", "volume-subpath must be a relative"),
    ("type=volume,src=v,dst=/v,volume-label", "volume-label takes KEY=VALUE"),
    ("type=volume,src=v,dst=/v,volume-nocopy=maybe", "volume-nocopy takes true or false"),
    ("type=volume,src=v,dst=/v,tmpfs-size=1m", "unknown option 'tmpfs-size' (it is for "
                                                "type=tmpfs)"),
    ("type=volume,src=v,dst=/v,bind-propagation=rprivate",
     "unknown option 'bind-propagation' (it is for type=bind)"),
    ("type=tmpfs,dst=/t,volume-nocopy", "unknown option 'volume-nocopy' (it is for "
                                        "type=volume)"),
    ("type=tmpfs,dst=/t,tmpfs-size=0", "a size must be positive"),
    ("type=tmpfs,dst=/t,tmpfs-size=50%", "is not a size"),
    ("type=bind,src=/tmp,dst=/d,bind-propagation=rslave", "bind-propagation=rslave is "
                                                          "refused"),
    ("type=bind,src=/tmp,dst=/d,bind-propagation=sideways", "is not a propagation"),
    ("type=bind,src=/tmp,dst=/d,bind-recursive=writable", "bind-recursive=writable is not"),
    ("type=bind,src=/tmp,target", "target needs a value"),
    ("type=bind,src=/tmp,dst=/d,,", "has an empty option"),
    ("type=npipe,dst=/p", "unknown type 'npipe'"),
    ("type=bind,src=relative,dst=/d", "the volume source 'relative' is not an absolute path"),
    ("type=bind,src=/tmp,dst=relative", "must be an absolute path below /"),
    ("", "has an empty option"),
    ("type=bind", "has no target"),
])
def test_parse_mount_refuses(text: str, message: str) -> None:
    with pytest.raises(UsageError) as e:
        f.parse_mount(text)
    assert message in e.value.message


def test_parse_named_volumes() -> None:
    m = f.parse_volume("data:/srv/./data/:ro")
    assert (m.kind, m.source, m.destination, m.read_only, m.nocopy) == (
        "volume", "data", "/srv/data", True, False)
    m = f.parse_volume("my_vol.1-x:/d:rw,nocopy,rprivate")
    assert (m.kind, m.source, m.read_only, m.nocopy) == ("volume", "my_vol.1-x", False, True)
    m = f.parse_mount("type=volume,src=cache,dst=/c,readonly,volume-nocopy,"
                      "volume-subpath=a//b/,volume-label=k=v,volume-label=x,"
                      "consistency=cached,volume-driver=local")
    assert (m.kind, m.source, m.destination, m.read_only, m.nocopy, m.subpath, m.labels) == (
        "volume", "cache", "/c", True, True, "a/b", (("k", "v"), ("x", "")))
    m = f.parse_mount("source=v,destination=/d,ro=false,volume-nocopy=0")  # type: volume
    assert (m.kind, m.read_only, m.nocopy) == ("volume", False, False)
    b = f.parse_mount("type=bind,src=/tmp,target=/d,bind-recursive=disabled")
    assert (b.kind, b.recursive) == ("bind", False)
    assert not f.parse_mount("type=bind,src=/tmp,dst=/d,bind-nonrecursive").recursive
    assert f.parse_mount("type=bind,src=/tmp,dst=/d,bind-propagation=private").recursive


def test_parse_mounts_refuses_as_a_mount_request() -> None:
    from secpod.errors import MountRequestError

    with pytest.raises(MountRequestError) as e:
        f.parse_mounts(["vol:/d"], ["type=tmpfs,dst=/d"], [])
    assert e.value.message == "two mounts at /d" and e.value.exit_code == 125
    with pytest.raises(MountRequestError, match="is not a volume name"):
        f.parse_mounts(["a b:/d"], [], [])


def test_parse_tmpfs() -> None:
    t = f.parse_tmpfs("/scratch")
    assert (t.kind, t.destination, t.size, t.mode, t.read_only, t.exec_) == (
        "tmpfs", "/scratch", None, None, False, False)
    t = f.parse_tmpfs("/s:size=1m,mode=1770,ro,exec,nosuid,nodev")
    assert (t.size, t.mode, t.read_only, t.exec_) == (1 << 20, 0o1770, True, True)
    t = f.parse_tmpfs("/s:ro,rw,exec,noexec")        # the last word of each pair wins
    assert (t.read_only, t.exec_) == (False, False)


@pytest.mark.parametrize("text,message", [
    ("/s:mode=999", "invalid tmpfs mode '999'"),
    ("/s:mode=4777", "invalid tmpfs mode '4777'"),     # setuid
    ("/s:mode=2777", "invalid tmpfs mode '2777'"),     # setgid
    ("/s:mode=17777", "invalid tmpfs mode '17777'"),
    ("/s:mode=", "invalid tmpfs mode ''"),
    ("/s:mode=rwx", "invalid tmpfs mode 'rwx'"),
    ("/s:size=lots", "--tmpfs size: 'lots' is not a size"),
    ("/s:size=0", "--tmpfs size: a size must be positive"),
    ("/s:suid", "unsupported option 'suid'"),
    ("/s:dev", "unsupported option 'dev'"),
    ("/s:size", "unsupported option 'size'"),
    ("relative:size=1m", "the mount destination 'relative'"),
    ("/", "the mount destination '/'"),
    ("", "the mount destination ''"),
])
def test_parse_tmpfs_refuses(text: str, message: str) -> None:
    with pytest.raises(UsageError) as e:
        f.parse_tmpfs(text)
    assert message in e.value.message


def test_check_destinations() -> None:
    f.check_destinations([Mount("tmpfs", "/a"), Mount("tmpfs", "/b")])
    with pytest.raises(UsageError, match="two mounts at /a"):
        f.check_destinations([Mount("tmpfs", "/a"), Mount("bind", "/a", "/tmp")])


# --- security -------------------------------------------------------------------------


def test_parse_security_opts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = f.parse_security_opts(["seccomp=mine.json", "no-new-privileges=false",
                               "label=disable", "apparmor=unconfined"])
    assert (s.seccomp, s.no_new_privileges, s.label_disable, s.apparmor) == (
        os.path.join(tmp_path, "mine.json"), False, True, "unconfined")
    assert f.parse_security_opts(["seccomp:unconfined"]).seccomp == "unconfined"  # Docker's old
    assert f.parse_security_opts(["no-new-privileges"]).no_new_privileges is True
    assert f.parse_security_opts(["no-new-privileges=true"]).no_new_privileges is True
    assert f.parse_security_opts(["apparmor=secpod-x"]).apparmor == "secpod-x"
    empty = f.parse_security_opts([])
    assert (empty.seccomp, empty.no_new_privileges, empty.label_disable, empty.apparmor) == (
        None, None, False, None)
    assert isinstance(empty, Security)


@pytest.mark.parametrize("opt,message", [
    ("privileged=true", "unsupported --security-opt 'privileged=true'"),
    ("seccomp", "unsupported --security-opt 'seccomp'"),
    ("seccomp=", "unsupported --security-opt 'seccomp='"),
    ("label", "unsupported --security-opt 'label'"),
    ("no-new-privileges=maybe", "use no-new-privileges=true|false"),
    ("label=type:spc_t", "only label=disable is supported"),
    ("label=user:root", "only label=disable is supported"),
])
def test_parse_security_opts_refuses(opt: str, message: str) -> None:
    with pytest.raises(UsageError) as e:
        f.parse_security_opts([opt])
    assert message in e.value.message


def test_parse_caps() -> None:
    assert f.parse_caps(["net_raw", "NET_ADMIN", "CAP_CHOWN", " all "], "--cap-add") == (
        "CAP_NET_RAW", "CAP_NET_ADMIN", "CAP_CHOWN", "ALL")
    assert f.parse_caps([], "--cap-drop") == ()
    for bad in ("CAP_FLY", "net-raw", "", "CAP_"):
        with pytest.raises(UsageError, match="--cap-drop: unknown capability") as e:
            f.parse_caps(["CHOWN", bad], "--cap-drop")
        assert "capabilities(7)" in (e.value.hint or "")


def test_parse_network() -> None:
    assert f.parse_network(None) is None
    assert f.parse_network("none") == "none" and f.parse_network("loopback") == "private"
    assert f.parse_network("private") == "private" and f.parse_network("pasta") == "pasta"
    assert f.parse_network("host") == "host"
    for bad in ("bridge", "container:web", "", "HOST"):
        with pytest.raises(UsageError, match="unsupported --network"):
            f.parse_network(bad)


@pytest.mark.parametrize("name", ["box", "a", "web-1.example.org", "x" * 63, "1.2.3.4",
                                  ".".join(["a" * 31, "b" * 32])])
def test_check_hostname_accepts(name: str) -> None:
    assert f.check_hostname(name) == name


@pytest.mark.parametrize("name", ["", "-box", "box-", "a..b", ".box", "box.", "b_x", "bö",
                                  "x" * 64 + ".a", "a" * 64, "sp ace", "semi;colon"])
def test_check_hostname_refuses(name: str) -> None:
    with pytest.raises(UsageError, match="invalid host name") as e:
        f.check_hostname(name)
    assert "-h/--hostname" in (e.value.hint or "")


# --- resources ------------------------------------------------------------------------


def test_parse_size() -> None:
    assert f.parse_size("64m", "-m") == 64 << 20
    assert f.parse_size("2G", "-m") == 2 << 30 and f.parse_size("512", "-m") == 512
    assert f.parse_size("1k", "-m") == 1024
    for bad, why in (("1.5g", "is not a size"), ("-1m", "is not a size"), ("", "is not a size"),
                     ("0k", "a size must be positive"), ("1t", "is not a size")):
        with pytest.raises(UsageError, match=why) as e:
            f.parse_size(bad, "--memory")
        assert e.value.message.startswith("--memory: ")


@pytest.mark.parametrize("dst", ["/.", "/./.", "//"])
def test_check_destination_refuses_names_of_the_root(dst: str) -> None:
    with pytest.raises(UsageError, match="must be an absolute path below /"):
        f.check_destination(dst, f"-v /tmp:{dst}")
