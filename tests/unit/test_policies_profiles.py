"""Profile files: extends, lookup places, bad input, comparison."""

from __future__ import annotations

from pathlib import Path

import pytest

from secpod.errors import NotFound, ProfileError
from secpod.policies import compare, load, load_file
from secpod.policies import profile as pm


@pytest.fixture
def user_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    d = tmp_path / "config" / "secpod" / "profiles"
    d.mkdir(parents=True)
    return d


def test_extends_inherits_and_overrides(user_dir: Path) -> None:
    (user_dir / "web.toml").write_text(
        'extends = "strict"\ndescription = "strict, plus a low port"\n'
        '[process]\ncapabilities = ["NET_BIND_SERVICE"]\n'
        '[filesystem.tmpfs."/var/cache"]\nsize = "8m"\n')
    web, strict = load("web"), load("strict")
    assert web.chain == ("web", "strict")
    assert web.capabilities == ("CAP_NET_BIND_SERVICE",)
    assert web.read_only_root and web.seccomp is not None and web.require_signed
    assert web.rlimits == strict.rlimits
    assert [t.path for t in web.tmpfs] == ["/run", "/tmp", "/var/cache"]  # noqa: S108
    assert compare.weaker(web, strict) == ["capabilities: adds CAP_NET_BIND_SERVICE"]
    assert compare.weaker(strict, web) == []


def test_extends_chain_through_user_profiles(user_dir: Path) -> None:
    (user_dir / "a.toml").write_text('extends = "strict"\n[process]\nno_new_privileges = true\n')
    (user_dir / "b.toml").write_text('extends = "a"\n[network]\nmode = "none"\n')
    b = load("b")
    assert b.chain == ("b", "a", "strict") and b.network == "none"


def test_relative_seccomp_path_is_relative_to_its_file(user_dir: Path) -> None:
    (user_dir / "mine.json").write_text(
        '{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": '
        '[{"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"}]}')
    (user_dir / "tiny.toml").write_text('extends = "strict"\n[seccomp]\nprofile = "mine.json"\n')
    (user_dir / "tinier.toml").write_text('extends = "tiny"\n')
    assert load("tinier").seccomp_source == str(user_dir / "mine.json")


def test_inline_seccomp(user_dir: Path) -> None:
    (user_dir / "inl.toml").write_text(
        'extends = "default"\n[seccomp.inline]\ndefaultAction = "SCMP_ACT_ERRNO"\n'
        '[[seccomp.inline.syscalls]]\nnames = ["read"]\naction = "SCMP_ACT_ALLOW"\n')
    p = load("inl")
    assert p.seccomp_source == "inline" and p.seccomp is not None
    assert [r.names for r in p.seccomp.rules] == [("read",)]


def test_extends_itself_is_an_error(user_dir: Path) -> None:
    (user_dir / "loop.toml").write_text('extends = "loop"\n')
    with pytest.raises(ProfileError, match="extends itself"):
        load("loop")
    (user_dir / "x.toml").write_text('extends = "y"\n')
    (user_dir / "y.toml").write_text('extends = "x"\n')
    with pytest.raises(ProfileError, match=r"x -> y -> x"):
        load("x")


def test_extends_unknown_profile(user_dir: Path) -> None:
    (user_dir / "orphan.toml").write_text('extends = "nosuch"\n')
    with pytest.raises(NotFound, match="nosuch"):
        load("orphan")


@pytest.mark.parametrize("body,message", [
    ('capabilites = []\n', "unknown key 'capabilites'"),
    ('[process]\ncaps = []\n', "unknown key process.caps"),
    ('[process]\ncapabilities = ["CAP_FLY"]\n', "unknown capability 'CAP_FLY'"),
    ('[process]\nno_new_privileges = "yes"\n', "process.no_new_privileges has the wrong type"),
    ('[process]\nrlimits = { files = 10 }\n', "unknown rlimit process.rlimits.files"),
    ('[selinux]\nenforce = "maybe"\n', "selinux.enforce must be one of"),
    ('[network]\nmode = "bridge"\n', "network.mode must be one of"),
    ('[namespaces]\ncreate = ["pid"]\n', 'must include "mount"'),
    ('[namespaces]\ncreate = ["mount", "net"]\n', "unknown namespace 'net'"),
    ('[sysctl]\n"kernel.panic" = "1"\n', "is not namespaced"),
    ('[filesystem]\nmasked_paths = ["proc/kcore"]\n', "not an absolute path"),
    ('[filesystem.tmpfs."/tmp"]\nsize = "lots"\n', "is not a size"),
    ('[filesystem.tmpfs."/tmp"]\nowner = "me"\n', "unknown key filesystem.tmpfs"),
    ('[seccomp]\nprofile = "missing.json"\n', "cannot read seccomp profile"),
    ('[limits]\ncpu_shares = 1\n', "cpu_shares must be between"),
    ('this is = not toml\n', "not valid TOML"),
])
def test_bad_profiles_name_file_and_key(user_dir: Path, body: str, message: str) -> None:
    f = user_dir / "bad.toml"
    f.write_text('extends = "strict"\n' + body if "toml" not in message else body)
    with pytest.raises(ProfileError, match=message) as e:
        load("bad")
    assert str(f) in e.value.message or "capability" in e.value.message


def test_user_profile_may_not_shadow_a_builtin(user_dir: Path) -> None:
    (user_dir / "strict.toml").write_text('[process]\ncapabilities = ["SYS_ADMIN"]\n')
    with pytest.raises(ProfileError, match="reuses the name of the builtin profile 'strict'"):
        load("strict")


def test_bad_profile_name() -> None:
    with pytest.raises(ProfileError, match="not a valid profile name"):
        load("../../etc/passwd")


def test_available_lists_builtins_and_user_profiles(user_dir: Path) -> None:
    (user_dir / "mine.toml").write_text('extends = "strict"\n')
    listed = [(n, k) for n, k, _ in pm.available()]
    assert ("strict", "builtin") in listed and ("default", "builtin") in listed
    assert ("mine", "user") in listed


def test_load_file_outside_the_search_path(tmp_path: Path) -> None:
    f = tmp_path / "candidate.toml"
    f.write_text('extends = "default"\n[filesystem]\nread_only_root = true\n')
    p = load_file(f)
    assert p.name == "candidate" and p.read_only_root and p.chain == ("candidate", "default")


def test_diff_lists_changed_settings() -> None:
    rows = {s: (a, b) for s, a, b in compare.diff(load("strict"), load("default"))}
    assert rows["read_only_root"] == (True, False)
    assert rows["trust.require_signed"] == (True, False)
    assert "masked_paths" not in rows


def test_strict_is_at_least_as_strict_as_default() -> None:
    assert compare.weaker(load("strict"), load("default")) == []
    reasons = compare.weaker(load("default"), load("strict"))
    assert any(r.startswith("capabilities: adds CAP_CHOWN") for r in reasons)
    assert "root filesystem: writable" in reasons
    assert "trust: unsigned images accepted" in reasons
