"""secpod-user-generator as a user: Quadlet files into units that systemd-analyze verifies
without a warning, and whose commands run the container."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import SECPOD_BIN, User
from tests.integration.test_network import answers, free_port, listening, wait_for
from tests.integration.test_units import _notified, exec_words

pytestmark = [pytest.mark.crun, pytest.mark.userns]

GENERATOR = str(SECPOD_BIN.parent / "secpod-user-generator")


def _quadlet(user: User, name: str, text: str) -> Path:
    return user.file(f"config/containers/systemd/{name}", text)


def test_generator_units_verify_and_run(user: User, busybox: str) -> None:
    _quadlet(user, "web.container", """[Unit]
Description=a quadlet web

[Container]
Image=busybox:latest
Exec=sh -c 'echo hello > /data/greeting; sleep 60'
Volume=data.volume:/data
Environment=WHO=world
StopTimeout=2

[Install]
WantedBy=default.target
""")
    _quadlet(user, "data.volume", "[Volume]\nVolumeName=webdata\n")
    dry = user.sh([GENERATOR, "--dryrun"])
    assert dry.returncode == 0, dry.stderr
    assert "---web.service---" in dry.stdout and "---data-volume.service---" in dry.stdout
    out = user.home / "gen"
    r = user.sh([GENERATOR, str(out), str(out), str(out)])
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert (out / "default.target.wants" / "web.service").is_symlink()
    v = subprocess.run(["systemd-analyze", "verify", str(out / "web.service"),
                        str(out / "data-volume.service")], capture_output=True, text=True,
                       timeout=120)
    assert v.returncode == 0 and v.stdout == "" and v.stderr == "", (v.stdout, v.stderr)
    web = (out / "web.service").read_text()
    assert web == dry.stdout.split("---web.service---\n")[1].split("(enabled")[0]
    # as systemd would: the volume, then the container
    vol = (out / "data-volume.service").read_text()
    user.sh(exec_words(vol, "ExecStart"), check=True)
    user.sh(exec_words(web, "ExecStartPre"))
    user.sh(exec_words(web, "ExecStart"), check=True)
    info = json.loads(user.run("inspect", "systemd-web", check=True).stdout)[0]
    assert info["State"]["Status"] == "running"
    assert "WHO=world" in info["Config"]["Env"]
    folder = user.home / "data" / "secpod" / "volumes" / "webdata"
    assert any(m["Source"] == str(folder) and m["Destination"] == "/data"
               for m in info["Mounts"])
    for _ in range(50):
        if (folder / "greeting").exists():
            break
        subprocess.run(["sleep", "0.1"], check=True)
    assert (folder / "greeting").read_text() == "hello\n"
    user.sh(exec_words(web, "ExecStop"))
    user.sh(exec_words(web, "ExecStopPost"))
    assert user.run("inspect", "systemd-web").returncode == 1


def test_bad_files_are_refused_by_file_line_and_key(user: User, busybox: str) -> None:
    _quadlet(user, "bad.container", "[Container]\nImage=busybox:latest\nPublishPort=8080:80\n")
    _quadlet(user, "odd.container", "[Container]\nImage=busybox:latest\nColour=red\n")
    _quadlet(user, "ok.container", "[Container]\nImage=busybox:latest\n")
    out = user.home / "gen"
    r = user.sh([GENERATOR, str(out), str(out), str(out)])
    assert r.returncode == 1
    folder = user.home / "config" / "containers" / "systemd"
    assert f"{folder}/bad.container:3: PublishPort: not supported yet" in r.stderr, r.stderr
    assert f"{folder}/odd.container:3: Colour: unknown key in [Container]" in r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["ok.service"]  # no half: nothing else


def test_a_unit_for_an_image_the_policy_rejects_fails_to_start(user: User,
                                                                 busybox: str) -> None:
    user.run("trust", "set", "--type", "reject", "default", check=True)
    _quadlet(user, "nope.container", "[Container]\nImage=busybox:latest\n")
    out = user.home / "gen"
    user.sh([GENERATOR, str(out)], check=True)
    r = user.sh(exec_words((out / "nope.service").read_text(), "ExecStart"))
    assert r.returncode == 125 and "the trust policy rejects" in r.stderr, r.stderr
    assert user.run("ps", "-a", "-q").stdout.strip() == ""


def _verify(*paths: Path) -> None:
    v = subprocess.run(["systemd-analyze", "verify", *map(str, paths)], capture_output=True,
                       text=True, timeout=120)
    assert v.returncode == 0 and v.stdout == "" and v.stderr == "", (v.stdout, v.stderr)


def test_a_pod_file_makes_the_pod_its_members_join(user: User, busybox: str) -> None:
    port = free_port()
    _quadlet(user, "shop.pod", "[Pod]\nPodName=shop\nHostName=front\nLabel=tier=front\n"
                               f"PublishPort=127.0.0.1:{port}:80\n"
                               "[Install]\nWantedBy=default.target\n")
    _quadlet(user, "app.container", "[Container]\nImage=busybox:latest\nPod=shop.pod\n"
                                    "Exec=httpd -f -p 80 -h /etc\nStopTimeout=2\n")
    out = user.home / "gen"
    r = user.sh([GENERATOR, str(out)])
    assert r.returncode == 0 and r.stderr == "", r.stderr
    _verify(out / "shop-pod.service", out / "app.service")
    pod_unit = (out / "shop-pod.service").read_text()
    app_unit = (out / "app.service").read_text()
    assert "BindsTo=shop-pod.service" in app_unit.splitlines()
    # as systemd would: the pod's unit (ready once its infra runs), then the member's
    user.sh(exec_words(pod_unit, "ExecStartPre"))
    _out, message = _notified(user, exec_words(pod_unit, "ExecStart"))
    infra = json.loads(user.run("inspect", "shop-infra", check=True).stdout)[0]
    assert message == f"MAINPID={infra['Secpod']['monitor_pid']}\nREADY=1\n"
    user.sh(exec_words(app_unit, "ExecStartPre"))
    _notified(user, exec_words(app_unit, "ExecStart"))
    pod = json.loads(user.run("pod", "inspect", "shop", check=True).stdout)[0]
    assert pod["State"] == "Running" and pod["Labels"] == {"tier": "front"}
    assert [c["Name"] for c in pod["Containers"]] == ["systemd-app"]
    assert user.run("exec", "systemd-app", "hostname", check=True).stdout == "front\n"
    wait_for(lambda: answers(port))     # the pod's port, the member's server
    for unit in (app_unit, pod_unit):
        for key in ("ExecStop", "ExecStopPost"):
            user.sh(exec_words(unit, key))
    assert user.run("pod", "inspect", "shop").returncode == 1
    assert not listening(port)
    assert user.run("ps", "-a", "-q").stdout.strip() == ""


def test_a_kube_file_plays_and_downs_the_yaml(user: User, busybox: str) -> None:
    _quadlet(user, "web.yaml", f"""\
