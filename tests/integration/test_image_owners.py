"""Issue 13: files keep their owners (33:33, 1000:1000) through import, run, verify and rm;
ids beyond the mapping and a --rootfs that is not a tar are refused, nothing kept."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path

import pytest

from tests.conftest import User
from tests.integration.conftest import PASSWORD, audit_records

SUBUID_START = 100000  # secpodtest's range in /etc/subuid (scripts/test-env.sh)


def _add(t: tarfile.TarFile, name: str, *, uid: int = 0, gid: int = 0, mode: int = 0o755,
         data: bytes | None = None, xattrs: dict[str, str] | None = None) -> None:
    ti = tarfile.TarInfo(name)
    ti.uid, ti.gid, ti.mode = uid, gid, mode
    if data is None:
        ti.type = tarfile.DIRTYPE
    else:
        ti.size = len(data)
    if xattrs:
        ti.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in xattrs.items()}
    t.addfile(ti, io.BytesIO(data) if data is not None else None)


def owners_tar(extra: list[tuple[str, int, int]] = ()) -> bytes:  # type: ignore[assignment]
    """busybox, /var/www (33:33) with an index, /home/app (1000:1000, 0700) with a file."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        _add(t, "bin")
        _add(t, "bin/busybox", data=Path("/bin/busybox").read_bytes())
        t.addfile(_link("bin/sh"))
        _add(t, "etc")
        _add(t, "etc/passwd", mode=0o644,
             data=b"root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n")
        _add(t, "var")
        _add(t, "var/www", uid=33, gid=33, mode=0o750)
        _add(t, "var/www/index.html", uid=33, gid=33, mode=0o640, data=b"hi\n",
             xattrs={"user.note": "kept", "trusted.overlay.opaque": "y"})
        _add(t, "home")
        _add(t, "home/app", uid=1000, gid=1000, mode=0o700)
        _add(t, "home/app/notes", uid=1000, gid=1000, mode=0o600, data=b"x\n")
        for name, uid, gid in extra:
            _add(t, name, uid=uid, gid=gid, mode=0o644, data=b"")
    return buf.getvalue()


def _link(name: str) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname = tarfile.SYMTYPE, "busybox"
    return ti


def _store(user: User) -> Path:
    return user.home / "data" / "secpod" / "images"


def _import(user: User, data: bytes, name: str, file: str = "owners.tar",
            *extra: str) -> None:
    user.file(file, data)
    proc = user.run("image", "import", "--rootfs", str(user.home / file), "--name", name,
                    *extra)
    assert proc.returncode == 0, proc.stderr


def test_files_keep_their_owners(user: User) -> None:
    _import(user, gzip.compress(owners_tar()), "owners:1", "owners.tar.gz")
    (unpacked,) = [p for p in (_store(user) / "unpacked").iterdir() if p.is_dir()]
    root = unpacked / "rootfs"
    # On the host: the 33rd and 1000th subordinate ids; busybox is the user's (root).
    st = os.lstat(root / "var" / "www")
    assert (st.st_uid, st.st_gid) == (SUBUID_START + 32, SUBUID_START + 32)
    st = os.lstat(root / "home" / "app")
    assert (st.st_uid, st.st_gid) == (SUBUID_START + 999, SUBUID_START + 999)
    assert os.lstat(root / "bin" / "busybox").st_uid == user.uid
    assert os.getxattr(root / "var" / "www" / "index.html", "user.note") == b"kept"
    with pytest.raises(OSError):
        os.getxattr(root / "var" / "www" / "index.html", "trusted.overlay.opaque")
    inspect = user.run("image", "inspect", "owners:1", check=True).stdout
    assert '"owners_kept": true' in inspect
    assert '"trusted.*": 1' in inspect

    stat = ["/bin/busybox", "stat", "-c", "%u:%g %n", "/var/www", "/var/www/index.html",
            "/home/app", "/home/app/notes"]
    want = ("33:33 /var/www\n33:33 /var/www/index.html\n1000:1000 /home/app\n"
            "1000:1000 /home/app/notes\n")
    # strict runs signed images only, checking the tree first (with folders the host cannot
    # read): sign it as a release pipeline would.
    user.env = dict(user.env, COSIGN_PASSWORD=PASSWORD)
    user.run("key", "generate", "--output-key-prefix", str(user.home / "release"), check=True)
    user.run("sign", "owners:1", "--key", str(user.home / "release.key"), check=True)
    user.run("trust", "set", "--type", "sigstoreSigned", "--pubkeysfile",
             str(user.home / "release.pub"), "docker.io/library/owners", check=True)
    # strict drops CAP_DAC_OVERRIDE: its root cannot look inside 33's 0750 folder either.
    proc = user.run("run", "--rm", "--profile", "strict", "owners:1", *stat[:5], "/home/app")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "33:33 /var/www\n1000:1000 /home/app\n"
    proc = user.run("run", "--rm", "owners:1", *stat)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == want
    # USER app writes its own 0700 home (the default profile's writable root) and a
    # bind mount under it is made through the namespace.
    proc = user.run("run", "--rm", "--user", "app", "owners:1", "/bin/sh", "-c",
                    "echo new > /home/app/new && /bin/busybox stat -c '%u:%g' /home/app/new")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "1000:1000\n"
    data = user.home / "data-dir"
    data.mkdir()
    os.chown(data, user.uid, user.gid)
    proc = user.run("run", "--rm", "-v", f"{data}:/home/app/data", "owners:1",
                    "/bin/busybox", "ls", "-d", "/home/app/data")
    assert proc.returncode == 0, proc.stderr

    assert user.run("image", "verify", "--deep", "owners:1").returncode == 0
    proc = user.run("image", "rm", "owners:1")
    assert proc.returncode == 0, proc.stderr
    assert list((_store(user) / "unpacked").iterdir()) == []
    assert list((_store(user) / "tmp").iterdir()) == []


def test_ids_beyond_the_mapping_are_refused(user: User) -> None:
    user.file("big.tar", owners_tar([("etc/far", 100000, 0)]))
    proc = user.run("image", "import", "--rootfs", str(user.home / "big.tar"), "--name", "x:1")
    assert proc.returncode == 1
    assert "etc/far" in proc.stderr and "owned by 100000:0" in proc.stderr
    assert "potentially insufficient UIDs or GIDs" in proc.stderr
    assert list((_store(user) / "unpacked").iterdir()) == []
    assert list((_store(user) / "tmp").iterdir()) == []
    assert user.run("image", "ls", "-q").stdout == ""
    assert audit_records(user)[-1]["action"] == "image.import"
    assert audit_records(user)[-1]["outcome"] == "error"


@pytest.mark.parametrize("content", [b"not a tar at all\n" * 64, b"\x28\xb5\x2f\xfdjunk" * 80])
def test_rootfs_that_is_not_a_tar(user: User, content: bytes) -> None:
    user.file("bad.tar", content)
    proc = user.run("image", "import", "--rootfs", str(user.home / "bad.tar"))
    assert proc.returncode == 1
    assert "bad.tar" in proc.stderr
    assert proc.stderr.count("secpod: error") == 1
    assert list((_store(user) / "tmp").iterdir()) == []
    assert user.run("image", "ls", "-q").stdout == ""
