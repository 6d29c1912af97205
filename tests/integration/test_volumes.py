"""Named volumes and bounded tmpfs mounts, against real crun (docs/volumes.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import User
from tests.integration.conftest import audit_records, write_policy

pytestmark = [pytest.mark.crun, pytest.mark.userns]


def _actions(user: User, prefix: str) -> list[tuple[str, str, str]]:
    return [(str(a["action"]), str(a["outcome"]),
             str((a.get("details") or {}).get("volume", "")))  # type: ignore[union-attr]
            for a in audit_records(user) if str(a["action"]).startswith(prefix)]


def test_a_volume_outlives_its_container_and_keeps_subordinate_files(
        user: User, busybox: str) -> None:
    assert user.run("volume", "create", "--label", "team=qa", "data", check=True
                    ).stdout == "data\n"
    # Written as root and as uid 1000 (a subordinate id on the host), then the
    # container is removed.
    r = user.run("run", "--rm", "-v", "data:/data", busybox, "sh", "-c",
                 "echo kept > /data/f && mkdir /data/sub && echo x > /data/sub/g && "
                 "chown -R 1000:1000 /data/sub && chmod 700 /data/sub && stat -c %u /data")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "0\n"            # the volume belongs to container root
    r = user.run("run", "--rm", "--mount", "type=volume,src=data,dst=/in,readonly",
                 busybox, "sh", "-c", "cat /in/f; touch /in/new")
    assert r.stdout == "kept\n" and "Read-only file system" in r.stderr
    info = json.loads(user.run("volume", "inspect", "data", check=True).stdout)[0]
    assert info["Name"] == "data" and info["Driver"] == "local"
    assert info["Labels"] == {"team": "qa"} and info["UsedBy"] == []
    mountpoint = Path(info["Mountpoint"])
    assert mountpoint == user.home / "data" / "secpod" / "volumes" / "data" / "_data"
    assert (mountpoint / "f").read_text() == "kept\n"
    rows = [json.loads(line) for line in user.run("volume", "ls", "--format", "json",
                                                  check=True).stdout.splitlines()]
    assert [(r["Name"], r["Driver"], r["Labels"]) for r in rows] == [
        ("data", "local", "team=qa")]
    r = user.run("volume", "rm", "data")
    assert r.returncode == 0, r.stderr
    assert not mountpoint.parent.exists()
    assert ("volume.rm", "ok", "data") in _actions(user, "volume.")


def test_a_volume_in_use_is_not_removed(user: User, busybox: str) -> None:
    cid = user.run("create", "--name", "holder", "-v", "used:/d", busybox, "true",
                   check=True).stdout.strip()
    user.run("volume", "create", "free", check=True)
    df = [json.loads(line) for line in user.run("system", "df", "--format", "json",
                                                check=True).stdout.splitlines()]
    row = next(d for d in df if d["Type"] == "Local Volumes")
    assert (row["TotalCount"], row["Active"]) == (2, 1)
    for args in (("rm", "used"), ("rm", "-f", "used")):
        r = user.run("volume", *args)
        assert r.returncode == 1
        assert "volume used is in use by container holder" in r.stderr
        assert "hint: remove it first (secpod rm holder)" in r.stderr
    r = user.run("volume", "prune", "-f")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "free"
    assert user.run("volume", "ls", "-q").stdout == "used\n"
    mounts = json.loads(user.run("inspect", cid, check=True).stdout)[0]["Mounts"]
    vol = next(m for m in mounts if m["Destination"] == "/d")
    assert (vol["Type"], vol["Name"], vol["Driver"], vol["RW"]) == ("volume", "used",
                                                                     "local", True)
    assert json.loads(user.run("volume", "inspect", "used").stdout)[0]["UsedBy"] == ["holder"]
    assert ("volume.rm", "refused", "used") in _actions(user, "volume.")
    user.run("rm", cid, check=True)
    assert user.run("volume", "rm", "used").returncode == 0
    r = user.run("volume", "rm", "used")
    assert r.returncode == 1 and "No such volume: used" in r.stderr and "hint:" in r.stderr
    assert user.run("volume", "rm", "-f", "used").returncode == 0


def test_a_new_volume_gets_the_images_files_unless_nocopy(user: User, busybox: str) -> None:
    r = user.run("run", "--rm", "-v", "etc:/etc", busybox, "cat", "/etc/passwd")
    assert r.returncode == 0 and "root:" in r.stdout, r.stderr
    r = user.run("run", "--rm", "--mount", "type=volume,src=empty,dst=/etc,volume-nocopy",
                 busybox, "ls", "-A", "/etc")
    assert r.returncode == 0, r.stderr
    assert set(r.stdout.split()) <= {"hosts", "hostname", "resolv.conf"}  # secpod's own
    for name in ("etc", "empty"):
        user.run("volume", "rm", name, check=True)


def test_a_tmpfs_is_bounded(user: User, busybox: str) -> None:
    r = user.run("run", "--rm", "--mount", "type=tmpfs,dst=/cache,tmpfs-size=1m", busybox,
                 "sh", "-c", "df -k /cache | tail -n 1; "
                 "dd if=/dev/zero of=/cache/big bs=1k count=2048 2>&1; echo dd=$?")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].split()[1] == "1024"
    assert "No space left on device" in r.stdout and "dd=1" in r.stdout
    # Without a size: the profile's default (64m).
    r = user.run("run", "--rm", "--tmpfs", "/run2", busybox, "sh", "-c",
                 "df -k /run2 | tail -n 1")
    assert r.stdout.split()[1] == str(64 * 1024), r.stdout


def test_the_floor_bounds_tmpfs_and_volumes(user: User, busybox: str, admin: Path) -> None:
    write_policy('[mounts]\nvolumes = "ro"\ntmpfs_size_max = "8m"\n')
    r = user.run("run", "--rm", "--tmpfs", "/t:size=16m", busybox, "true")
    assert r.returncode == 125
    assert "mounts.tmpfs_size_max" in r.stderr and "above the maximum of 8388608" in r.stderr
    r = user.run("run", "--rm", "--tmpfs", "/t", busybox, "true")    # the default is 64m
    assert r.returncode == 125 and "the default size of profile default" in r.stderr
    r = user.run("run", "--rm", "--profile", "strict", busybox, "true")  # its /tmp: 64m
    assert r.returncode == 125 and "profile strict mounts a tmpfs" in r.stderr
    r = user.run("run", "--rm", "-v", "v:/v", busybox, "true")
    assert r.returncode == 125 and "only read-only named volumes are allowed" in r.stderr
    assert user.run("volume", "ls", "-q").stdout == ""               # nothing made
    r = user.run("run", "--rm", "--tmpfs", "/t:size=4m", "-v", "v:/v:ro", busybox, "true")
    assert r.returncode == 0, r.stderr
    user.run("volume", "rm", "v", check=True)
    refused = [a for a in audit_records(user) if a["action"] == "container.run.refused"]
    assert len(refused) == 4


def test_bad_volume_input(user: User, busybox: str) -> None:
    for name, why in (("a/b", "is not a volume name"), ("..", "is not a volume name"),
                      ("", "is empty"), ("x" * 129, "is longer than 128")):
        r = user.run("volume", "create", name)
        assert r.returncode == 2 and why in r.stderr, r.stderr
    assert ("volume.create", "refused", "a/b") in _actions(user, "volume.")
    r = user.run("run", "--rm", "--mount", "type=volume,src=v,dst=/v,colour=red", busybox,
                 "true")
    assert r.returncode == 125 and "unknown option 'colour'" in r.stderr
    r = user.run("run", "--rm", "-v", "v:/bin/../etc/x", busybox, "true")
    assert r.returncode == 125 and "must be an absolute path below /" in r.stderr
    assert user.run("volume", "ls", "-q").stdout == ""
    refused = [a for a in audit_records(user) if a["action"] == "container.run.refused"]
    assert len(refused) == 2


def test_a_destination_through_an_image_symlink_is_refused(user: User) -> None:
    import shutil
    import subprocess

    root = user.home / "rootfs-link"
    (root / "bin").mkdir(parents=True)
    (root / "real").mkdir()
    shutil.copy("/bin/busybox", root / "bin" / "busybox")
    (root / "bin" / "sh").symlink_to("busybox")
    (root / "link").symlink_to("/real")
    subprocess.run(["chown", "-hR", f"{user.uid}:{user.gid}", str(root)], check=True)
    user.run("image", "import", "--rootfs", str(root), "--name", "linked:1", check=True)
    r = user.run("run", "--rm", "-v", "v:/link/data", "linked:1", "/bin/sh", "-c", "true")
    assert r.returncode == 125
    assert "the mount destination /link/data is a symbolic link in the image (to " \
           "/real/data)" in r.stderr and "hint: mount at /real/data instead" in r.stderr
    assert user.run("volume", "ls", "-q").stdout == ""     # nothing half-made
    assert user.run("ps", "-a", "-q").stdout == ""
    refused = [a for a in audit_records(user) if a["action"] == "container.run.refused"]
    assert "volume: the mount destination /link/data" in str(refused[-1]["reason"])
    r = user.run("run", "--rm", "-v", "v:/real/data", "linked:1", "/bin/sh", "-c",
                 "echo ok > /real/data/f")
    assert r.returncode == 0, r.stderr
    user.run("volume", "rm", "v", check=True)
