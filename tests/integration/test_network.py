"""Published ports of a private network (docs/networking.md), against real crun: a
server in a strict container answers on 127.0.0.1, a 100 MB upload arrives intact, UDP,
-P, `port`, `ps` and `inspect`, two containers on one port, the forwarder gone after
each way a container ends, and each bad input refused with exit 125 and an audit record.
Traffic goes only to 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import WORK, User
from tests.integration.conftest import audit_records

pytestmark = [pytest.mark.crun, pytest.mark.userns]

HTTPD = "httpd -f -p 80 -h /etc"       # serves /etc/hostname as GET /hostname


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate, timeout: float = 15) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def get(port: int, path: str = "/hostname") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def answers(port: int) -> bool:
    try:
        return get(port)[0] == 200
    except OSError:
        return False


def listening(port: int) -> bool:
    """Whether anything on this host listens on 127.0.0.1:port (TCP)."""
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def record(user: User, name: str) -> dict[str, object]:
    cid = user.run("inspect", "-f", "{{.Id}}", name, check=True).stdout.strip()
    path = user.home / "data" / "secpod" / "containers" / cid / "container.json"
    data: dict[str, object] = json.loads(path.read_text())
    return data


def alive(pid: object) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def holders(user: User) -> list[int]:
    """The network holders running as the test user for this test's containers."""
    out = []
    data = user.home / "data" / "secpod" / "containers"
    for f in data.glob("*/container.json") if data.is_dir() else []:
        pid = json.loads(f.read_text()).get("holder_pid")
        if pid and alive(pid):
            out.append(int(pid))
    return out


UDPECHO_C = Path(__file__).with_name("udpecho.c")


@pytest.fixture(scope="module")
def exposing_layout() -> Path:
    """busybox plus /bin/udpecho (busybox-static's nc has no UDP), with ExposedPorts
    80/tcp and 5353/udp."""
    from secpod.images.build import busybox_rootfs, write_layout

    WORK.mkdir(parents=True, exist_ok=True)
    dest = Path(tempfile.mkdtemp(prefix="exposing-", dir=WORK))
    with tempfile.TemporaryDirectory() as tmp:
        root = busybox_rootfs(Path(tmp) / "rootfs")
        subprocess.run(["gcc", "-static", "-O1", "-Wall", "-Werror", "-o",
                        str(root / "bin" / "udpecho"), str(UDPECHO_C)],
                       check=True, capture_output=True)
        write_layout(root, dest / "layout", exposed_ports=["80/tcp", "5353/udp"])
    subprocess.run(["chmod", "-R", "a+rX", str(dest)], check=True)
    dest.chmod(0o755)
    return dest / "layout"


@pytest.fixture
def exposing(user: User, exposing_layout: Path) -> str:
    user.run("image", "import", str(exposing_layout), "--name", "web:1", check=True)
    return "web:1"


