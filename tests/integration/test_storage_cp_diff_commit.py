"""`secpod cp`, `secpod diff` and `secpod commit` against real crun, as the unprivileged
user (docs/storage-cp-diff-commit.md): copies through the container's own root, never out of it, never
into the image; diff and commit from the container's upper folder."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import User
from tests.integration.conftest import audit_records
from tests.integration.registry_server import Registry

pytestmark = [pytest.mark.crun, pytest.mark.userns]


def _cp_records(user: User) -> list[tuple[str, str]]:
    return [(str(a["outcome"]), str(a.get("reason") or ""))
            for a in audit_records(user) if a["action"] == "container.cp"]


def _upper(user: User, cid: str) -> Path:
    return user.home / "data" / "secpod" / "containers" / cid / "upper"


def _exec(user: User, name: str, script: str) -> str:
    r = user.run("exec", name, "sh", "-c", script)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.fixture
def web(user: User, busybox: str) -> Iterator[str]:
    """A running container with a writable root (the default profile); its id."""
    cid = user.run("run", "-d", "--name", "web", "--profile", "default", busybox,
                   "sleep", "600", check=True).stdout.strip()
    yield cid
    user.run("rm", "-f", "web")


def test_cp_out_of_and_into_a_running_container(user: User, busybox: str, web: str) -> None:
    r = user.run("cp", "web:/etc/passwd", "out-passwd")
    assert r.returncode == 0, r.stderr
    assert "app:x:1000" in (user.home / "out-passwd").read_text()
    script = user.file("site/bin/hello.sh", "#!/bin/sh\necho hello\n", mode=0o750)
    user.file("site/index.html", "<h1>hi</h1>\n", mode=0o640)
    os.symlink("index.html", user.home / "site" / "home.html")
    os.lchown(user.home / "site" / "home.html", user.uid, user.gid)
    for p in (user.home / "site", user.home / "site" / "bin"):
        os.chown(p, user.uid, user.gid)
    assert script.exists()
    r = user.run("cp", "./site", "web:/srv")
    assert r.returncode == 0, r.stderr
    seen = _exec(user, "web", "stat -c '%n %a %u' /srv /srv/bin/hello.sh /srv/index.html; "
                 "readlink /srv/home.html; /srv/bin/hello.sh")
    assert "/srv/bin/hello.sh 750 0" in seen and "/srv/index.html 640 0" in seen
    assert "index.html\nhello" in seen
    # into an existing folder: under its own name; the image is untouched
    user.file("one.txt", "one\n")
    user.run("cp", "one.txt", "web:/etc", check=True)
    assert _exec(user, "web", "cat /etc/one.txt") == "one\n"
    assert (_upper(user, web) / "etc" / "one.txt").read_text() == "one\n"
    assert (_upper(user, web) / "srv" / "index.html").exists()
    assert user.run("image", "verify", "--deep", busybox).returncode == 0
    assert [o for o, _ in _cp_records(user)] == ["ok", "ok", "ok"]


def test_cp_into_and_out_of_a_stopped_container(user: User, busybox: str) -> None:
    cid = user.run("create", "--name", "later", "--profile", "default", busybox,
                   "sh", "-c", "cat /etc/motd 2>/dev/null; echo ran > /etc/ran",
                   check=True).stdout.strip()
    user.file("motd", "copied while stopped\n", mode=0o600)
    # created, not started: read from the image's tree, not written
    r = user.run("cp", "later:/etc/group", "group")
    assert r.returncode == 0 and "app:x:1000" in (user.home / "group").read_text(), r.stderr
    r = user.run("cp", "motd", "later:/etc/motd")
    assert r.returncode == 1 and "created and not started" in r.stderr
    user.run("start", "later", check=True)
    assert user.run("wait", "later", check=True).stdout.strip() == "0"
    # exited: its overlay is mounted again, privately, for the copy
    r = user.run("cp", "motd", "later:/etc/motd")
    assert r.returncode == 0, r.stderr
    assert (_upper(user, cid) / "etc" / "motd").read_text() == "copied while stopped\n"
    r = user.run("cp", "later:/etc/ran", "ran")
    assert r.returncode == 0 and (user.home / "ran").read_text() == "ran\n", r.stderr
    user.run("start", "later", check=True)
    assert user.run("wait", "later", check=True).stdout.strip() == "0"
    assert "copied while stopped\n" in user.run("logs", "later", check=True).stdout
    r = user.run("cp", "later:/etc/motd", "back")
    assert r.returncode == 0, r.stderr
    assert (user.home / "back").read_text() == "copied while stopped\n"
    assert stat.S_IMODE((user.home / "back").stat().st_mode) == 0o600
    assert user.run("image", "verify", "--deep", busybox).returncode == 0
    assert _mounts_naming(_upper(user, cid)) == []
    assert [o for o, _ in _cp_records(user)] == ["ok", "refused", "ok", "ok", "ok"]


def _mounts_naming(path: Path) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            text = Path(f"/proc/{pid}/mountinfo").read_text()
        except OSError:
            continue
        found += [line for line in text.splitlines() if str(path) in line]
    return found


def test_cp_never_leaves_the_container_root(user: User, busybox: str, web: str) -> None:
    _exec(user, "web", "ln -s /etc/passwd /tmp/pw; ln -s ../../../../../../etc/passwd /tmp/rel;"
          " ln -s / /tmp/top; ln -s /proc/self/root/etc /tmp/procroot; mkdir /tmp/d")
    host_passwd = Path("/etc/passwd").read_text()
    # a link is copied as a link; followed (-L), it is the container's file, not the host's
    user.run("cp", "web:/tmp/pw", "pw", check=True)
    assert os.readlink(user.home / "pw") == "/etc/passwd"
    for src in ("web:/tmp/pw", "web:/tmp/rel", "web:/tmp/top/etc/passwd",
                "web:/../../../../etc/passwd"):
        dest = user.home / "got"
        dest.unlink(missing_ok=True)
        r = user.run("cp", "-L", src, "got")
        assert r.returncode == 0, (src, r.stderr)
        text = dest.read_text()
        assert "app:x:1000" in text and text != host_passwd, src
    # the container's /proc/self means nothing from outside its pid namespace: not found
    r = user.run("cp", "-L", "web:/tmp/procroot/passwd", "proc")
    assert r.returncode == 1 and "No such file" in r.stderr, r.stderr
    assert not (user.home / "proc").exists()
    # writes through links and `..` land inside the container
    user.file("evil", "evil\n")
    for dst in ("web:/tmp/top/etc/evil1", "web:/../../../../../etc/evil2",
                "web:/tmp/d/../../etc/evil3"):
        r = user.run("cp", "evil", dst)
        assert r.returncode == 0, (dst, r.stderr)
    assert user.run("cp", "evil", "web:/tmp/procroot/evil4").returncode == 1
    seen = _exec(user, "web", "ls /etc/evil1 /etc/evil2 /etc/evil3")
    assert "/etc/evil1" in seen and "/etc/evil2" in seen and "/etc/evil3" in seen
    assert not any(Path(f"/etc/evil{i}").exists() for i in range(1, 5))
    assert Path("/etc/passwd").read_text() == host_passwd


def test_cp_refuses_devices_and_setuid_files(user: User, busybox: str, web: str) -> None:
    r = user.run("cp", "web:/dev/null", "null")
    assert r.returncode == 1 and "is a device" in r.stderr
    assert not (user.home / "null").exists()
    _exec(user, "web", "mkdir -p /tmp/tree/sub && echo a > /tmp/tree/a && cp /bin/busybox "
          "/tmp/tree/sub/su && chmod 4755 /tmp/tree/sub/su")
    r = user.run("cp", "web:/tmp/tree", "tree")
    assert r.returncode == 1 and "setuid" in r.stderr, r.stderr
    assert not (user.home / "tree").exists()          # nothing half-copied
    assert not [p for p in os.listdir(user.home) if p.startswith(".secpod-cp")]
    suid = user.file("suid", "#!/bin/sh\n", mode=0o755)
    os.chmod(suid, 0o4755)  # noqa: S103 - the setuid file cp must refuse
    r = user.run("cp", "suid", "web:/tmp/suid")
    assert r.returncode == 1 and "setuid" in r.stderr
    assert "no" in _exec(user, "web", "ls /tmp/suid 2>/dev/null || echo no")
    r = user.run("cp", "-a", "web:/etc/group", "group")
    assert r.returncode == 1 and "cp -a" in r.stderr and not (user.home / "group").exists()
    outcomes = [o for o, _ in _cp_records(user)]
    assert outcomes == ["refused", "refused", "refused", "refused"]


def test_cp_into_a_read_only_root_is_refused(user: User, busybox: str) -> None:
    user.run("run", "-d", "--name", "ro", "--read-only", busybox,
             "sleep", "600", check=True)
    user.file("f", "x\n")
    r = user.run("cp", "f", "ro:/tmp/f")
    assert r.returncode == 1 and "read-only root" in r.stderr
    assert _cp_records(user) == [("refused", r.stderr.splitlines()[0].split("error: ", 1)[1])]
    r = user.run("cp", "ro:/etc/group", "group")
    assert r.returncode == 0, r.stderr
    assert "app:x:1000" in (user.home / "group").read_text()
    assert user.run("diff", "ro", check=True).stdout == ""
    user.run("rm", "-f", "ro")


def test_cp_out_to_a_full_disk_leaves_no_file(user: User, busybox: str, web: str) -> None:
    small = user.home / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size=256k,uid={user.uid},gid={user.gid}",
                    "tmpfs", str(small)], check=True)
    try:
        _exec(user, "web", "dd if=/dev/zero of=/tmp/big bs=1024 count=1024 2>/dev/null")
        r = user.run("cp", "web:/tmp/big", "small/big")
        assert r.returncode == 1 and "No space left on device" in r.stderr, r.stderr
        assert os.listdir(small) == []
        assert _cp_records(user)[-1][0] == "error"
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_diff_lists_added_changed_and_deleted(user: User, busybox: str, web: str) -> None:
    _exec(user, "web", "echo new > /etc/newfile && echo more >> /etc/passwd && rm /bin/ls && "
          "mkdir -p /var/made/deep && rm -r /home && touch \"/tmp/$(printf 'x\\033[2Jy')\"")
    out = user.run("diff", "web", check=True).stdout.splitlines()
    for line in ("A /etc/newfile", "C /etc/passwd", "C /etc", "D /bin/ls", "A /var/made",
                 "A /var/made/deep", "D /home", "C /var", "C /bin"):
        assert line in out, (line, out)
    assert out == sorted(out, key=lambda s: s[2:])
    assert "A /tmp/x\\x1b[2Jy" in out          # a hostile name is shown escaped
    # nothing the runtime made for its mounts (/etc/hostname, /proc, ...)
    assert not any(p.endswith(("/hostname", "/resolv.conf", "/hosts")) for p in out), out
    data = json.loads(user.run("diff", "--format", "json", "web", check=True).stdout)
    assert "/etc/newfile" in data["added"] and "/bin/ls" in data["deleted"]
    assert "/etc/passwd" in data["changed"]
    r = user.run("container", "diff", "web", check=True)
    assert r.stdout.splitlines() == out
    # what this kernel writes for a deletion in a user namespace's overlay: a 0/0 device
    # (docs/storage-cp-diff-commit.md); the xattr form is read too (tests/unit/test_storage_units.py)
    st = (_upper(user, web) / "bin" / "ls").lstat()
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


@pytest.mark.parametrize("direction", ["in", "out"])
def test_cp_with_each_runtime(user: User, busybox: str, engine: str, direction: str) -> None:
    user.run("run", "-d", "--name", "rt", busybox, "sleep", "600", check=True)
    if direction == "in":
        user.file("x", f"{engine}\n", mode=0o604)
        user.run("cp", "x", "rt:/x", check=True)
        assert _exec(user, "rt", "cat /x; stat -c %a /x") == f"{engine}\n604\n"
    else:
        _exec(user, "rt", f"echo {engine} > /x && chmod 611 /x")
        user.run("cp", "rt:/x", "x", check=True)
        assert (user.home / "x").read_text() == f"{engine}\n"
        assert stat.S_IMODE((user.home / "x").stat().st_mode) == 0o611
    user.run("rm", "-f", "rt", check=True)


def test_commit_makes_an_image_that_runs_signs_and_pushes(
        user: User, user2: User, busybox: str, web: str, registry: Registry) -> None:
    _exec(user, "web", "echo committed > /etc/newfile && rm /bin/ls && rm -r /home && "
          "mkdir /home && echo fresh > /home/only")
    r = user.run("commit", "-m", "add newfile", "--author", "QA <qa@example.com>",
                 "-c", 'CMD ["cat", "/etc/newfile"]', "web", "mine:1")
    assert r.returncode == 0, r.stderr
    digest = r.stdout.strip()
    assert digest.startswith("sha256:")
    info = json.loads(user.run("image", "inspect", "mine:1", check=True).stdout)[0]
    base = json.loads(user.run("image", "inspect", busybox, check=True).stdout)[0]
    assert len(info["RootFS"]["Layers"]) == len(base["RootFS"]["Layers"]) + 1
    assert info["RootFS"]["Layers"][:-1] == base["RootFS"]["Layers"]
    assert info["History"][-1]["comment"] == "add newfile"
    assert info["Author"] == "QA <qa@example.com>" or info["History"][-1]["author"]
    assert info["Config"]["Cmd"] == ["cat", "/etc/newfile"]
    # it runs with the changes: the file, the deletion, the opaque folder
    r = user.run("run", "--rm", "mine:1")
    assert r.returncode == 0 and r.stdout == "committed\n", r.stderr
    r = user.run("run", "--rm", "mine:1", "sh", "-c", "ls /bin/ls 2>&1; ls /home")
    assert "No such file" in r.stdout and r.stdout.strip().endswith("only"), r.stdout
    assert user.run("image", "verify", "--deep", "mine:1").returncode == 0
    assert user.run("image", "verify", "--deep", busybox).returncode == 0
    # signed, pushed, pulled by another user and run there
    user.env["COSIGN_PASSWORD"] = "commit test passphrase"
    user.run("key", "generate", "--output-key-prefix", "release", check=True)
    r = user.run("sign", "mine:1", "--key", "release.key")
    assert r.returncode == 0, r.stderr
    ref = f"{registry.host}/committed/mine:1"
    r = user.run("push", "mine:1", ref, "--tls-verify=false")
    assert r.returncode == 0, r.stderr
    r = user2.run("pull", ref, "--tls-verify=false")
    assert r.returncode == 0, r.stderr
    r = user2.run("run", "--rm", ref)
    assert r.returncode == 0 and r.stdout == "committed\n", r.stderr
    recs = [a for a in audit_records(user) if a["action"] == "container.commit"]
    assert [(a["outcome"], a["details"]["image"]) for a in recs] == [  # type: ignore[index]
        ("ok", digest)]


def test_a_failed_commit_leaves_no_image(user: User, busybox: str, web: str) -> None:
    _exec(user, "web", "dd if=/dev/urandom of=/big bs=1024 count=2048 2>/dev/null")
    images = user.home / "data" / "secpod" / "images"
    before = json.loads((images / "index.json").read_text())
    tmp = images / "tmp"
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size=512k,uid={user.uid},gid={user.gid},"
                    "mode=0700", "tmpfs", str(tmp)], check=True)
    try:
        r = user.run("commit", "web", "full:1")
        assert r.returncode == 1 and "No space left on device" in r.stderr, r.stderr
        assert os.listdir(tmp) == []
    finally:
        subprocess.run(["umount", str(tmp)], check=True)
    assert json.loads((images / "index.json").read_text()) == before
    assert "full" not in user.run("image", "ls", check=True).stdout
    recs = [a for a in audit_records(user) if a["action"] == "container.commit"]
    assert [a["outcome"] for a in recs] == ["error"]


def test_commit_pause_without_a_freezer_is_refused(user: User, busybox: str,
                                                  web: str) -> None:
    r = user.run("commit", "--pause", "web", "paused:1")
    assert r.returncode == 1 and "cannot pause" in r.stderr, r.stderr
    assert "paused" not in user.run("image", "ls", check=True).stdout
    assert [a["outcome"] for a in audit_records(user) if a["action"] == "container.pause"
            ] == ["refused"]
    r = user.run("commit", "--pause=false", "web", "unpaused:1")
    assert r.returncode == 0, r.stderr


def test_commit_of_a_read_only_root_is_refused(user: User, busybox: str) -> None:
    user.run("create", "--name", "ro", "--read-only", busybox, "true", check=True)
    r = user.run("commit", "ro", "nothing:1")
    assert r.returncode == 1 and "read-only root" in r.stderr
    recs = [a for a in audit_records(user) if a["action"] == "container.commit"]
    assert [a["outcome"] for a in recs] == ["refused"]


def test_cp_reaches_files_of_other_container_uids_and_volumes(user: User, busybox: str) -> None:
    user.run("run", "-d", "--name", "app", "--user", "1000:1000", "-v", "data:/data",
             busybox, "sleep", "600", check=True)
    _exec(user, "app", "echo secret > /tmp/secret && chmod 600 /tmp/secret")
    r = user.run("cp", "app:/tmp/secret", "secret")
    assert r.returncode == 0, r.stderr
    assert (user.home / "secret").read_text() == "secret\n"
    assert (user.home / "secret").stat().st_uid == user.uid
    # into the running container's volume: the volume's folder has it
    user.file("v.txt", "in the volume\n")
    user.run("cp", "v.txt", "app:/data/v.txt", check=True)
    vol = user.home / "data" / "secpod" / "volumes" / "data" / "_data"
    assert (vol / "v.txt").read_text() == "in the volume\n"
    # a stopped container has no volume mounted: a path under it is refused
    user.run("stop", "-t", "0", "app", check=True)
    r = user.run("cp", "v.txt", "app:/data/w.txt")
    assert r.returncode == 1 and "a mount of container app" in r.stderr
    assert not (vol / "w.txt").exists()
    assert _cp_records(user)[-1][0] == "refused"
    # ... and what the container wrote as uid 1000 is still read out once it stopped
    r = user.run("cp", "app:/tmp/secret", "again")
    assert r.returncode == 0 and (user.home / "again").read_text() == "secret\n", r.stderr
    user.run("rm", "-f", "app")


def test_commit_of_a_stopped_container_without_a_name(user: User, busybox: str) -> None:
    user.run("run", "--name", "done", "--profile", "default", busybox, "sh", "-c",
             "echo x > /made", check=True)
    r = user.run("commit", "-q", "done")
    assert r.returncode == 0, r.stderr
    digest = r.stdout.strip()
    r = user.run("run", "--rm", digest, "cat", "/made")
    assert r.returncode == 0 and r.stdout == "x\n", r.stderr
    assert user.run("diff", "done", check=True).stdout.splitlines() == ["A /made"]


def test_a_changed_bundle_is_refused_and_recorded_once(user: User, busybox: str,
                                                       web: str) -> None:
    cfg = user.home / "data" / "secpod" / "containers" / web / "bundle" / "config.json"
    original = cfg.read_bytes()
    cfg.write_bytes(original + b" ")
    try:
        for args, action in ((("cp", "web:/etc/passwd", "x"), "container.cp"),
                             (("diff", "web"), "container.diff"),
                             (("commit", "web", "x:1"), "container.commit")):
            r = user.run(*args)
            assert r.returncode == 1 and "bundle" in r.stderr, (args, r.stderr)
            assert [a["outcome"] for a in audit_records(user) if a["action"] == action
                    ] == ["refused"], action
        assert not (user.home / "x").exists()
        assert "x:1" not in user.run("image", "ls", check=True).stdout
    finally:
        cfg.write_bytes(original)
