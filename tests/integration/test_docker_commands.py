"""Docker's other commands against real crun (issue 16): info, system df/prune, container
and image prune, image inspect and history in Docker's shape (compared with Debian's
podman 4.3.1 on the same image), ps -s, and pause refused where there is no freezer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import User
from tests.integration.conftest import audit_records

pytestmark = [pytest.mark.crun, pytest.mark.userns]


def _podman(user: User, *args: str) -> subprocess.CompletedProcess[str]:
    return user.sh(["podman", "--cgroup-manager=cgroupfs", "--storage-driver=vfs", *args],
                   timeout=300)


def test_info_text_json_and_template(user: User, busybox: str) -> None:
    user.run("create", "--name", "one", busybox, "true", check=True)
    facts = json.loads(user.run("info", "--format", "json", check=True).stdout)
    theirs = json.loads(_podman(user, "info", "--format", "json").stdout)
    # the keys a script reads from `podman info --format json` are where podman has them
    assert {"host", "store", "version"} <= set(theirs) and set(facts) - set(theirs) == {"secpod"}
    for key in ("arch", "os", "kernel", "hostname", "cpus", "memTotal", "cgroupVersion",
                "cgroupManager", "conmon", "ociRuntime", "idMappings", "security",
                "distribution"):
        assert key in theirs["host"] and key in facts["host"], key
    for key in ("arch", "os", "kernel", "cpus", "cgroupVersion"):
        assert facts["host"][key] == theirs["host"][key], key
    assert facts["host"]["security"]["rootless"] is theirs["host"]["security"]["rootless"] is True
    assert facts["host"]["idMappings"]["uidmap"][0] == {
        "containerID": 0, "hostID": user.uid, "size": 1}
    assert facts["store"]["containerStore"] == {"number": 1, "running": 0, "paused": 0,
                                                "stopped": 1}
    assert facts["store"]["imageStore"]["number"] == 1
    assert facts["store"]["graphRoot"] == str(user.home / "data" / "secpod")
    assert facts["secpod"]["resourceLimitsEnforced"] is False
    assert any("pause and unpause" in line for line in facts["secpod"]["notEnforced"])
    fmt = "{{.Host.Arch}} {{.Host.Security.Rootless}} {{.Store.ContainerStore.Number}}"
    assert user.run("info", "--format", fmt).stdout == f"{facts['host']['arch']} true 1\n"
    assert _podman(user, "info", "--format", "{{.Host.Arch}} {{.Host.Security.Rootless}}"
                   ).stdout == f"{facts['host']['arch']} true\n"
    text = user.run("info", check=True).stdout
    assert "host:\n  arch: " in text and "\n  security:\n    rootless: true" in text


def test_image_inspect_and_history_in_dockers_shape(user: User, busybox: str) -> None:
    tar = user.home / "box.tar"
    user.run("save", "-o", str(tar), busybox, check=True)
    assert _podman(user, "load", "-i", str(tar)).returncode == 0
    # (.Created is not compared: this image has none, which Podman prints as <nil> and
    # Docker, as secpod, as its zero time)
    fmt = "{{.Architecture}} {{.Os}} {{json .Config.Cmd}} {{len .RootFS.Layers}} " \
          "{{.RootFS.Type}} {{.Config.WorkingDir}}"
    ours = user.run("image", "inspect", "--format", fmt, busybox)
    theirs = _podman(user, "image", "inspect", "--format", fmt, busybox)
    assert ours.returncode == 0 and ours.stdout == theirs.stdout, (ours.stderr, theirs.stdout)
    info = json.loads(user.run("image", "inspect", busybox, check=True).stdout)
    assert len(info) == 1
    image = info[0]
    assert image["RepoTags"] == ["busybox:latest"]
    assert image["Id"] == image["Secpod"]["config_digest"]
    assert image["RepoDigests"] == [f"busybox@{image['Secpod']['digest']}"]
    podman_id = _podman(user, "image", "inspect", "--format", "{{.Id}}", busybox).stdout
    assert image["Id"] == "sha256:" + podman_id.strip()  # Docker's Id: the config's digest
    assert image["RootFS"]["Layers"] == json.loads(_podman(
        user, "image", "inspect", "--format", "{{json .RootFS.Layers}}", busybox).stdout)
    assert set(image) >= {"Id", "RepoTags", "RepoDigests", "Created", "Size", "Architecture",
                          "Os", "Config", "RootFS", "History", "Secpod"}
    r = user.run("image", "inspect", "nothere:1")
    assert r.returncode == 1 and "no such image: nothere:1" in r.stderr

    rows = [json.loads(x) for x in user.run("history", "--format", "json", busybox,
                                            check=True).stdout.splitlines()]
    assert rows and rows[0]["ID"] == image["Id"]
    assert sum(r["Size"] for r in rows) == sum(x["size"] for x in image["Secpod"]["layers"])
    table = user.run("image", "history", busybox, check=True).stdout.splitlines()
    assert table[0].split()[:3] == ["IMAGE", "CREATED", "CREATED"]
    assert len(table) == len(rows) + 1
    assert user.run("history", "-q", busybox).stdout.split()[0] == image["Id"][7:19]


def test_ps_size_and_system_df(user: User, busybox: str) -> None:
    user.run("run", "--name", "w", "--read-only=false", busybox, "sh", "-c",
             "dd if=/dev/zero of=/big bs=1k count=300 2>/dev/null", check=True)
    out = user.run("ps", "-a", "-s", "--format", "{{.Names}} {{.Size}}").stdout
    name, own, _, virtual = out.split()
    # its own: what it wrote in its overlay's upper folder (/big), no copy of the image
    assert name == "w" and own.endswith("kB") and 300 <= float(own[:-2]) < 1000, out
    assert virtual.endswith("MB)") and float(virtual[:-3]) * 1000 > float(own[:-2])
    assert "SIZE" in user.run("ps", "-a", "--size").stdout.splitlines()[0]
    rows = [json.loads(x) for x in user.run("system", "df", "--format", "json").stdout.splitlines()]
    by = {r["Type"]: r for r in rows}
    assert (by["Images"]["TotalCount"], by["Images"]["Active"]) == (1, 1)
    assert (by["Containers"]["TotalCount"], by["Containers"]["Active"]) == (1, 0)
    assert by["Containers"]["RawReclaimable"] == by["Containers"]["RawSize"] >= 300_000
    assert by["Images"]["RawReclaimable"] == 0
    table = user.run("system", "df").stdout.splitlines()
    assert table[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]


def test_prunes(user: User, busybox: str) -> None:
    running = user.run("run", "-d", busybox, "sleep", "60", check=True).stdout.strip()
    exited = user.run("run", "-d", busybox, "true", check=True).stdout.strip()
    user.run("wait", exited, check=True)
    created = user.run("create", busybox, "true", check=True).stdout.strip()
    # asks first; anything but yes keeps everything
    r = user.run("container", "prune", input="n\n")
    assert r.returncode == 1 and "Are you sure you want to continue? [y/N]" in r.stderr
    assert len(user.run("ps", "-a", "-q").stdout.split()) == 3
    r = user.run("container", "prune", input="y\n")
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.splitlines()[:-1]) == sorted([exited, created])
    assert r.stdout.splitlines()[-1].startswith("Total reclaimed space: ")
    assert user.run("ps", "-a", "-q", "--no-trunc").stdout == running + "\n"
    removed = [a for a in audit_records(user) if a["action"] == "container.rm"]
    assert {a["container"]["id"] for a in removed} >= {exited, created}  # type: ignore[index]

    user.run("tag", busybox, "other:1", check=True)
    assert user.run("image", "prune", "-f").stdout == "Total reclaimed space: 0B\n"
    r = user.run("image", "prune", "-a", "-f")  # the image a container uses stays
    assert r.returncode == 0 and r.stdout == "Total reclaimed space: 0B\n", r.stderr
    r = user.run("system", "prune", "--volumes", "-f")
    assert r.returncode == 2 and "only named ones" in r.stderr
    user.run("rm", "-f", running, check=True)
    r = user.run("system", "prune", "-a", "-f")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Deleted Images:\nsha256:"), r.stdout
    assert user.run("images", "-q").stdout == ""
    r = user.run("system", "prune", input="")  # no answer: no
    assert r.returncode == 1


def test_pause_is_refused_without_a_freezer(user: User, busybox: str) -> None:
    user.run("run", "-d", "--name", "p", busybox, "sleep", "60", check=True)
    for word in ("pause", "unpause"):
        r = user.run(word, "p")
        assert r.returncode == 1, r.stderr
        assert f"cannot {word} p: no cgroup is delegated to this user" in r.stderr
        assert "no freezer" in r.stderr and "hint:" in r.stderr
    refused = [a for a in audit_records(user) if a["action"] in ("container.pause",
                                                                 "container.unpause")]
    assert [a["outcome"] for a in refused] == ["refused", "refused"]
    assert json.loads(user.run("inspect", "p").stdout)[0]["State"]["Status"] == "running"
    r = user.run("pause", "nope")
    assert r.returncode == 1 and "No such container: nope" in r.stderr


def test_alias_docker_script_with_the_newer_flags(user: User, busybox: str) -> None:
    """A script as people write them for Docker, with --init, --cidfile, --label,
    --stop-timeout, info, image inspect and prune."""
    script = user.file("job2.sh", f"""#!/bin/bash
