"""``--network pasta`` against real crun and Debian's pasta (docs/networking.md).

Nothing here leaves the machine: secpod runs inside a network namespace this test makes
("outside": 10.200.0.2 on a veth), whose only peer is a second namespace the test makes
("peer": 10.200.0.1, the gateway, and 10.200.0.3, a server). The container's outbound
network is pasta's view of "outside"; the tun node is the one scripts/test-env.sh binds
over /dev/net/tun in the suite's private mount namespace."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SECPOD_BIN, User
from tests.integration.conftest import audit_records

pytestmark = [pytest.mark.crun, pytest.mark.userns]

# Replies with the address it sees the client come from, once per connection.
SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(8)
print("ready", flush=True)
while True:
    c, peer = s.accept()
    c.sendall(("hello " + peer[0] + "\\n").encode()); c.close()
"""


class Namespaces:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def make(self) -> int:
        p = subprocess.Popen(["unshare", "-n", "sleep", "infinity"])
        self.procs.append(p)
        deadline = time.monotonic() + 5
        while os.readlink(f"/proc/{p.pid}/ns/net") == os.readlink("/proc/self/ns/net"):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        return p.pid

    def close(self) -> None:
        for p in self.procs:
            p.kill()
            p.wait()


def enter(pid: int, argv: list[str]) -> list[str]:
    return ["nsenter", f"--net=/proc/{pid}/ns/net", *argv]


@pytest.fixture
def net() -> Iterator[tuple[int, int]]:
    """(outside, peer): the namespace secpod runs in, and its only neighbour."""
    ns = Namespaces()
    outside, peer = ns.make(), ns.make()
    for cmd in (["ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1",
                 "netns", str(peer)],
                ["ip", "addr", "add", "10.200.0.2/24", "dev", "v0"],
                ["ip", "link", "set", "v0", "up"], ["ip", "link", "set", "lo", "up"],
                ["ip", "route", "add", "default", "via", "10.200.0.1"]):
        subprocess.run(enter(outside, cmd), check=True)
    for cmd in (["ip", "addr", "add", "10.200.0.1/24", "dev", "v1"],
                ["ip", "addr", "add", "10.200.0.3/24", "dev", "v1"],
                ["ip", "link", "set", "v1", "up"], ["ip", "link", "set", "lo", "up"]):
        subprocess.run(enter(peer, cmd), check=True)
    try:
        yield outside, peer
    finally:
        ns.close()