def test_a_strict_server_answers_on_a_published_port(user: User, signed_busybox: str) -> None:
    port = free_port()
    r = user.run("run", "-d", "--name", "web", "--profile", "strict", "-p", f"{port}:80",
                 signed_busybox, "sh", "-c", HTTPD)
    assert r.returncode == 0, r.stderr
    wait_for(lambda: answers(port))
    status, body = get(port)
    assert status == 200 and body.strip() == r.stdout.strip()[:12].encode()  # its host name
    # inside: loopback only, no route out
    links = user.run("exec", "web", "cat", "/proc/net/dev", check=True).stdout
    assert [ln.split(":")[0].strip() for ln in links.splitlines()[2:]] == ["lo"]
    route = user.run("exec", "web", "cat", "/proc/net/route", check=True).stdout
    assert len(route.splitlines()) == 1          # the header: no route at all
    # ps, port, inspect and the audit record
    table = user.run("ps", check=True).stdout
    assert f"127.0.0.1:{port}->80/tcp" in table and "PORTS" in table.splitlines()[0]
    assert user.run("ps", "--format", "{{.Names}} {{.Ports}}", check=True).stdout == \
        f"web 127.0.0.1:{port}->80/tcp\n"
    assert user.run("port", "web", check=True).stdout == f"80/tcp -> 127.0.0.1:{port}\n"
    assert user.run("port", "web", "80", check=True).stdout == f"127.0.0.1:{port}\n"
    missing = user.run("port", "web", "81/tcp")
    assert missing.returncode == 1 and "no public port 81/tcp" in missing.stderr
    info = json.loads(user.run("inspect", "web", check=True).stdout)[0]
    assert info["HostConfig"]["NetworkMode"] == "private"
    assert info["NetworkSettings"]["Ports"] == {"80/tcp": [{"HostIp": "127.0.0.1",
                                                            "HostPort": str(port)}]}
    assert info["HostConfig"]["PortBindings"] == info["NetworkSettings"]["Ports"]
    assert info["Secpod"]["network"] == {"mode": "private", "egress": [], "ports": [
        {"host_ip": "127.0.0.1", "host_port": port, "container_port": 80, "protocol": "tcp"}]}
    create = [x for x in audit_records(user) if x["action"] == "container.create"][-1]
    assert create["details"]["network"]["mode"] == "private"  # type: ignore[index]
    assert create["details"]["network"]["ports"][0]["host_port"] == port  # type: ignore[index]
    # the server sees its peer as the container's loopback (docs/networking.md)
    config = json.loads(Path(info["Secpod"]["bundle"], "config.json").read_text())
    kinds = {ns["type"]: ns.get("path") for ns in config["linux"]["namespaces"]}
    assert kinds["network"] and kinds["user"]  # joined: the holder's, with its mappings
    assert config["linux"]["uidMappings"][0] == {"containerID": 0, "hostID": user.uid,
                                                 "size": 1}


def test_100_mb_arrive_intact_through_the_forwarder(user: User, signed_busybox: str) -> None:
    port = free_port()
    user.run("run", "-d", "--name", "sink", "--profile", "strict", "-p", f"{port}:9000",
             signed_busybox, "sh", "-c", "nc -l -p 9000 | sha256sum", check=True)
    data = os.urandom(1 << 20) * 100
    want = hashlib.sha256(data).hexdigest()
    deadline = time.monotonic() + 15
    while True:  # until the server listens inside (the forwarder resets before that)
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            s.sendall(data[:1])
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    start = time.monotonic()
    s.sendall(data[1:])
    s.shutdown(socket.SHUT_WR)
    s.recv(1)
    s.close()
    took = time.monotonic() - start
    wait_for(lambda: want in user.run("logs", "sink").stdout, timeout=30)
    assert took < 20, f"100 MB took {took:.1f} s"


def test_udp(user: User, exposing: str) -> None:
    port = free_port()
    user.run("run", "-d", "--name", "dns", "-p", f"127.0.0.1:{port}:5353/udp", exposing,
             "udpecho", "5353", check=True)
    assert user.run("port", "dns", check=True).stdout == f"5353/udp -> 127.0.0.1:{port}\n"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.5)
        replies: list[bytes] = []

        def answered() -> bool:
            s.sendto(b"hello over udp", ("127.0.0.1", port))
            try:
                replies.append(s.recvfrom(2048)[0])
            except TimeoutError:
                return False
            return True
        wait_for(answered)
        assert replies[0] == b"echo: hello over udp"
        # a second peer gets its own answers
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
            other.settimeout(5)
            other.sendto(b"second peer", ("127.0.0.1", port))
            assert other.recvfrom(2048)[0] == b"echo: second peer"
    # the server saw the datagrams from its own loopback
    assert "got hello over udp from 127.0.0.1" in user.run("logs", "dns").stdout


def test_publish_all_takes_free_ports(user: User, exposing: str) -> None:
    user.run("run", "-d", "--name", "all", "-P", exposing, "sh", "-c", HTTPD, check=True)
    lines = user.run("port", "all", check=True).stdout.splitlines()
    assert [ln.split(" -> ")[0] for ln in lines] == ["5353/udp", "80/tcp"]
    host_port = int(lines[1].rpartition(":")[2])
    assert host_port >= 1024
    wait_for(lambda: answers(host_port))