set -euo pipefail
shopt -s expand_aliases
alias docker=secpod
rm -f job.cid
docker run -d --init --cidfile job.cid --label app=job --stop-timeout 2 \\
  {busybox} sh -c 'sleep 30' >/dev/null
id=$(cat job.cid)
test "$(docker ps --filter label=app=job -q --no-trunc)" = "$id"
test "$(docker inspect -f '{{{{.HostConfig.Init}}}} {{{{.Config.StopTimeout}}}}' "$id")" = "true 2"
docker stop "$id" >/dev/null
echo "exit $(docker wait "$id")"
echo "arch $(docker info --format '{{{{.Host.Arch}}}}')"
echo "os $(docker image inspect -f '{{{{.Os}}}}' {busybox})"
docker container prune -f | tail -n 1 | cut -d: -f1
docker ps -aq | wc -l
""", mode=0o755)
    r = user.sh(["bash", str(script)])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] in ("exit 0", "exit 143", "exit 137"), lines  # catatonit passes TERM on
    assert lines[1].startswith("arch ") and lines[2] == "os linux"
    assert lines[3:] == ["Total reclaimed space", "0"], lines


def test_stats_no_stream_from_proc(user: User, busybox: str) -> None:
    user.run("run", "-d", "--name", "busy", busybox, "sh", "-c", "while :; do :; done",
             check=True)
    user.run("run", "-d", "--name", "idle", busybox, "sleep", "60", check=True)
    user.run("run", "--name", "done", busybox, "true", check=True)
    r = user.run("stats", "--no-stream", "--format", "json")
    assert r.returncode == 0, r.stderr
    rows = {x["Name"]: x for x in json.loads(r.stdout)}
    assert set(rows) == {"busy", "idle"}
    assert rows["busy"]["CPU"] > 20 and rows["idle"]["CPU"] < 20, rows
    assert rows["busy"]["PIDs"] == "1" and rows["busy"]["MemBytes"] > 0
    assert rows["busy"]["NetIO"] == "--" and rows["busy"]["BlockIO"] == "--"
    table = user.run("stats", "--no-stream", "-a")
    lines = table.stdout.splitlines()
    assert lines[0].split()[:4] == ["CONTAINER", "ID", "NAME", "CPU"] and len(lines) == 4
    assert "from /proc (no cgroup is delegated" in table.stderr
    assert user.run("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", "idle"
                    ).stdout == "idle 1\n"
    r = user.run("stats", "--no-stream", "nope")
    assert r.returncode == 1 and "No such container: nope" in r.stderr
    user.run("rm", "-f", "busy", "idle", check=True)


def test_untag_keeps_the_image_until_a_prune(user: User, busybox: str) -> None:
    user.run("tag", busybox, "mine/a:1", check=True)
    user.run("tag", busybox, "mine/b:2", check=True)
    digest = json.loads(user.run("image", "inspect", busybox).stdout)[0]["Digest"]
    r = user.run("untag", busybox, "mine/a:1")
    assert (r.returncode, r.stdout) == (0, "untagged: mine/a:1\n"), r.stderr
    r = user.run("image", "untag", "mine/b:2", "nosuch:1")
    assert r.returncode == 1 and "has no name nosuch:1" in r.stderr
    assert "mine/b:2" in user.run("images").stdout  # nothing half-done
    r = user.run("untag", digest)
    assert sorted(r.stdout.splitlines()) == ["untagged: busybox:latest", "untagged: mine/b:2"]
    assert json.loads(user.run("image", "inspect", digest).stdout)[0]["RepoTags"] == []
    assert user.run("images", "-f", "dangling=true", "-q").stdout.strip() != ""
    r = user.run("image", "prune", "-f")
    assert r.stdout.splitlines()[0] == digest, r.stdout
    assert user.run("image", "inspect", digest).returncode == 1
    untags = [a for a in audit_records(user) if a["action"] == "image.untag"]
    assert [a["outcome"] for a in untags] == ["ok", "error", "ok"]


def test_attach_follows_the_output_and_returns_the_exit_status(user: User, busybox: str) -> None:
    script = "sleep 1; for i in 0 1 2; do echo out $i; echo err $i >&2; sleep 0.2; done; exit 3"
    user.run("run", "-d", "--name", "att", busybox, "sh", "-c", script, check=True)
    r = user.run("attach", "att", timeout=60)
    assert r.returncode == 3, r.stderr
    assert "out 2" in r.stdout and "err" not in r.stdout
    assert "err 2" in r.stderr
    # an exited container: Docker's refusal, exit 1, and the reason
    again = user.run("attach", "att")
    assert again.returncode == 1 and "is not running" in again.stderr and "hint:" in again.stderr
    user.run("rm", "att", check=True)



def test_start_attach_follows_from_the_first_byte_and_exits_with_its_status(
        user: User, busybox: str) -> None:
    script = "echo first; echo err1 >&2; echo second; exit 5"
    user.run("create", "--name", "sa", busybox, "sh", "-c", script, check=True)
    r = user.run("start", "-a", "sa", timeout=60)
    assert (r.returncode, r.stdout) == (5, "first\nsecond\n"), r.stderr
    assert "err1" in r.stderr and "sa" not in r.stdout   # not the name `start` prints
    # an exited container is started again, attached as well
    again = user.run("start", "--attach", "sa", timeout=60)
    assert (again.returncode, again.stdout) == (5, "first\nsecond\n"), again.stderr
    starts = [a for a in audit_records(user) if a["action"] == "container.start"]
    assert len(starts) == 2
    # one container at a time, as Docker; -i needs a container made with -i
    two = user.run("start", "-a", "sa", "sa")
    assert two.returncode == 2 and "one container at a time" in two.stderr
    no_stdin = user.run("start", "-ai", "sa")
    assert no_stdin.returncode == 1 and "made without -i" in no_stdin.stderr
    assert "hint:" in no_stdin.stderr
    user.run("rm", "sa", check=True)
    # --rm: the status all the same (the record goes with the removal, right after)
    for n in range(3):
        user.run("create", "--rm", "--name", f"gone{n}", busybox, "sh", "-c", "echo bye; exit 3",
                 check=True)
        r = user.run("start", "-a", f"gone{n}", timeout=60)
        assert (r.returncode, r.stdout) == (3, "bye\n"), r.stderr
    assert user.run("ps", "-a", "-q").stdout == ""


def test_start_attach_of_a_running_container_attaches(user: User, busybox: str) -> None:
    script = "sleep 1; echo late; exit 4"
    user.run("run", "-d", "--name", "sr", busybox, "sh", "-c", script, check=True)
    r = user.run("start", "-a", "sr", timeout=60)
    assert (r.returncode, r.stdout) == (4, "late\n"), r.stderr
    user.run("rm", "sr", check=True)


def test_start_ai_and_attach_pass_stdin_to_a_container_made_with_i(
        user: User, busybox: str) -> None:
    script = 'read line; echo "got $line"; cat; echo end'
    user.run("create", "-i", "--name", "si", busybox, "sh", "-c", script, check=True)
    r = user.run("start", "-ai", "si", input="one\ntwo\nthree\n", timeout=60)
    assert (r.returncode, r.stdout) == (0, "got one\ntwo\nthree\nend\n"), r.stderr
    # a running -i container: attach writes to its stdin (the end of ours ends its cat)
    user.run("run", "-d", "-i", "--name", "ri", busybox, "sh", "-c",
             'read line; echo "got $line"; exit 6', check=True)
    r = user.run("attach", "ri", input="x\n", timeout=60)
    assert (r.returncode, r.stdout) == (6, "got x\n"), r.stderr
    user.run("rm", "si", "ri", check=True)

def test_attach_passes_a_signal_on_and_records_it(user: User, busybox: str) -> None:
    # sh as PID 1 with a TERM trap: it exits 7 when the signal reaches it
    script = "trap 'exit 7' TERM; while :; do sleep 0.1; done"
    user.run("run", "-d", "--name", "sig", busybox, "sh", "-c", script, check=True)
    proc = user.popen("attach", "sig", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # once secpod holds the monitor's socket, its signal handlers are in place
        for _ in range(300):
            fds = Path(f"/proc/{proc.pid}/fd")
            if any(os.readlink(f).startswith("socket:") for f in fds.iterdir()):
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        user.run("rm", "-f", "sig")
    assert proc.returncode == 7, err
    assert "SIGTERM passed to the container" in err
    kills = [r for r in audit_records(user) if r["action"] == "container.kill"]
    assert kills and kills[-1]["details"]["signal"] == "TERM"
