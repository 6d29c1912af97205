"""Issue 13, shared layers (docs/adr/0010-shared-layers.md): each layer is unpacked once,
by its diff_id, and every image that has it links its files; removing an image removes
only the layers no other image links; the images stay unwritable through containers and
their content records stay true."""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import signal
import stat
import subprocess
import time
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import User
from tests.integration.conftest import PASSWORD, audit_records

pytestmark = [pytest.mark.crun, pytest.mark.userns]

_spec = importlib.util.spec_from_file_location(
    "make_corpus", Path(__file__).resolve().parents[1] / "assets" / "images" / "make_corpus.py")
assert _spec and _spec.loader
mc: ModuleType = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mc)

SUBUID_START = 100000  # secpodtest's range in /etc/subuid (scripts/test-env.sh)
BASE = mc.layer([
    ("dir", "bin"), ("file", "bin/busybox", Path("/bin/busybox").read_bytes(), {"mode": 0o755}),
    ("symlink", "bin/sh", "busybox"), ("dir", "etc"),
    ("file", "etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
    ("file", "etc/hide", b"the base has it\n"),
    ("dir", "var"), ("dir", "var/www", {"uid": 33, "gid": 33, "mode": 0o750}),
    ("file", "var/www/index.html", b"hi\n", {"uid": 33, "gid": 33}),
])
UPPER = mc.layer([("dir", "etc"), ("file", "etc/.wh.hide", b""),
                  ("file", "etc/b", b"only in b\n")])


def _store(user: User) -> Path:
    return user.home / "data" / "secpod" / "images"


def _import(user: User, name: str, layers: list[tuple[bytes, str, bytes]]) -> str:
    """Write an OCI layout of ``layers`` and import it as ``name``; its manifest digest."""
    folder = user.home / name.replace(":", "-")
    for rel, data in mc.layout(layers).items():
        user.file(f"{folder.name}/{rel}", data)
    proc = user.run("image", "import", str(folder), "--name", name)
    assert proc.returncode == 0, proc.stderr
    return str(json.loads(user.run("image", "inspect", name, check=True).stdout)[0]["Secpod"]
               ["digest"])


def _rootfs(user: User, digest: str) -> Path:
    return _store(user) / "unpacked" / digest.partition(":")[2] / "rootfs"


def _layer(user: User, layer: tuple[bytes, str, bytes]) -> Path:
    return _store(user) / "layers" / mc.sha(layer[2])[7:]


def _du(*paths: Path) -> int:
    """Bytes ``du`` counts for ``paths`` together (a hard-linked inode once)."""
    out = subprocess.run(["du", "-s", "-c", "-B1", *map(str, paths)], check=True,
                         capture_output=True, text=True).stdout
    return int(out.splitlines()[-1].split()[0])


def _records(user: User, *digests: str) -> list[bytes]:
    return [(_store(user) / "unpacked" / d[7:] / "content.json").read_bytes() for d in digests]


def test_two_images_share_the_base_layers_inodes(user: User) -> None:
    a = _import(user, "a:1", [BASE])
    b = _import(user, "b:1", [BASE, UPPER])
    ra, rb = _rootfs(user, a), _rootfs(user, b)
    tree = _layer(user, BASE) / "tree"
    for rel in ("bin/busybox", "bin/sh", "etc/passwd", "var/www/index.html"):
        sa, sb, sl = (os.lstat(r / rel) for r in (ra, rb, tree))
        assert sa.st_ino == sb.st_ino == sl.st_ino, rel
        assert sa.st_nlink == 3, rel  # the layer's tree and the two images
    st = os.lstat(rb / "var" / "www")  # a directory: each image's own, with the layer's owner
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (
        SUBUID_START + 32, SUBUID_START + 32, 0o750)
    assert st.st_ino != os.lstat(ra / "var" / "www").st_ino
    # the whiteout hides the base's file in b only; b's own file is b's alone
    assert (ra / "etc" / "hide").read_text() == "the base has it\n"
    assert not os.path.lexists(rb / "etc" / "hide")
    assert (rb / "etc" / "b").read_text() == "only in b\n"
    assert not os.path.lexists(ra / "etc" / "b")
    assert os.path.lexists(_layer(user, UPPER) / "tree" / "etc" / "b")
    # du counts the shared files once: b alone would take the busybox binary again
    busybox = os.lstat(ra / "bin" / "busybox").st_blocks * 512
    assert _du(ra) + _du(rb) - _du(ra, rb) >= busybox
    # both images are still what was verified: a's record was taken again when b's
    # links changed its files' ctime (audited as an image.verify naming b)
    for ref in ("a:1", "b:1"):
        proc = user.run("image", "verify", ref)
        assert proc.returncode == 0, proc.stderr
        proc = user.run("image", "verify", "--deep", ref)
        assert proc.returncode == 0, proc.stderr
    proc = user.run("run", "--rm", "a:1", "/bin/busybox", "cat", "/etc/hide")
    assert proc.returncode == 0 and proc.stdout == "the base has it\n", proc.stderr
    df = user.run("system", "df", "-v", check=True).stdout
    assert "Shared: 1 blob and 1 unpacked layer; " in df, df


def test_removing_one_image_keeps_the_other_and_the_shared_layer(user: User) -> None:
    a = _import(user, "a:1", [BASE])
    b = _import(user, "b:1", [BASE, UPPER])
    ino = os.lstat(_rootfs(user, a) / "bin" / "busybox").st_ino
    proc = user.run("image", "rm", "b:1")
    assert proc.returncode == 0, proc.stderr
    assert not _rootfs(user, b).exists()
    assert not _layer(user, UPPER).exists()
    assert _layer(user, BASE).is_dir()
    st = os.lstat(_rootfs(user, a) / "bin" / "busybox")
    assert (st.st_ino, st.st_nlink) == (ino, 2)
    assert (_rootfs(user, a) / "etc" / "hide").read_text() == "the base has it\n"
    proc = user.run("image", "verify", "a:1")  # recorded again after b's links went
    assert proc.returncode == 0, proc.stderr
    proc = user.run("image", "rm", "a:1")
    assert proc.returncode == 0, proc.stderr
    assert list((_store(user) / "layers").iterdir()) == []
    assert list((_store(user) / "unpacked").iterdir()) == []
    assert list((_store(user) / "tmp").iterdir()) == []


def test_writes_in_a_container_of_b_reach_neither_image(user: User) -> None:
    a = _import(user, "a:1", [BASE])
    b = _import(user, "b:1", [BASE, UPPER])
    passwd = _rootfs(user, a) / "etc" / "passwd"
    before = (os.lstat(passwd), passwd.read_bytes(), _records(user, a, b))
    user.run("run", "-d", "--name", "w", "--profile", "default", "b:1", "/bin/sh", "-c",
             "sleep 600", check=True)
    change = ("echo more >> /etc/passwd && chmod 0600 /etc/passwd && "
              "chmod 0700 /bin/busybox && echo x > /var/www/index.html && "
              "rm /etc/b && echo done")
    proc = user.run("exec", "w", "/bin/sh", "-c", change)
    assert proc.returncode == 0 and proc.stdout.strip() == "done", proc.stderr
    seen = user.run("exec", "w", "/bin/busybox", "stat", "-c", "%a", "/etc/passwd",
                    check=True).stdout
    assert seen == "600\n"
    st = os.lstat(passwd)
    assert (st.st_ino, st.st_mode, st.st_size, st.st_ctime_ns, passwd.read_bytes()) == (
        before[0].st_ino, before[0].st_mode, before[0].st_size, before[0].st_ctime_ns,
        before[1])
    assert stat.S_IMODE(os.lstat(_rootfs(user, b) / "bin" / "busybox").st_mode) == 0o755
    assert (_rootfs(user, b) / "etc" / "b").exists()
    assert _records(user, a, b) == before[2]
    for ref in ("a:1", "b:1"):
        proc = user.run("image", "verify", ref)
        assert proc.returncode == 0, proc.stderr
    assert user.run("rm", "-f", "w").returncode == 0


@pytest.mark.parametrize("upper, message", [
    (mc.layer([("file", "../escape", b"x")]), "contains '..' (escapes the root)"),
    (mc.layer([("symlink", "etc/out", "/"), ("file", "etc/out/evil", b"x")]),
     "goes through the symlink /etc/out (escapes the root)"),
    (mc.layer([("file", "bin/sh/evil", b"x")]), "goes through the symlink /bin/sh"),
])
def test_a_hostile_upper_layer_is_refused_and_leaves_no_layer(
        user: User, upper: tuple[bytes, str, bytes], message: str) -> None:
    _import(user, "a:1", [BASE])
    folder = user.home / "hostile"
    for rel, data in mc.layout([BASE, upper]).items():
        user.file(f"hostile/{rel}", data)
    proc = user.run("image", "import", str(folder), "--name", "h:1")
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr
    assert [p.name for p in (_store(user) / "layers").iterdir()] == [mc.sha(BASE[2])[7:]]
    assert len(list((_store(user) / "unpacked").iterdir())) == 1
    assert list((_store(user) / "tmp").iterdir()) == []
    proc = user.run("image", "verify", "a:1")
    assert proc.returncode == 0, proc.stderr


def test_setuid_and_devices_of_an_upper_layer_are_neutralised(user: User) -> None:
    upper = mc.layer([("file", "bin/su", b"#!/bin/sh\n", {"mode": 0o4755}),
                      ("char", "dev-null")])
    d = _import(user, "n:1", [BASE, upper])
    assert stat.S_IMODE(os.lstat(_rootfs(user, d) / "bin" / "su").st_mode) == 0o755
    assert not os.path.lexists(_rootfs(user, d) / "dev-null")
    assert not os.path.lexists(_layer(user, upper) / "tree" / "dev-null")
    report = json.loads(user.run("image", "inspect", "n:1", check=True).stdout)[0]
    assert report["Secpod"]["unpack_report"]["setuid_stripped"] == 1
    assert report["Secpod"]["unpack_report"]["devices_skipped"] == 1


def test_an_import_killed_mid_layer_leaves_no_layer_in_use(user: User) -> None:
    many = mc.layer([("dir", "many")] + [("file", f"many/{i}", b"%d\n" % i)
                                         for i in range(20000)])
    folder = user.home / "big"
    for rel, data in mc.layout([BASE, many]).items():
        user.file(f"big/{rel}", data)
    proc = user.popen("image", "import", str(folder), "--name", "big:1",
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tmp = _store(user) / "tmp"
    deadline = time.monotonic() + 60
    staged: list[Path] = []
    while not staged or len(os.listdir(staged[0])) < 100:
        assert time.monotonic() < deadline and proc.poll() is None
        staged = list(tmp.glob(f"import-*/layers/{mc.sha(many[2])[7:]}/tree/many"))
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert not _layer(user, many).exists()   # staged, never moved in
    # The unpacking child goes on to the end of its pipe, holding the staging folder's
    # lock (so no other secpod removes the folder under it), then ends.
    lock = os.open(next(tmp.glob("import-*/.lock")), os.O_RDWR)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
    finally:
        os.close(lock)
    assert not _layer(user, many).exists()
    assert user.run("image", "ls", "-q", check=True).stdout == ""
    done = user.run("image", "import", str(folder), "--name", "big:1")
    assert done.returncode == 0, done.stderr
    assert len(os.listdir(_layer(user, many) / "tree" / "many")) == 20000
    assert list(tmp.iterdir()) == []


def test_an_image_of_an_older_store_keeps_working(user: User) -> None:
    """An image without layers.json (unpacked before layers were shared) is read, run and
    removed as before, and shares nothing."""
    a = _import(user, "a:1", [BASE])
    unpacked = _store(user) / "unpacked" / a[7:]
    (unpacked / "layers.json").unlink()   # as an older store has it
    proc = user.run("run", "--rm", "a:1", "/bin/busybox", "cat", "/etc/hide")
    assert proc.returncode == 0 and proc.stdout == "the base has it\n", proc.stderr
    b = _import(user, "b:1", [BASE, UPPER])
    assert (_rootfs(user, b) / "bin" / "busybox").exists()
    proc = user.run("image", "rm", "a:1")
    assert proc.returncode == 0, proc.stderr
    assert _layer(user, BASE).is_dir()  # b links it: a did not count
    proc = user.run("image", "verify", "--deep", "b:1")
    assert proc.returncode == 0, proc.stderr


def test_strict_runs_of_both_images_after_the_links_changed(user: User) -> None:
    """A strict run checks the image's content record first: a's, taken again when b's
    import linked a's files, and b's own; neither root can be written."""
    a = _import(user, "a:1", [BASE])
    b = _import(user, "b:1", [BASE, UPPER])
    user.env = dict(user.env, COSIGN_PASSWORD=PASSWORD)
    user.run("key", "generate", "--output-key-prefix", str(user.home / "release"), check=True)
    for name in ("a", "b"):
        user.run("sign", f"{name}:1", "--key", str(user.home / "release.key"), check=True)
        user.run("trust", "set", "--type", "sigstoreSigned", "--pubkeysfile",
                 str(user.home / "release.pub"), f"docker.io/library/{name}", check=True)
    before = _records(user, a, b)
    for ref, want in (("a:1", "the base has it\n"), ("b:1", "only in b\n")):
        path = "/etc/hide" if ref == "a:1" else "/etc/b"
        proc = user.run("run", "--rm", "--profile", "strict", ref, "/bin/busybox", "cat", path)
        assert proc.returncode == 0 and proc.stdout == want, proc.stderr
        proc = user.run("run", "--rm", "--profile", "strict", ref, "/bin/sh", "-c",
                        "echo x >> /etc/passwd || chmod 0600 /etc/passwd || echo refused")
        assert proc.stdout.strip() == "refused", (proc.stdout, proc.stderr)
    assert _records(user, a, b) == before
    relinked = [r for r in audit_records(user) if r["action"] == "image.verify"
                and (r.get("details") or {}).get("relinked")]  # type: ignore[union-attr]
    assert [r["image"]["digest"] for r in relinked] == [a]  # type: ignore[index]