apiVersion: v1
kind: Pod
metadata:
  name: kweb
spec:
  containers:
  - name: app
    image: {busybox}
    command: ["sleep", "60"]
""")
    _quadlet(user, "web.kube", "[Kube]\nYaml=web.yaml\n[Install]\nWantedBy=default.target\n")
    _quadlet(user, "bad.kube", "[Kube]\nYaml=web.yaml\nPublishPort=8080:80\n")
    out = user.home / "gen"
    r = user.sh([GENERATOR, str(out)])
    folder = user.home / "config" / "containers" / "systemd"
    assert r.returncode == 1
    assert f"{folder}/bad.kube:3: PublishPort: not supported: publish the ports in the " \
        "YAML" in r.stderr, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["default.target.wants", "web.service"]
    _verify(out / "web.service")
    unit = (out / "web.service").read_text()
    user.sh(exec_words(unit, "ExecStart"), check=True)
    pod = json.loads(user.run("pod", "inspect", "kweb", check=True).stdout)[0]
    assert pod["State"] == "Running"
    user.sh(exec_words(unit, "ExecStart"), check=True)   # --replace: a restart makes it anew
    assert json.loads(user.run("pod", "inspect", "kweb", check=True).stdout)[0]["Id"] != \
        pod["Id"]
    user.sh(exec_words(unit, "ExecStop"), check=True)
    assert user.run("pod", "inspect", "kweb").returncode == 1
    assert user.run("ps", "-a", "-q").stdout.strip() == ""
