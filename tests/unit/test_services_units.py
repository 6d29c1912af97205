"""generate systemd: quoting as systemd splits words, the create command rewritten."""

from __future__ import annotations

import pytest

from secpod.errors import Error, UsageError
from secpod.pods.record import Pod
from secpod.sandbox.state import Container
from secpod.services import units


def _ctr(words: list[str], policy: str = "no") -> Container:
    return Container(id="ab" * 32, name="web", image_ref="docker.io/library/busybox:latest",
                     image_digest="sha256:" + "cd" * 32, profile="default", profile_hash="h",
                     created="2026-12-03T11:00:00Z", args=["sh"], root_mode="private-copy",
                     restart_policy=policy, create_command=words)


def test_quote() -> None:
    assert units.quote("busybox:latest") == "busybox:latest"
    assert units.quote("a b") == '"a b"'
    assert units.quote('say "hi"') == '"say \\"hi\\""'
    assert units.quote("100%") == '"100%%"'
    assert units.quote("$HOME") == '"$$HOME"'
    assert units.quote("a\\b\nc") == '"a\\\\b\\nc"'
    assert units.quote("") == '""'


@pytest.mark.parametrize(("words", "want"), [
    (["run", "-d", "--name", "x", "busybox", "sleep", "9"],
     ["busybox", "sleep", "9"]),
    (["create", "--restart", "always", "-e", "A=1", "busybox"], ["-e", "A=1", "busybox"]),
    (["run", "-dit", "--restart=on-failure:3", "--rm=false", "busybox", "sh"],
     ["-it", "busybox", "sh"]),
    (["run", "--detach=true", "--name=x", "-v", "/a:/b", "--sdnotify", "ignore", "busybox",
      "--name", "y"], ["-v", "/a:/b", "busybox", "--name", "y"]),  # the command's own words stay
    (["run", "-d", "busybox", "-d"], ["busybox", "-d"]),
])
def test_the_create_command_is_rewritten_for_a_new_unit(words: list[str],
                                                        want: list[str]) -> None:
    assert units.rewrite_for_unit(words, "web") == [
        "run", "-d", "--rm", "--name", "web", "--sdnotify", "conmon", *want]


def test_a_record_without_its_command_cannot_make_a_new_unit() -> None:
    with pytest.raises(Error, match="does not say how it was created"):
        units.container_unit(_ctr([]), new=True)
    # without --new it needs none
    name, text = units.container_unit(_ctr([]), new=False, use_name=True)
    assert name == "container-web.service" and " start web\n" in text


def test_restart_policy_of_the_unit() -> None:
    assert units.restart_for_unit(None, _ctr([], "always")) == "always"
    assert units.restart_for_unit(None, _ctr([], "unless-stopped")) == "always"
    assert units.restart_for_unit(None, _ctr([], "on-failure:3")) == "on-failure"
    assert units.restart_for_unit(None, _ctr([])) == "on-failure"
    assert units.restart_for_unit("on-abnormal", _ctr([], "always")) == "on-abnormal"
    with pytest.raises(UsageError, match="invalid --restart-policy 'sometimes'"):
        units.restart_for_unit("sometimes", _ctr([]))


def test_a_new_unit() -> None:
    name, text = units.container_unit(
        _ctr(["run", "-d", "--restart", "always", "busybox", "sh", "-c", "echo $A 50%"],
             "always"), new=True, restart_sec=3, stop_timeout=5)
    assert name == "container-web.service"
    lines = text.splitlines()
    assert "Type=notify" in lines and "NotifyAccess=all" in lines
    assert "Restart=always" in lines and "RestartSec=3" in lines and "TimeoutStopSec=65" in lines
    start = next(ln for ln in lines if ln.startswith("ExecStart="))
    assert start.endswith(' run -d --rm --name web --sdnotify conmon busybox sh -c '
                          '"echo $$A 50%%"')
    assert any(ln.startswith("ExecStop=-") and ln.endswith(" stop -t 5 web") for ln in lines)
    assert any(ln.startswith("ExecStopPost=-") and ln.endswith(" rm -f web") for ln in lines)
    assert lines[-2:] == ["[Install]", "WantedBy=default.target"]


def _pod(words: list[str]) -> Pod:
    return Pod(id="ef" * 32, name="web", created="2026-12-03T11:00:00Z", hostname="web",
               create_command=words)


@pytest.mark.parametrize(("words", "want"), [
    (["secpod", "pod", "create", "--name", "web", "-p", "8080:80", "--label=a=b"],
     ["-p", "8080:80", "--label=a=b"]),
    (["secpod", "-v", "pod", "create", "--name=old", "-p8080:80", "--share", "net"],
     ["-p8080:80", "--share", "net"]),
])
def test_the_pod_create_command_is_rewritten(words: list[str], want: list[str]) -> None:
    assert units.rewrite_pod_create(words, "web") == ["pod", "create", "--name", "web", *want]


def test_a_pod_made_by_kube_play_makes_no_new_unit() -> None:
    with pytest.raises(Error, match="made by secpod kube play") as e:
        units.pod_units(_pod(["secpod", "kube", "play", "web.yaml"]), [], new=True)
    assert ".kube Quadlet file" in (e.value.hint or "")
    with pytest.raises(Error, match="made by secpod kube play"):
        units.rewrite_for_unit(["kube", "play", "web.yaml"], "app")
    with pytest.raises(Error, match="does not say how it was made"):
        units.rewrite_pod_create([], "web")


def test_pod_units_bind_the_members_to_the_pod() -> None:
    member = _ctr(["run", "-d", "--pod", "3f2a9c", "--name", "web", "busybox", "sleep", "9"])
    made = units.pod_units(_pod(["secpod", "pod", "create", "--name", "web"]), [member],
                           new=True, stop_timeout=4)
    assert [n for n, _t in made] == ["pod-web.service", "container-web.service"]
    pod, kid = (t.splitlines() for _n, t in made)
    assert "Wants=container-web.service" in pod and "Before=container-web.service" in pod
    assert "BindsTo=pod-web.service" in kid and "After=pod-web.service" in kid
    assert "Type=notify" in pod and "NotifyAccess=all" in pod
    start = next(ln for ln in pod if ln.startswith("ExecStart="))
    assert start.endswith(" pod create --name web")
    assert any(ln.startswith("ExecStartPre=-") and ln.endswith(" pod rm -f web") for ln in pod)
    assert any(ln.startswith("ExecStop=-") and ln.endswith(" pod stop -t 4 web") for ln in pod)
    run = next(ln for ln in kid if ln.startswith("ExecStart="))  # the pod by its name now
    assert run.endswith(" run -d --rm --name web --sdnotify conmon --pod web busybox sleep 9")
    plain = units.pod_units(_pod([]), [member], new=False, use_name=True)
    start = next(ln for ln in plain[0][1].splitlines() if ln.startswith("ExecStart="))
    assert start.endswith(" pod start --infra-only web")
    assert " start web\n" in plain[1][1] and "BindsTo=pod-web.service" in plain[1][1]
