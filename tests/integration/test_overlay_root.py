"""A writable root is an overlay over the image's tree (docs/adr/0006-overlay-root.md),
against real crun and runc: the image is never written, the container's changes are in
its upper folder only, and nothing stays mounted once the container is gone."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import User

pytestmark = [pytest.mark.crun, pytest.mark.userns]


def _tree(root: Path) -> dict[str, tuple[int, int, str]]:
    """Every path under ``root``: (mode, uid, sha256 of a file's bytes or a link's target)."""
    out: dict[str, tuple[int, int, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            st = p.lstat()
            if stat.S_ISREG(st.st_mode):
                digest = hashlib.sha256(p.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                digest = os.readlink(p)
            else:
                digest = ""
            out[str(p.relative_to(root))] = (st.st_mode, st.st_uid, digest)
    return out


def _inspect(user: User, name: str) -> dict[str, object]:
    return json.loads(user.run("inspect", name, check=True).stdout)[0]  # type: ignore[no-any-return]


def _image_tree(user: User) -> Path:
    (unpacked,) = (user.home / "data" / "secpod" / "images" / "unpacked").iterdir()
    return unpacked / "rootfs"


def _mounts_naming(path: Path) -> list[str]:
    """The mountinfo lines, of every process on the host, that name ``path``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            text = Path(f"/proc/{pid}/mountinfo").read_text()
        except OSError:
            continue
        found += [f"{pid}: {line}" for line in text.splitlines() if str(path) in line]
    return found


@pytest.mark.parametrize("runtime", ["crun", "runc"])
def test_writes_deletes_and_chmods_land_in_upper_and_never_in_the_image(
        user: User, busybox: str, runtime: str) -> None:
    before = _tree(_image_tree(user))
    cid = user.run("run", "-d", "--runtime", runtime, "--name", "w", "--profile", "default",
                   busybox, "sleep", "600", check=True).stdout.strip()
    change = ("echo new > /etc/newfile && echo more >> /etc/passwd && rm /bin/ls && "
              "chmod 0600 /etc/group && mkdir -p /var/made && rm -r /home && echo done")
    r = user.run("exec", "w", "sh", "-c", change)
    assert r.returncode == 0 and r.stdout.strip() == "done", r.stderr
    seen = user.run("exec", "w", "sh", "-c",
                    "cat /etc/newfile; ls /bin/ls 2>&1; stat -c %a /etc/group; ls -d /home",
                    check=False).stdout
    assert "new" in seen and "No such file" in seen and "600" in seen, seen
    # the image's tree is byte for byte, mode for mode, what it was
    assert _tree(_image_tree(user)) == before
    assert user.run("image", "verify", "--deep", busybox).returncode == 0
    # the changes are the upper folder's, and only there
    upper = user.home / "data" / "secpod" / "containers" / cid / "upper"
    assert (upper / "etc" / "newfile").read_text() == "new\n"
    assert (upper / "etc" / "passwd").read_text().endswith("more\n")
    assert stat.S_IMODE((upper / "etc" / "group").stat().st_mode) == 0o600
    ls = (upper / "bin" / "ls").lstat()   # a whiteout: a 0/0 character device
    assert stat.S_ISCHR(ls.st_mode) and ls.st_rdev == 0
    assert (upper / "var" / "made").is_dir()
    # another container of the image sees the image, not the first one's changes
    r = user.run("run", "--rm", "--runtime", runtime, "--profile", "default", busybox, "sh",
                 "-c", "test ! -e /etc/newfile && ls /bin/ls && stat -c %a /etc/group")
    assert r.returncode == 0 and r.stdout.split() == ["/bin/ls", "644"], (r.stdout, r.stderr)
    info = _inspect(user, "w")
    assert info["Secpod"]["root"] == "overlay"  # type: ignore[index]
    assert user.run("rm", "-f", "w").returncode == 0
    assert not upper.exists()


def test_a_container_started_again_keeps_its_writes(user: User, busybox: str) -> None:
    user.run("run", "-d", "--name", "keep", "--profile", "default", busybox, "sh", "-c",
             "echo kept > /root/note; sleep 600", check=True)
    assert user.run("stop", "-t", "0", "keep").returncode == 0
    assert user.run("start", "keep").returncode == 0
    r = user.run("exec", "keep", "cat", "/root/note")
    assert r.stdout == "kept\n", r.stderr
    user.run("rm", "-f", "keep", check=True)


def test_mount_points_the_image_lacks_are_made_in_upper(user: User, busybox: str) -> None:
    share = user.home / "share"
    user.sh(["mkdir", str(share)], check=True)
    user.sh(["sh", "-c", f"echo shared > {share}/f"], check=True)
    r = user.run("run", "--rm", "--profile", "default", "-v", f"{share}:/new/deep/dir:ro",
                 "-w", "/also/new", busybox, "sh", "-c", "cat /new/deep/dir/f; pwd")
    assert r.returncode == 0 and r.stdout == "shared\n/also/new\n", r.stderr
    assert not (_image_tree(user) / "new").exists()
    assert not (_image_tree(user) / "also").exists()


def test_nothing_stays_mounted_after_stop_rm_or_a_killed_secpod(
        user: User, busybox: str) -> None:
    containers = user.home / "data" / "secpod" / "containers"
    cid = user.run("run", "-d", "--name", "m", "--profile", "default", busybox, "sleep", "600",
                   check=True).stdout.strip()
    assert _mounts_naming(containers / cid / "upper")  # mounted while it runs, somewhere
    user.run("stop", "-t", "0", "m", check=True)
    assert _mounts_naming(containers / cid / "upper") == []
    user.run("rm", "m", check=True)
    # a foreground secpod killed with SIGKILL: its container goes on; once the container
    # is killed too, its root is gone with it
    proc = user.popen("run", "--name", "fg", "--profile", "default", busybox, "sleep", "600",
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not any((c / "pid").exists() for c in containers.iterdir() if c.name != "names"):
        assert time.monotonic() < deadline and proc.poll() is None
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert user.run("rm", "-f", "fg").returncode == 0
    deadline = time.monotonic() + 10
    while _mounts_naming(containers):
        assert time.monotonic() < deadline, _mounts_naming(containers)
        time.sleep(0.05)
    assert [c.name for c in containers.iterdir() if c.name != "names"] == []
