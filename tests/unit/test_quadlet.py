"""Quadlet .container, .volume, .pod and .kube files into units; every refusal names file, line, key."""

from __future__ import annotations

from pathlib import Path

import pytest

from secpod.services import quadlet

SECPOD = ["/usr/bin/secpod"]


def _gen(tmp_path: Path, files: dict[str, str]) -> tuple[list[quadlet.Unit], list[str]]:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return quadlet.generate(quadlet.collect([tmp_path]), SECPOD)


def test_a_container_file(tmp_path: Path) -> None:
    units, problems = _gen(tmp_path, {
        "web.container": """# a web server
[Unit]
Description=the web

[Container]
Image=docker.io/library/busybox:latest
Exec=httpd -f -p 8080 -h "/srv/my www"
Environment=A=1 "B=two words"
Volume=%h/site:/srv:ro
Volume=data.volume:/data
ReadOnly=true
AddCapability=NET_BIND_SERVICE
User=101
StopTimeout=5

[X-Secpod]
Profile=strict

[Service]
Restart=always

[Install]
WantedBy=default.target
""",
        "data.volume": "[Volume]\nVolumeName=webdata\n"})
    assert problems == []
    by = {u.name: u for u in units}
    assert set(by) == {"web.service", "data-volume.service"}
    web = by["web.service"].text.splitlines()
    start = next(ln for ln in web if ln.startswith("ExecStart="))
    folder = quadlet.volume_dir("webdata")
    assert start == (
        "ExecStart=/usr/bin/secpod run -d --rm --name systemd-web --sdnotify conmon "
        '-e A=1 -e "B=two words" -v "%h/site:/srv:ro" -v ' + f"{folder}:/data "
        "--read-only=true --cap-add NET_BIND_SERVICE --profile strict --user 101 "
        'docker.io/library/busybox:latest httpd -f -p 8080 -h "/srv/my www"')
    assert "Requires=data-volume.service" in web and "After=data-volume.service" in web
    assert "Description=the web" in web and "Restart=always" in web
    assert "ExecStop=-/usr/bin/secpod stop -t 5 systemd-web" in web
    assert "Type=notify" in web and "NotifyAccess=all" in web
    assert by["web.service"].wanted_by == ("default.target",)
    vol = by["data-volume.service"].text
    assert f"ExecStart=/bin/mkdir -p -m 0700 {folder}" in vol and "Type=oneshot" in vol


@pytest.mark.parametrize(("line", "words"), [
    ("Colour=red", ":3: Colour: unknown key in [Container]"),
    ("PublishPort=8080:80", ":3: PublishPort: not supported yet: published ports"),
    ("Network=host", ":3: Network: not supported yet"),
    ("Pod=mypod.pod", ":3: Pod: there is no mypod.pod beside it"),
    ("Pod=mypod", ":3: Pod: give a NAME.pod file beside it"),
    ("Notify=true", ":3: Notify: not supported yet"),
    ("Volume=named:/data", ":3: Volume: named volumes are not supported"),
    ("Volume=other.volume:/data", ":3: Volume: there is no other.volume beside it"),
    ("ReadOnly=maybe", ":3: ReadOnly: 'maybe' is not a boolean"),
    ("Exec=sh -c 'unclosed", ":3: Exec: cannot split the words"),
])
def test_refusals_name_file_line_and_key(tmp_path: Path, line: str, words: str) -> None:
    units, problems = _gen(tmp_path, {
        "bad.container": f"[Container]\nImage=busybox\n{line}\n",
        "good.container": "[Container]\nImage=busybox\n"})
    assert [u.name for u in units] == ["good.service"]  # the bad file makes no unit
    assert len(problems) == 1 and problems[0].startswith(str(tmp_path / "bad.container"))
    assert words in problems[0], problems[0]


def test_malformed_files(tmp_path: Path) -> None:
    cases = {
        "a.container": "Image=busybox\n",
        "b.container": "[Container\nImage=busybox\n",
        "c.container": "[Container]\njust words\n",
        "d.container": "[Container]\nExec=true\n",
        "e.container": "[Elsewhere]\nX=1\n",
        "f.volume": "[Volume]\nDriver=local\n",
        "g.container": "[X-Secpod]\nColour=red\n[Container]\nImage=busybox\n",
    }
    units, problems = _gen(tmp_path, cases)
    assert units == []
    text = "\n".join(problems)
    for want in ("a.container:1: Image= is outside any section",
                 "b.container:1: a section header must end with ']'",
                 "c.container:2: not KEY=VALUE", "d.container: no Image= in [Container]",
                 "e.container:2: unknown section [Elsewhere]",
                 "f.volume:2: Driver: not supported yet",
                 "g.container:2: Colour: unknown key in [X-Secpod]"):
        assert want in text, (want, text)


def test_earlier_folders_hide_the_same_name(tmp_path: Path) -> None:
    mine, admin = tmp_path / "mine", tmp_path / "admin"
    mine.mkdir()
    admin.mkdir()
    (mine / "web.container").write_text("[Container]\nImage=mine\n")
    (admin / "web.container").write_text("[Container]\nImage=admins\n")
    (admin / "db.container").write_text("[Container]\nImage=db\n")
    assert quadlet.collect([mine, admin, tmp_path / "none"]) == [admin / "db.container",
                                                                 mine / "web.container"]