def test_two_containers_cannot_publish_one_port(user: User, busybox: str) -> None:
    port = free_port()
    user.run("run", "-d", "--name", "first", "-p", f"{port}:80", busybox, "sh", "-c", HTTPD,
             check=True)
    r = user.run("run", "-d", "--name", "second", "-p", f"{port}:80", busybox, "true")
    assert r.returncode == 125
    assert f"the host port 127.0.0.1:{port}/tcp is already in use" in r.stderr, r.stderr
    names = user.run("ps", "-a", "--format", "{{.Names}}", check=True).stdout.split()
    assert names == ["first"]
    refused = audit_records(user)[-1]
    assert refused["action"] == "container.run.refused"
    assert "network:" in str(refused["reason"]) and "already in use" in str(refused["reason"])
    wait_for(lambda: answers(port))                # the first one is untouched
    assert len(holders(user)) == 1


def _published(user: User, name: str, *cmd: str, detach: bool = True) -> tuple[int, int]:
    port = free_port()
    user.run("run", *(["-d"] if detach else []), "--name", name, "-p", f"{port}:80", *cmd,
             check=True)
    pid = int(record(user, name)["holder_pid"])  # type: ignore[call-overload]
    assert alive(pid) and listening(port)
    return port, pid


def test_the_forwarder_ends_with_the_container(user: User, busybox: str) -> None:
    server = (busybox, "sh", "-c", HTTPD)
    # stop
    port, pid = _published(user, "a", *server)
    user.run("stop", "-t", "1", "a", check=True)
    assert not alive(pid) and not listening(port)
    # started again: a new holder on the same port; then rm -f
    user.run("start", "a", check=True)
    wait_for(lambda: answers(port))
    pid = int(record(user, "a")["holder_pid"])  # type: ignore[call-overload]
    user.run("rm", "-f", "a", check=True)
    assert not alive(pid) and not listening(port)
    # the container's own exit
    port, pid = _published(user, "b", busybox, "sh", "-c", "sleep 1")
    wait_for(lambda: not alive(pid))
    assert not listening(port)
    # SIGKILL of the monitor (conmon)
    port, pid = _published(user, "c", *server)
    conmon = int(json.loads(user.run("inspect", "c", check=True).stdout)[0]
                 ["Secpod"]["monitor_pid"])
    os.kill(conmon, signal.SIGKILL)
    wait_for(lambda: not alive(pid))
    assert not listening(port)


def test_a_detached_forwarder_becomes_a_small_process(user: User, busybox: str) -> None:
    """The holder starts as a fork of secpod (docs/adr/0005); once `run -d` has let go of
    it, it is a small interpreter of its own, the same process, still forwarding."""
    port, pid = _published(user, "small", busybox, "sh", "-c", HTTPD)
    wait_for(lambda: b"_holder.resume()" in Path(f"/proc/{pid}/cmdline").read_bytes())
    wait_for(lambda: answers(port))
    for _ in range(3):
        status, _body = get(port)
        assert status == 200
    rss = next(int(line.split()[1]) for line in
               Path(f"/proc/{pid}/status").read_text().splitlines()
               if line.startswith("VmRSS:"))
    assert rss < 16 * 1024, f"{rss} kB"
    assert int(record(user, "small")["holder_pid"]) == pid  # type: ignore[call-overload]
    user.run("rm", "-f", "small", check=True)
    assert not alive(pid) and not listening(port)


