"""Pods (docs/pods.md, docs/adr/0008-pods.md), as the unprivileged user against real crun
and runc: members talk over 127.0.0.1 and share the hostname and IPC; the pod's port
answers the host; stop, start, restart; `pod rm -f` leaves no process, namespace holder
or listening socket; the infra's death stops the members and is audited; a member
weaker than the pod is refused; and every bad input is one clear error, an audit record
and nothing half-made. Traffic goes only to 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from tests.conftest import User
from tests.integration.conftest import audit_records
from tests.integration.test_network import alive, answers, free_port, get, listening, wait_for

pytestmark = [pytest.mark.crun, pytest.mark.userns]

HTTPD = "httpd -f -p 80 -h /etc"       # serves /etc/hostname as GET /hostname


def _pod(user: User, name: str) -> dict[str, object]:
    return json.loads(user.run("pod", "inspect", name, check=True).stdout)[0]  # type: ignore[no-any-return]


def _container(user: User, name: str) -> dict[str, object]:
    cid = user.run("inspect", "-f", "{{.Id}}", name, check=True).stdout.strip()
    path = user.home / "data" / "secpod" / "containers" / cid / "container.json"
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def _ns(pid: object, name: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{name}")


def _pid(user: User, name: str) -> int:
    return int(user.run("inspect", "-f", "{{.State.Pid}}", name, check=True).stdout)


def _in_namespace(ns: str, kind: str) -> list[int]:
    found = []
    for p in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.readlink(f"/proc/{p}/ns/{kind}") == ns and alive(p):
                found.append(int(p))
        except OSError:
            continue
    return found


@pytest.mark.parametrize("runtime", ["crun", "runc"])
def test_members_talk_over_localhost_share_the_hostname_and_the_pod_port_answers(
        user: User, signed_busybox: str, runtime: str) -> None:
    busybox = signed_busybox
    port = free_port()
    pod_id = user.run("pod", "create", "--name", "web", "--hostname", "webhost", "-p",
                      f"127.0.0.1:{port}:80", check=True).stdout.strip()
    assert len(pod_id) == 64
    # one member of each kind of root: an overlay (default) and the shared image (strict)
    user.run("run", "-d", "--runtime", runtime, "--pod", "web", "--name", "srv", busybox,
             "sh", "-c", HTTPD, check=True)
    wait_for(lambda: answers(port))
    assert get(port) == (200, b"webhost\n")          # the host reaches the pod's port
    r = user.run("run", "--rm", "--runtime", runtime, "--pod", "web", "--profile", "strict",
                 busybox, "sh", "-c", "hostname; wget -qO- http://127.0.0.1:80/hostname")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["webhost", "webhost"]
    # the same network, IPC and UTS namespaces as the infra; a pid namespace of its own
    infra = _pid(user, "web-infra")
    srv = _pid(user, "srv")
    for kind in ("user", "net", "ipc", "uts"):
        assert _ns(srv, kind) == _ns(infra, kind), kind
    assert _ns(srv, "pid") != _ns(infra, "pid")
    # ... joined through descriptors secpod held while the runtime created it
    ctr = _container(user, "srv")
    links = user.home / "data" / "secpod" / "containers" / str(ctr["id"]) / "ns"
    assert "/fd/" in os.readlink(links / "net")
    info = _pod(user, "web")
    assert info["State"] == "Running" and info["Hostname"] == "webhost"
    assert [c["Name"] for c in info["Containers"]] == ["srv"]  # type: ignore[index, union-attr]
    assert info["SharedNamespaces"] == ["user", "net", "ipc", "uts"]
    assert info["InfraConfig"] == {"PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1",
                                                               "HostPort": str(port)}]}}
    assert set(info["Secpod"]["namespaces"]) == {"user", "net", "ipc", "uts"}  # type: ignore[index]
    # the infra runs strict, whatever the pod's profile: no capability at all
    assert _container(user, "web-infra")["profile"] == "strict"
    status = Path(f"/proc/{infra}/status").read_text()
    assert "CapEff:\t0000000000000000" in status
    rows = json.loads(user.run("pod", "ps", "--format", "json", check=True).stdout)
    assert [(r["Name"], r["Status"], r["NumberOfContainers"]) for r in rows] == [
        ("web", "Running", 2)]
    assert user.run("pod", "ps", "-q", "--no-trunc", "--filter", "name=^web$", "--filter",
                    "ctr-names=srv", check=True).stdout.split() == [pod_id]
    assert user.run("pod", "ps", "-q", "--filter", "status=exited").stdout == ""
    r = user.run("pod", "ps", "--filter", "colour=red")
    assert r.returncode == 2 and "colour" in r.stderr
    top = user.run("pod", "top", "web", check=True).stdout
    assert "srv" in top and "httpd" in top
    assert user.run("pod", "exists", "web").returncode == 0
    assert user.run("pod", "exists", "nope").returncode == 1


def test_pod_stop_start_restart_and_rm_force_leave_nothing(user: User, busybox: str) -> None:
    port = free_port()
    user.run("pod", "create", "--name", "p", "-p", f"127.0.0.1:{port}:80", check=True)
    user.run("run", "-d", "--pod", "p", "--name", "srv", busybox, "sh", "-c", HTTPD,
             check=True)
    wait_for(lambda: answers(port))
    user.run("pod", "stop", "-t", "1", "p", check=True)
    assert not listening(port)
    assert _pod(user, "p")["State"] == "Exited"
    user.run("pod", "start", "p", check=True)
    wait_for(lambda: answers(port))
    # a new infra, and the member in its namespaces
    assert _ns(_pid(user, "srv"), "net") == _ns(_pid(user, "p-infra"), "net")
    user.run("pod", "restart", "-t", "1", "p", check=True)
    wait_for(lambda: answers(port))
    net = _ns(_pid(user, "p-infra"), "net")
    userns = _ns(_pid(user, "p-infra"), "user")
    holder = _container(user, "p-infra")["holder_pid"]
    assert alive(holder)
    # the infra goes with its pod, never alone
    r = user.run("rm", "-f", "p-infra")
    assert r.returncode == 1 and "is the infra of pod p" in r.stderr
    assert "hint: secpod pod rm -f p" in r.stderr
    # rm without -f refuses a running pod, and says so in the audit log
    r = user.run("pod", "rm", "p")
    assert r.returncode == 1 and "running members: srv" in r.stderr
    assert user.run("pod", "rm", "-f", "p").returncode == 0
    assert not listening(port) and not alive(holder)
    assert _in_namespace(net, "net") == []
    assert user.run("ps", "-a", "-q").stdout.strip() == ""
    assert json.loads(user.run("pod", "ps", "--format", "json").stdout) == []
    left = _in_namespace(userns, "user")
    assert left == [], [Path(f"/proc/{p}/cmdline").read_text() for p in left]
    actions = [(r["action"], r["outcome"]) for r in audit_records(user)]
    for expected in [("pod.create", "ok"), ("pod.stop", "ok"), ("pod.start", "ok"),
                     ("pod.rm", "refused"), ("pod.rm", "ok")]:
        assert expected in actions, expected


def test_the_infra_s_death_stops_the_members_and_is_recorded(user: User, busybox: str) -> None:
    user.run("pod", "create", "--name", "p", check=True)
    user.run("run", "-d", "--pod", "p", "--name", "m", "--stop-timeout", "1", busybox,
             "sleep", "600", check=True)
    os.kill(_pid(user, "p-infra"), signal.SIGKILL)
    wait_for(lambda: any(r["action"] == "pod.infra.exited" for r in audit_records(user)),
             timeout=30)
    assert user.run("inspect", "-f", "{{.State.Status}}", "m").stdout.strip() == "exited"
    records = [r for r in audit_records(user) if r["action"] == "pod.infra.exited"]
    assert len(records) == 1
    assert records[0]["details"]["stopped"] == ["m"]  # type: ignore[index]
    assert _pod(user, "p")["State"] == "Exited"
    # nothing joins a pod whose infra is gone: not a new member, not a member started again
    r = user.run("run", "--rm", "--pod", "p", busybox, "true")
    assert r.returncode == 125 and "pod p is not running" in r.stderr
    r = user.run("start", "m")
    assert r.returncode != 0 and "pod p is not running" in r.stderr
    refused = [r for r in audit_records(user) if r["action"] == "container.run.refused"]
    assert refused and str(refused[-1]["reason"]).startswith("pod: ")
    # pod start makes a new infra, and the member joins it
    user.run("pod", "start", "p", check=True)
    assert _ns(_pid(user, "m"), "net") == _ns(_pid(user, "p-infra"), "net")
    user.run("pod", "rm", "-f", "p", check=True)


def test_a_member_weaker_than_the_pod_is_refused(user: User, signed_busybox: str) -> None:
    busybox = signed_busybox
    user.run("pod", "create", "--name", "tight", "--profile", "strict", check=True)
    r = user.run("run", "--rm", "--pod", "tight", busybox, "true")   # default: weaker
    assert r.returncode == 125
    assert "pod tight runs members at profile strict or stricter" in r.stderr
    assert "capabilities: adds" in r.stderr and "hint: use --profile strict" in r.stderr
    r = user.run("run", "--rm", "--pod", "tight", "--profile", "strict", "--cap-add",
                 "CHOWN", busybox, "true")
    assert r.returncode == 125 and "CAP_CHOWN" in r.stderr
    assert user.run("run", "--rm", "--pod", "tight", "--profile", "strict", busybox,
                    "true").returncode == 0
    refused = [r for r in audit_records(user) if r["action"] == "container.run.refused"]
    assert len(refused) == 2
    assert user.run("ps", "-a", "--format", "{{.Names}}").stdout.split() == ["tight-infra"]
    user.run("pod", "rm", "-f", "tight", check=True)


def test_bad_input_is_refused_with_nothing_half_made(user: User, busybox: str) -> None:
    def nothing_left() -> None:
        assert json.loads(user.run("pod", "ps", "--format", "json").stdout) == [
            ] or [p["Name"] for p in json.loads(user.run("pod", "ps", "--format",
                                                         "json").stdout)] == ["a"]

    cases = [
        (["pod", "create", "--name", "bad/name"], 2, "invalid pod name 'bad/name'"),
        (["pod", "create", "--name", "x", "--share", "pid"], 2, "a pod shares only"),
        (["pod", "create", "--name", "x", "--profile", "nosuch"], 1, "nosuch"),
    ]
    for argv, code, words in cases:
        r = user.run(*argv)
        assert (r.returncode, words in r.stderr) == (code, True), (argv, r.stderr)
        nothing_left()
    port = free_port()
    user.run("pod", "create", "--name", "a", "-p", f"127.0.0.1:{port}:80", check=True)
    r = user.run("pod", "create", "--name", "a")
    assert r.returncode == 1 and "the pod name 'a' is in use" in r.stderr
    # a port in use: the second pod is not made, nor its infra or holder
    r = user.run("pod", "create", "--name", "b", "-p", f"127.0.0.1:{port}:80")
    assert r.returncode == 1 and "already in use" in r.stderr, r.stderr
    nothing_left()
    assert user.run("ps", "-a", "--format", "{{.Names}}").stdout.split() == ["a-infra"]
    member_cases = [
        (["--pod", "nope"], "no such pod: nope"),
        (["--pod", "a", "-p", "9999:80"], "publishes no port of its own"),
        (["--pod", "a", "--hostname", "h"], "has the pod's hostname"),
        (["--pod", "a", "--network", "none"], "is in the pod's network"),
    ]
    for flags, words in member_cases:
        r = user.run("run", "--rm", *flags, busybox, "true")
        assert r.returncode in (2, 125) and words in r.stderr, (flags, r.stderr)
    assert user.run("ps", "-a", "--format", "{{.Names}}").stdout.split() == ["a-infra"]
    actions = [(r["action"], r["outcome"]) for r in audit_records(user)]
    assert actions.count(("pod.create", "refused")) >= 5
    assert actions.count(("container.run.refused", "refused")) == len(member_cases)
    user.run("pod", "rm", "-f", "a", check=True)
    assert not listening(port)


def test_members_share_a_volume_and_ipc(user: User, busybox: str) -> None:
    user.run("pod", "create", "--name", "p", check=True)
    user.run("run", "-d", "--pod", "p", "--name", "w", "-v", "shared:/data", busybox, "sh",
             "-c", "echo from-w > /data/note; sleep 600", check=True)
    wait_for(lambda: user.run("run", "--rm", "--pod", "p", "-v", "shared:/data:ro", busybox,
                              "cat", "/data/note").stdout == "from-w\n")
    a = user.run("exec", "w", "readlink", "/proc/self/ns/ipc", check=True).stdout
    b = user.run("run", "--rm", "--pod", "p", busybox, "readlink", "/proc/self/ns/ipc",
                 check=True).stdout
    assert a == b
    # --share net only: a member has an IPC namespace (and hostname) of its own
    user.run("pod", "create", "--name", "q", "--share", "net", check=True)
    c = user.run("run", "--rm", "--pod", "q", busybox, "sh", "-c",
                 "readlink /proc/self/ns/ipc; hostname", check=True).stdout.split()
    assert c[0] != _ns(_pid(user, "q-infra"), "ipc") and c[1] != "q"
    assert _pod(user, "q")["SharedNamespaces"] == ["user", "net"]
    user.run("pod", "rm", "-f", "p", "q", check=True)
    assert user.run("volume", "rm", "shared").returncode == 0