def secpod(user: User, where: int, *args: str, timeout: float = 120,
           ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(enter(where, user.command([str(SECPOD_BIN), *args])),
                          capture_output=True, text=True, timeout=timeout, cwd=str(user.home))


def server(where: int, address: str, port: int) -> subprocess.Popen[str]:
    p = subprocess.Popen(enter(where, ["python3", "-c", SERVER, address, str(port)]),
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline() == "ready\n"
    return p


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def folder(user: User, name: str) -> Path:
    cid = user.run("inspect", "-f", "{{.Id}}", name, check=True).stdout.strip()
    return user.home / "data" / "secpod" / "containers" / cid


def test_pasta_reaches_a_server_of_the_peer_namespace(user: User, busybox: str,
                                                      net: tuple[int, int]) -> None:
    outside, peer = net
    srv = server(peer, "10.200.0.3", 8000)
    try:
        r = secpod(user, outside, "run", "--rm", "--network", "pasta", "--add-host",
                   "db:10.200.0.3", busybox, "sh", "-c",
                   "cat /etc/resolv.conf; ip -o -4 addr; timeout 10 nc db 8000 </dev/null; true")
        assert r.returncode == 0, r.stderr
        assert "nameserver 169.254.1.1" in r.stdout
        assert "10.200.0.2/24" in r.stdout          # pasta copied outside's address
        assert "hello 10.200.0.2" in r.stdout       # and the peer saw outside's address
        r = secpod(user, outside, "run", "--rm", "--network", "pasta", "--dns", "10.200.0.53",
                   busybox, "cat", "/etc/resolv.conf")
        assert r.stdout == "nameserver 10.200.0.53\n", r.stderr
    finally:
        srv.kill()
        srv.wait()
    rec = [x for x in audit_records(user) if x["action"] == "container.create"][-1]
    assert rec["details"]["network"]["mode"] == "pasta", rec  # type: ignore[index]


EGRESS_PROFILE = 'extends = "default"\n[network]\negress = ["10.200.0.3/32:8000/tcp"]\n'


# With an egress list, a published port's replies still pass (established connections).
@pytest.mark.parametrize("profile", ["default", "egress"])
def test_pasta_publishes_a_port(user: User, busybox: str, net: tuple[int, int],
                                profile: str) -> None:
    outside, _ = net
    user.file("config/secpod/profiles/egress.toml", EGRESS_PROFILE)
    r = secpod(user, outside, "run", "-d", "--name", "web", "--profile", profile,
               "--network", "pasta", "-p", "8080:80", busybox, "sh", "-c",
               "while true; do echo hi | nc -l -p 80; done")
    assert r.returncode == 0, r.stderr
    ctr = folder(user, "web")
    pasta_pid = int((ctr / "pasta.pid").read_text())
    record = json.loads((ctr / "container.json").read_text())
    holder = record["holder_pid"]
    assert alive(pasta_pid) and alive(holder)
    def tables() -> str:
        return secpod(user, outside, "exec", "web", "cat", "/proc/net/tcp",
                      "/proc/net/tcp6").stdout

    deadline = time.monotonic() + 15      # the server listens on :80 (0050, state 0A)
    while not any(f.split()[1].endswith(":0050") and f.split()[3] == "0A"
                  for f in tables().splitlines()[1:] if len(f.split()) > 3):
        assert time.monotonic() < deadline, (secpod(user, outside, "logs", "web").stderr,
                                             secpod(user, outside, "exec", "web", "cat",
                                                    "/proc/net/tcp", "/proc/net/tcp6"))
        time.sleep(0.2)
    # A client of the outside namespace holds a connection open.
    client = subprocess.Popen(enter(outside, ["python3", "-c",
        "import socket,time\n"
        "for _ in range(100):\n"
        "    s = socket.create_connection(('127.0.0.1', 8080), timeout=5)\n"
        "    got = s.recv(10)\n"
        "    if got: break\n"
        "    s.close(); time.sleep(0.1)\n"
        "print(got.decode(), flush=True); time.sleep(30)"]),
        stdout=subprocess.PIPE, text=True)
    try:
        assert client.stdout is not None and client.stdout.readline().strip() == "hi"
        assert tables()
    finally:
        client.kill()
        client.wait()
    assert "127.0.0.1:8080->80/tcp" in secpod(user, outside, "ps").stdout
    # -p on a port already in use by pasta: refused at create, nothing left
    r = secpod(user, outside, "run", "-d", "--name", "two",
               "--network", "pasta", "-p", "8080:80", busybox, "true")
    assert r.returncode == 125 and "already in use" in r.stderr, r.stderr
    assert secpod(user, outside, "rm", "-f", "web").returncode == 0
    assert not alive(pasta_pid) and not alive(holder)


def wait_gone(pid: int, what: str) -> None:
    deadline = time.monotonic() + 10
    while alive(pid):
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_pasta_lives_as_long_as_the_container(user: User, busybox: str,
                                              net: tuple[int, int]) -> None:
    outside, _ = net

    def started(name: str, *cmd: str) -> int:
        r = secpod(user, outside, "run", "-d", "--name", name, "--network", "pasta",
                   busybox, *cmd)
        assert r.returncode == 0, r.stderr
        return int((folder(user, name) / "pasta.pid").read_text())

    # running: the overlay root's holder stays while it is pasta's parent, and the
    # container keeps its network
    pasta = started("a", "sleep", "60")
    r = secpod(user, outside, "exec", "a", "ip", "-o", "-4", "addr")
    assert "10.200.0.2/24" in r.stdout and alive(pasta), r.stderr
    # stop: gone when stop returns
    assert secpod(user, outside, "stop", "-t", "1", "a").returncode == 0
    assert not alive(pasta)
    # started again: a new pasta; rm -f: gone when rm returns
    assert secpod(user, outside, "start", "a").returncode == 0
    pasta = int((folder(user, "a") / "pasta.pid").read_text())
    assert alive(pasta)
    assert secpod(user, outside, "rm", "-f", "a").returncode == 0
    assert not alive(pasta)
    # the container's own exit
    pasta = started("b", "sleep", "1")
    wait_gone(pasta, "pasta outlived its container")
    # SIGKILL of the monitor (conmon)
    pasta = started("c", "sleep", "60")
    conmon = int(json.loads(secpod(user, outside, "inspect", "c").stdout)[0]
                 ["Secpod"]["monitor_pid"])
    os.kill(conmon, signal.SIGKILL)
    wait_gone(pasta, "pasta outlived the monitor")
    user.run("rm", "-f", "b", "c")


def test_pasta_ends_when_secpod_is_killed(user: User, busybox: str,
                                          net: tuple[int, int]) -> None:
    outside, _ = net
    proc = subprocess.Popen(enter(outside, user.command(
        [str(SECPOD_BIN), "run", "--name", "fg", "--network", "pasta", busybox, "sleep", "60"])),
        cwd=str(user.home), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        pidfile = None
        while pidfile is None or not pidfile.exists():
            assert time.monotonic() < deadline
            time.sleep(0.1)
            found = list((user.home / "data/secpod/containers").glob("*/pasta.pid"))
            pidfile = found[0] if found else None
        time.sleep(0.5)      # pasta wrote its pid: its parent, the holder, runs too
        pasta_pid = int(pidfile.read_text())
        assert alive(pasta_pid)
        os.kill(proc.pid, signal.SIGKILL)    # nsenter, setpriv and env exec: this is secpod
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 10
    while alive(pasta_pid):
        assert time.monotonic() < deadline, "pasta outlived secpod"
        time.sleep(0.05)
    user.run("rm", "-f", "fg")


def test_pasta_refusals(user: User, busybox: str, net: tuple[int, int]) -> None:
    outside, _ = net
    before = len(audit_records(user))
    r = secpod(user, outside, "run", "--rm", "--profile", "strict", "--network", "pasta",
               busybox, "true")
    assert r.returncode == 125 and "does not allow --network pasta" in r.stderr, r.stderr
    # a root-only tun device (this host without udev): the error names it and the fix
    tun = user.home / "tun0600"
    subprocess.run(["mknod", "-m", "0600", str(tun), "c", "10", "200"], check=True)
    subprocess.run(["mount", "--bind", str(tun), "/dev/net/tun"], check=True)
    try:
        r = secpod(user, outside, "run", "--rm", "--network", "pasta", busybox, "true")
    finally:
        subprocess.run(["umount", "/dev/net/tun"], check=True)
    assert r.returncode == 125, r.stderr
    assert "/dev/net/tun" in r.stderr and "chmod 0666 /dev/net/tun" in r.stderr, r.stderr
    records = audit_records(user)[before:]
    assert [x["action"] for x in records] == ["container.run.refused"] * 2, records
    assert user.run("ps", "-a", "-q").stdout == ""


def check_egress(out: str) -> None:
    """In each run's output: the allowed address and port answered, the same address on
    another port did not, and the rules could not be changed (no CAP_NET_ADMIN).
    (Debian 12's pasta sometimes hands a client the server's short reply more than once,
    with or without an egress list: docs/networking.md.)"""
    runs = out.split("rules are fixed\n")
    assert len(runs) > 1 and runs[-1] == "", out
    for run in runs[:-1]:
        allowed, _, other = run.partition("allowed done\n")
        assert "hello 10.200.0.2" in allowed and other.endswith("other done\n"), out
        assert "hello" not in other, out   # refused by the rules


def test_pasta_egress_allow_list(user: User, busybox: str, net: tuple[int, int]) -> None:
    outside, peer = net
    user.file("config/secpod/profiles/egress.toml", EGRESS_PROFILE)
    servers = [server(peer, "10.200.0.3", 8000), server(peer, "10.200.0.3", 8001)]
    try:
        r = secpod(user, outside, "run", "--name", "eg", "--profile", "egress",
                   "--network", "pasta", busybox, "sh", "-c",
                   "timeout 10 nc 10.200.0.3 8000 </dev/null; echo allowed done; "
                   "timeout 10 nc 10.200.0.3 8001 </dev/null; echo other done; "
                   "ip link set lo down || echo rules are fixed")
        assert r.returncode == 0, r.stderr
        check_egress(r.stdout)
        # started again: a new holder installs the same rules
        assert secpod(user, outside, "start", "eg").returncode == 0
        assert secpod(user, outside, "wait", "eg").stdout.strip() == "0"
        check_egress(secpod(user, outside, "logs", "eg").stdout)
    finally:
        for s in servers:
            s.kill()
            s.wait()
    info = json.loads(secpod(user, outside, "inspect", "eg").stdout)[0]
    assert info["Secpod"]["network"]["egress"] == ["10.200.0.3/32:8000/tcp"]
    rec = [x for x in audit_records(user) if x["action"] == "container.create"][-1]
    assert rec["details"]["network"]["egress"] == ["10.200.0.3/32:8000/tcp"], rec  # type: ignore[index]
    user.run("rm", "-f", "eg")
    # CAP_NET_ADMIN could remove the rules: refused, audited, nothing left
    before = len(audit_records(user))
    r = secpod(user, outside, "run", "--rm", "--profile", "egress", "--network", "pasta",
               "--cap-add", "NET_ADMIN", busybox, "true")
    assert r.returncode == 125 and "CAP_NET_ADMIN" in r.stderr, r.stderr
    assert [x["action"] for x in audit_records(user)[before:]] == ["container.run.refused"]
    assert user.run("ps", "-a", "-q").stdout == ""