def test_the_forwarder_ends_with_a_foreground_run(user: User, busybox: str) -> None:
    port = free_port()
    r = user.run("run", "--rm", "-p", f"{port}:80", busybox, "sh", "-c", "sleep 0.2")
    assert r.returncode == 0, r.stderr
    assert not listening(port) and holders(user) == []
    # SIGKILL of the foreground secpod: its holder dies with it
    proc = user.popen("run", "--name", "fg", "-p", f"{port}:80", busybox, "sh", "-c", HTTPD,
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: answers(port))
        pid = int(record(user, "fg")["holder_pid"])  # type: ignore[call-overload]
        secpod = [int(p) for p in subprocess.run(
            ["pgrep", "-u", user.name, "-f", f"{port}:80"], capture_output=True,
            text=True).stdout.split() if int(p) != pid]
        for p in secpod:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                if b"secpod" in f.read() and b"_holder" not in f.read():
                    os.kill(p, signal.SIGKILL)
        wait_for(lambda: not alive(pid))
        assert not listening(port)
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize(("flags", "message"), [
    (["-p", "70000:80"], "the host port 70000 is outside 1-65535"),
    (["-p", "8080:0"], "the container port 0 is outside 1-65535"),
    (["-p", "abc"], "the container port 'abc' is not a number"),
    (["-p", "1.2.3:8080:80"], "'1.2.3' is not an IP address"),
    (["-p", "8080:80/sctp"], "unknown protocol 'sctp'"),
    (["-p", "8080-8081:80-81"], "port ranges are not supported"),
    (["-p", "80:80"], "privileged on this host (net.ipv4.ip_unprivileged_port_start = 1024)"),
    (["--network", "host", "--profile", "strict"], "--network host is refused"),
    (["--network", "none", "-p", "8080:80"], "cannot publish ports with --network none"),
    (["--network", "bridge"], "unsupported --network 'bridge'"),
    (["--network", "pasta", "--profile", "strict"], "does not allow --network pasta"),
    (["--dns", "192.0.2.53"], "--dns needs --network pasta"),
    (["--add-host", "db"], "invalid --add-host 'db'"),
    (["-p", "8080:80", "-p", "8080:81"], "-p 127.0.0.1:8080/tcp is given twice"),
])
def test_bad_network_requests(user: User, signed_busybox: str, flags: list[str],
                              message: str) -> None:
    before = len(audit_records(user))
    r = user.run("run", "-d", "--name", "bad", *flags, signed_busybox, "true")
    assert r.returncode == 125, (r.returncode, r.stderr)
    assert message in r.stderr, r.stderr
    assert "hint:" in r.stderr
    assert user.run("ps", "-a", "-q", check=True).stdout == ""
    assert holders(user) == []
    records = audit_records(user)[before:]
    assert [x["action"] for x in records] == ["container.run.refused"], records
    assert message in str(records[0]["reason"])


def test_add_host_and_hostname(user: User, busybox: str) -> None:
    r = user.run("run", "--rm", "--hostname", "h1", "--add-host", "db:192.0.2.10",
                 busybox, "cat", "/etc/hosts", check=True)
    assert "192.0.2.10\tdb" in r.stdout and "h1" in r.stdout


def test_doctor_explains_the_tun_device(user: User) -> None:
    d = user.run("doctor", "--json")
    checks = {c["name"]: c for c in json.loads(d.stdout)["checks"]}
    ports = checks["published ports"]
    assert ports["status"] == "ok" and "net.ipv4.ip_unprivileged_port_start" in ports["detail"]
    tun = checks["tun device"]
    st = os.stat("/dev/net/tun")
    if st.st_mode & 0o006 != 0o006:     # this host: root's 0600, no udev
        assert tun["status"] == "warn" and "Permission denied" in tun["detail"]
        assert "chmod 0666 /dev/net/tun" in tun["hint"]
    else:
        assert tun["status"] == "ok"
    text = user.run("doctor").stdout
    assert "tun device" in text and "published ports" in text


def test_create_start_and_restart_keep_the_port(user: User, busybox: str) -> None:
    port = free_port()
    user.run("create", "--name", "c", "-p", f"{port}:80", busybox, "sh", "-c", HTTPD,
             check=True)
    first = int(record(user, "c")["holder_pid"])  # type: ignore[call-overload]
    assert alive(first)
    wait_for(lambda: listening(port), timeout=5)   # bound at create: nobody else takes it
    user.run("start", "c", check=True)
    wait_for(lambda: answers(port))
    user.run("restart", "-t", "1", "c", check=True)
    wait_for(lambda: answers(port))
    second = int(record(user, "c")["holder_pid"])  # type: ignore[call-overload]
    assert second != first and not alive(first) and alive(second)
    assert user.run("port", "c", check=True).stdout == f"80/tcp -> 127.0.0.1:{port}\n"
    user.run("rm", "-f", "c", check=True)
    assert not alive(second) and not listening(port)
