"""The host's audit collector: started as root, fed by two unprivileged users.

The suite runs as root in a private mount namespace; the administrator's
policy is a temp folder bind-mounted over /etc/secpod for each test, so the
host's /etc never changes. The collector gets its socket and host log in a
temp folder through its flags.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import SECPOD_BIN, WORK, User

pytestmark = [pytest.mark.root]
PY = str(Path(sys.executable))


@dataclass
class Host:
    folder: Path
    socket: Path
    log_dir: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [str(SECPOD_BIN), "audit", "collect", "--socket", str(self.socket), "--dir",
             str(self.log_dir), "--checkpoint-every", "5"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while not self.socket.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                out = self.proc.communicate(timeout=5)
                pytest.fail(f"the collector did not start: {out!r}")
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=20)
        self.proc = None

    def records(self) -> list[dict[str, object]]:
        return [json.loads(x) for x in (self.log_dir / "log.jsonl").read_text().splitlines()]


@pytest.fixture
def host() -> Iterator[Host]:
    WORK.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="audit-host-", dir=WORK))
    folder.chmod(0o755)
    h = Host(folder=folder, socket=folder / "run" / "audit.sock", log_dir=folder / "host")
    h.start()
    yield h
    h.stop()
    shutil.rmtree(folder, ignore_errors=True)


def _private_mount_namespace() -> bool:
    mine = os.readlink("/proc/self/ns/mnt")
    for pid in (1, os.getppid()):
        try:
            return mine != os.readlink(f"/proc/{pid}/ns/mnt")
        except PermissionError:
            continue  # pid 1 may be hidden from us; scripts/test-env.sh's caller is not
    return False


@pytest.fixture
def admin_policy() -> Iterator[Callable[[str], None]]:
    """Write /etc/secpod/policy.toml for this test (a root-owned folder bind-mounted there)."""
    if not _private_mount_namespace():
        pytest.fail("this test bind-mounts over /etc/secpod: run it through "
                    "scripts/test-env.sh, which gives the suite a private mount namespace")
    WORK.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="etc-secpod-", dir=WORK))
    folder.chmod(0o755)
    target = Path("/etc/secpod")
    created = not target.exists()
    if created:
        target.mkdir(mode=0o755)
    subprocess.run(["mount", "--bind", str(folder), str(target)], check=True)

    def write(text: str) -> None:
        (target / "policy.toml").write_text(text)
        (target / "policy.toml").chmod(0o644)

    yield write
    subprocess.run(["umount", str(target)], check=True)
    if created:
        target.rmdir()
    shutil.rmtree(folder, ignore_errors=True)


def py(user: User, code: str) -> subprocess.CompletedProcess[str]:
    return user.sh([PY, "-c", code])


def record(user: User, call: str) -> subprocess.CompletedProcess[str]:
    return py(user, f"from secpod.audit import record\nrecord({call})")


def test_each_users_records_reach_the_host_log_with_their_uid(
        user: User, user2: User, host: Host, admin_policy: Callable[[str], None]) -> None:
    admin_policy(f'[audit]\ncollector = "{host.socket}"\nrequired = true\n')
    for u in (user, user2):
        for i in range(3):
            r = record(u, f"'image.tag', 'ok', image_ref='{u.name}:{i}'")
            assert r.returncode == 0, r.stderr
    recs = [r for r in host.records() if r["action"] == "image.tag"]
    assert [(r["user"], r["uid"]) for r in recs] == [(user.name, user.uid)] * 3 + [
        (user2.name, user2.uid)] * 3
    assert [r["image"]["ref"] for r in recs][:3] == [f"{user.name}:{i}" for i in range(3)]  # type: ignore[index]
    assert all(r["source"]["seq"] == i for i, r in enumerate(recs[:3]))  # type: ignore[index]

    # The host log is root's: users read and verify it, and cannot write it.
    assert (host.log_dir / "log.jsonl").stat().st_uid == 0
    r = user.run("audit", "verify", "--dir", str(host.log_dir))
    assert r.returncode == 0, r.stdout
    r = py(user, f"open({str(host.log_dir / 'log.jsonl')!r}, 'a').write('x')")
    assert r.returncode != 0 and "Permission denied" in r.stderr
    r = user.run("audit", "log", "--dir", str(host.log_dir), "--user", user2.name, "--json")
    assert {x["uid"] for x in json.loads(r.stdout)} == {user2.uid}


def test_a_forged_uid_is_recorded_as_a_forgery_under_the_true_uid(
        user: User, user2: User, host: Host) -> None:
    forged = {"uid": user2.uid, "user": user2.name, "action": "container.create",
              "outcome": "ok", "seq": 0, "time": "2024-01-01T00:00:00.000000Z"}
    code = (
        "import json, socket\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        f"s.connect({str(host.socket)!r})\n"
        f"s.sendall(json.dumps({{'v': 1, 'record': {forged!r}}}).encode() + b'\\n')\n"
        "print(s.recv(65536).decode())\n")
    r = py(user, code)
    answer = json.loads(r.stdout)
    assert answer["ok"] is False and "forgery" in answer["error"]
    recs = host.records()
    assert not [x for x in recs if x["uid"] == user2.uid]
    forgery = [x for x in recs if x["action"] == "audit.forgery"]
    assert len(forgery) == 1
    f = forgery[0]
    assert (f["uid"], f["user"], f["outcome"]) == (user.uid, user.name, "refused")
    assert f["details"]["claimed_uid"] == user2.uid  # type: ignore[index]
    assert f"claimed uid {user2.uid} ({user2.name})" in str(f["reason"])


def test_a_required_collector_that_is_down_stops_the_action(
        user: User, host: Host, admin_policy: Callable[[str], None]) -> None:
    admin_policy(f'[audit]\ncollector = "{host.socket}"\nrequired = true\n')
    host.stop(signal.SIGKILL)  # a crashed collector: its socket is left behind
    assert host.socket.exists()
    r = record(user, "'container.create', 'ok'")
    assert r.returncode != 0
    assert "collector is required and cannot be reached" in r.stderr
    assert "not running (connection refused)" in r.stderr
    # The refusal itself is still written, to the user's own log.
    r = record(user, "'container.run.refused', 'refused', reason='audit collector down'")
    assert r.returncode == 0, r.stderr
    recs = json.loads(user.run("audit", "log", "--json", check=True).stdout)
    assert [x["action"] for x in recs] == ["container.run.refused"]
    assert "unreachable" in recs[0]["details"]["collector"]


def test_secpod_run_refuses_without_the_required_collector(
        user: User, busybox: str, host: Host, admin_policy: Callable[[str], None]) -> None:
    admin_policy(f'[audit]\ncollector = "{host.socket}"\nrequired = true\n')
    host.stop()
    r = user.run("run", "--rm", busybox, "true")
    assert r.returncode != 0
    assert "audit collector" in r.stderr
    recs = json.loads(user.run("audit", "log", "--json", check=True).stdout)
    assert recs[-1]["outcome"] in ("refused", "error")
    assert "collector" in json.dumps(recs[-1])


def test_a_socket_not_owned_by_root_is_refused(
        user: User, user2: User, admin_policy: Callable[[str], None]) -> None:
    spot = user2.home / "fake.sock"
    user2.home.chmod(0o755)
    r = py(user2, f"import socket\ns = socket.socket(socket.AF_UNIX)\ns.bind({str(spot)!r})")
    assert r.returncode == 0 and spot.exists()
    admin_policy(f'[audit]\ncollector = "{spot}"\nrequired = true\n')
    r = record(user, "'container.create', 'ok'")
    assert r.returncode != 0
    assert f"owned by uid {user2.uid}, not root" in r.stderr


def test_the_collector_refuses_to_run_unprivileged(user: User) -> None:
    r = user.run("audit", "collect", "--socket", str(user.home / "s"), "--dir",
                 str(user.home / "h"))
    assert r.returncode == 1 and "runs as root" in r.stderr


def test_the_host_log_records_the_collector_and_checkpoints_on_stop(host: Host) -> None:
    host.stop()
    recs = host.records()
    assert [r["action"] for r in recs] == ["audit.collect.start", "audit.collect.stop"]
    assert (host.log_dir / "checkpoint").read_text().split("\n")[1] == "2"
    assert (host.log_dir / "key").stat().st_mode & 0o777 == 0o600
    assert (host.log_dir / "log.jsonl").stat().st_mode & 0o777 == 0o644
    assert host.log_dir.stat().st_mode & 0o777 == 0o755


def test_an_unsafe_admin_policy_stops_ok_records_but_not_refusals(
        user: User, admin_policy: Callable[[str], None]) -> None:
    admin_policy('[audit]\ncollector = "/run/secpod/audit.sock"\n')
    Path("/etc/secpod/policy.toml").chmod(0o666)  # a user could rewrite it
    r = record(user, "'image.tag', 'ok'")
    assert r.returncode != 0 and "cannot tell where audit records must go" in r.stderr
    r = record(user, "'container.run.refused', 'refused', reason='policy unsafe'")
    assert r.returncode == 0, r.stderr
    recs = json.loads(user.run("audit", "log", "--json", check=True).stdout)
    assert [x["action"] for x in recs] == ["container.run.refused"]
    assert "cannot be read" in recs[0]["details"]["collector"]


def test_a_users_shared_lock_on_the_host_log_blocks_no_write(
        user: User, user2: User, host: Host) -> None:
    # The host log is world-readable: a reader's flock on it must not stop the collector.
    r = py(user, (
        "import fcntl, subprocess, sys, time\n"
        f"f = open({str(host.log_dir / 'log.jsonl')!r}, 'rb')\n"
        "fcntl.flock(f, fcntl.LOCK_SH)\n"
        "from secpod.audit._collector import CollectorClient\n"
        f"c = CollectorClient(__import__('pathlib').Path({str(host.socket)!r}), timeout=5)\n"
        "import pwd, os\n"
        "rec = {'uid': os.getuid(), 'user': pwd.getpwuid(os.getuid()).pw_name,\n"
        "       'action': 'image.tag', 'outcome': 'ok'}\n"
        "print(c.submit(rec))\n"))
    assert r.returncode == 0, r.stderr
    # The lock the collector takes is a file no user can open.
    r = py(user2, f"open({str(host.log_dir / 'lock')!r}, 'rb')")
    assert r.returncode != 0 and "Permission denied" in r.stderr


def test_a_flood_of_idle_connections_does_not_take_the_collector_down(
        user: User, user2: User, host: Host) -> None:
    host.stop()
    host.proc = subprocess.Popen(
        ["prlimit", "--nofile=64:64", str(SECPOD_BIN), "audit", "collect", "--socket",
         str(host.socket), "--dir", str(host.log_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while not host.socket.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    # 150 idle connections from one user: more than the collector has descriptors.
    r = py(user, (
        "import socket, time\n"
        "held = []\n"
        "for _ in range(150):\n"
        "    s = socket.socket(socket.AF_UNIX)\n"
        "    s.settimeout(2)\n"
        "    try:\n"
        f"        s.connect({str(host.socket)!r})\n"
        "    except OSError:\n"
        "        pass\n"
        "    held.append(s)\n"
        "time.sleep(1)\n"
        "print('held', len(held))\n"))
    assert "held 150" in r.stdout, r.stderr
    assert host.proc.poll() is None, host.proc.communicate(timeout=5)
    assert host.socket.exists()
    r = record_direct(user2, host)
    assert r.returncode == 0, r.stderr


def record_direct(user: User, host: Host) -> subprocess.CompletedProcess[str]:
    return py(user, (
        "import os, pwd\n"
        "from pathlib import Path\n"
        "from secpod.audit._collector import CollectorClient\n"
        f"c = CollectorClient(Path({str(host.socket)!r}))\n"
        "rec = {'uid': os.getuid(), 'user': pwd.getpwuid(os.getuid()).pw_name,\n"
        "       'action': 'image.tag', 'outcome': 'ok'}\n"
        "print(c.submit(rec))\n"))


def test_a_flood_of_records_is_cut_off_by_the_users_quota(
        user: User, user2: User, host: Host) -> None:
    """Big records with a checkpoint each, then many small ones, from one user: the host
    log grows by the quota's burst, not by the flood; the refusals are one audit.quota
    event; the collector goes on serving the other user."""
    size_before = (host.log_dir / "log.jsonl").stat().st_size
    r = py(user, (
        "import os, pwd\n"
        "from pathlib import Path\n"
        "from secpod.audit._collector import CollectorClient\n"
        "from secpod.errors import CollectorError\n"
        f"c = CollectorClient(Path({str(host.socket)!r}))\n"
        "me = {'uid': os.getuid(), 'user': pwd.getpwuid(os.getuid()).pw_name,\n"
        "      'action': 'image.tag', 'outcome': 'ok'}\n"
        "ok = refused = 0\n"
        "for i in range(40):  # 40 x 300 KiB = 12 MiB offered\n"
        "    try:\n"
        "        c.submit(dict(me, details={'junk': 'x' * (300 << 10)}), checkpoint=True)\n"
        "        ok += 1\n"
        "    except CollectorError as e:\n"
        "        refused += 1; last = str(e)\n"
        "for i in range(2000):\n"
        "    try:\n"
        "        c.submit(me); ok += 1\n"
        "    except CollectorError as e:\n"
        "        refused += 1; last = str(e)\n"
        "print(ok, refused)\n"
        "print(last)\n"))
    assert r.returncode == 0, r.stderr
    ok, refused = map(int, r.stdout.split()[:2])
    assert refused > 1000 and ok < 1000, r.stdout
    assert "quota exceeded" in r.stdout
    grown = (host.log_dir / "log.jsonl").stat().st_size - size_before
    assert grown < 6 << 20, grown  # the 4 MiB burst, plus the small records and refill
    events = [x for x in host.records() if x["action"] == "audit.quota"]
    assert len(events) == 1 and events[0]["uid"] == user.uid, events
    assert events[0]["details"]["refused"] >= 1
    r = record_direct(user2, host)
    assert r.returncode == 0, r.stderr


def test_the_collector_cosigns_checkpoints_and_catches_a_rewritten_log(
        user: User, host: Host, admin_policy: Callable[[str], None]) -> None:
    """A user can rewrite their own log and sign it again with their own key; the host's
    cosigned checkpoint still catches it, and the collector refuses to cosign the
    rewrite (recorded as audit.rewrite in the host log)."""
    admin_policy(f'[audit]\ncollector = "{host.socket}"\n')
    for i in range(3):
        assert record(user, f"'image.tag', 'ok', image_ref='a:{i}'").returncode == 0
    r = user.run("audit", "cosign")
    assert r.returncode == 0, r.stderr
    signers = [ln.split()[1] for ln in r.stdout.splitlines() if ln.startswith("\u2014 ")]
    assert len(signers) == 2 and signers[1].endswith("/host"), r.stdout  # user's, host's
    cosigned = host.log_dir / "cosigned" / f"{user.uid}.note"
    assert cosigned.stat().st_uid == 0 and oct(cosigned.stat().st_mode & 0o777) == "0o644"
    for i in range(2):
        assert record(user, f"'image.tag', 'ok', image_ref='b:{i}'").returncode == 0
    r = user.run("audit", "cosign", "--json")
    assert r.returncode == 0, r.stderr
    grown = json.loads(r.stdout)
    assert grown["old_size"] >= 3 and grown["size"] > grown["old_size"]
    assert "extends" in r.stderr
    r = user.run("audit", "verify", "--cosigned", "--host-dir", str(host.log_dir))
    assert r.returncode == 0, r.stdout + r.stderr

    # The rewrite: a fresh log under the same key, one record, its own checkpoint.
    log = user.home / "data" / "secpod" / "audit"
    for name in ("log.jsonl", "state.json", "checkpoints.jsonl", "checkpoint"):
        (log / name).unlink(missing_ok=True)
    assert record(user, "'image.tag', 'ok', image_ref='innocent'").returncode == 0
    assert user.run("audit", "checkpoint").returncode == 0
    assert user.run("audit", "verify").returncode == 0  # consistent with itself
    r = user.run("audit", "verify", "--cosigned", "--host-dir", str(host.log_dir))
    assert r.returncode == 1 and "NOT INTACT" in r.stdout, r.stdout
    r = user.run("audit", "cosign")
    assert r.returncode != 0 and "fewer than" in r.stderr, r.stderr
    rewrite = [x for x in host.records() if x["action"] == "audit.rewrite"]
    assert len(rewrite) == 1 and rewrite[0]["uid"] == user.uid, rewrite
    assert cosigned.read_text().count("\u2014 ") == 2  # the host kept what it cosigned


def test_a_run_checks_the_image_content_against_the_host_log(
        user: User, signed_busybox: str, host: Host,
        admin_policy: Callable[[str], None]) -> None:
    """The owner changes the unpacked tree and rewrites its content record to match, so
    the store agrees with itself; the host log still holds the content it received when
    the image was verified, and the strict run is refused."""
    admin_policy(f'[audit]\ncollector = "{host.socket}"\n')
    assert user.run("image", "verify", signed_busybox).returncode == 0  # the host learns it
    host.stop()
    host.start()  # and knows it again from the host log when it starts
    r = user.run("run", "--rm", "--profile", "strict", signed_busybox, "true")
    assert r.returncode == 0, r.stderr
    images = user.home / "data" / "secpod" / "images" / "unpacked"
    (unpacked,) = [p for p in images.iterdir() if p.is_dir()]
    user.sh(["sh", "-c", f"chmod u+w {unpacked}/rootfs/etc && echo x > {unpacked}/rootfs/etc/added"],
            check=True)
    rewrite = py(user, (
        "import hashlib, json\n"
        "from pathlib import Path\n"
        "from secpod.images import _content\n"
        f"u = Path({str(unpacked)!r})\n"
        "tree, dev = _content.walk(u / 'rootfs')\n"
        "body = json.loads((u / _content.RECORD).read_bytes())\n"
        "body['tree'] = {'sha256': hashlib.sha256(tree).hexdigest(), 'dev': dev,\n"
        "                'entries': tree.count(b'\\n')}\n"
        "(u / _content.TREE).write_bytes(tree)\n"
        "(u / _content.RECORD).write_bytes(json.dumps(body, sort_keys=True,\n"
        "                                  separators=(',', ':')).encode())\n"))
    assert rewrite.returncode == 0, rewrite.stderr
    r = user.run("run", "--rm", "--profile", "strict", signed_busybox, "true")
    assert r.returncode == 125, r.stderr
    assert "is not the one the host log received" in r.stderr, r.stderr
    refused = [x for x in host.records() if x["action"] == "container.run.refused"]
    assert refused and str(refused[-1]["reason"]).startswith("content: "), refused