def test_write_makes_the_wants_links(tmp_path: Path) -> None:
    units, _ = _gen(tmp_path, {"w.container": "[Container]\nImage=busybox\n"
                                              "[Install]\nWantedBy=default.target\n"})
    out = tmp_path / "out"
    quadlet.write(units, out)
    assert (out / "w.service").read_text() == units[0].text
    assert (out / "default.target.wants" / "w.service").resolve() == (out / "w.service")


def test_a_pod_file_and_its_members(tmp_path: Path) -> None:
    units, problems = _gen(tmp_path, {
        "web.pod": "[Pod]\nPodName=shop\nPublishPort=127.0.0.1:8080:80\nHostName=front\n"
                   "Label=tier=front app=shop\n[X-Secpod]\nProfile=strict\n"
                   "[Install]\nWantedBy=default.target\n",
        "app.container": "[Container]\nImage=busybox\nPod=web.pod\n",
        "side.container": "[Container]\nImage=busybox\nPod=web.pod\nStopTimeout=3\n",
        "alone.pod": "[Pod]\n"})
    assert problems == []
    by = {u.name: u for u in units}
    assert sorted(by) == ["alone-pod.service", "app.service", "side.service",
                          "web-pod.service"]
    pod = by["web-pod.service"].text.splitlines()
    assert ("ExecStart=/usr/bin/secpod pod create --name shop -p 127.0.0.1:8080:80 "
            "--hostname front --label tier=front --label app=shop --profile strict") in pod
    assert "ExecStartPre=-/usr/bin/secpod pod rm -f shop" in pod
    assert "ExecStop=-/usr/bin/secpod pod stop shop" in pod
    assert "ExecStopPost=-/usr/bin/secpod pod rm -f shop" in pod
    assert "Type=notify" in pod and "NotifyAccess=all" in pod
    for member in ("app.service", "side.service"):
        assert f"Wants={member}" in pod and f"Before={member}" in pod
        text = by[member].text.splitlines()
        assert "BindsTo=web-pod.service" in text and "After=web-pod.service" in text
        start = next(ln for ln in text if ln.startswith("ExecStart="))
        assert " --pod shop busybox" in start
    assert by["web-pod.service"].wanted_by == ("default.target",)
    assert "ExecStart=/usr/bin/secpod pod create --name systemd-alone" in \
        by["alone-pod.service"].text


@pytest.mark.parametrize(("files", "words"), [
    ({"p.pod": "[Pod]\nNetwork=host\n"},
     "p.pod:2: Network: not supported: a pod's network is secpod's private one"),
    ({"p.pod": "[Pod]\nColour=red\n"}, "p.pod:2: Colour: unknown key in [Pod]"),
    ({"p.pod": "[Pod]\nPodName=no/slash\n"}, "p.pod: PodName 'no/slash' is not a pod name"),
    ({"p.pod": "[X-Secpod]\nRuntime=runc\n"}, "p.pod:2: Runtime: unknown key in [X-Secpod]"),
    ({"p.pod": "[Pod]\nUserNS=auto\n", "m.container": "[Container]\nImage=b\nPod=p.pod\n"},
     "m.container:3: Pod: there is no p.pod beside it"),   # a refused pod takes no member
    ({"p.pod": "[Pod]\n", "m.container": "[Container]\nImage=b\nPod=p.pod\nHostName=x\n"},
     "m.container:4: HostName: a member of a pod has the pod's hostname"),
    ({"k.kube": "[Kube]\nConfigMap=c.yaml\nYaml=a.yaml\n"},
     "k.kube:2: ConfigMap: not supported: give the ConfigMaps in the YAML"),
    ({"k.kube": "[Kube]\nYaml=a.yaml\nYaml=b.yaml\n"}, "k.kube:3: Yaml: one Yaml= per .kube"),
    ({"k.kube": "[Kube]\n"}, "k.kube: no Yaml= in [Kube]"),
    ({"k.kube": "[Kube]\nReplicas=3\n"}, "k.kube:2: Replicas: unknown key in [Kube]"),
])
def test_pod_and_kube_refusals(tmp_path: Path, files: dict[str, str], words: str) -> None:
    units, problems = _gen(tmp_path, files)
    assert any(words in p for p in problems), problems
    assert all(u.source.name not in words.split(":")[0] for u in units)


def test_a_kube_file(tmp_path: Path) -> None:
    units, problems = _gen(tmp_path, {
        "web.kube": "[Kube]\nYaml=web.yaml\n[Install]\nWantedBy=default.target\n",
        "abs.kube": "[Kube]\nYaml=%h/k8s/db.yaml\n"})
    assert problems == []
    by = {u.name: u.text.splitlines() for u in units}
    web = by["web.service"]
    yaml = tmp_path / "web.yaml"
    assert f"ExecStart=/usr/bin/secpod kube play --replace {yaml}" in web
    assert f"ExecStop=/usr/bin/secpod kube down {yaml}" in web
    assert "Type=oneshot" in web and "RemainAfterExit=yes" in web
    assert 'ExecStart=/usr/bin/secpod kube play --replace "%h/k8s/db.yaml"' in by["abs.service"]
