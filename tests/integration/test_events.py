"""secpod events against the audit log, with real crun and conmon."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import User

pytestmark = [pytest.mark.crun, pytest.mark.userns]


def _json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_events_show_what_audit_log_shows(user: User, busybox: str) -> None:
    user.run("run", "-d", "--name", "web", busybox, "sleep", "30", check=True)
    user.run("stop", "-t", "1", "web", check=True)
    user.run("kill", "web")  # refused: not running (an audit record, no event)
    user.run("rm", "web", check=True)
    user.run("run", "--rm", "--name", "once", busybox, "sh", "-c", "exit 3")
    audit = json.loads(user.run("audit", "log", "--json", check=True).stdout)
    happened = {"container.create": "create", "container.start": "start",
                "container.exit": "die", "container.stop": "stop", "container.rm": "destroy",
                "image.import": "import"}
    want = [(r["time"], happened[r["action"]], r["container"]["id"] or r["image"]["ref"])
            for r in audit if r["action"] in happened and r["outcome"] == "ok"]
    r = user.run("events", "--format", "json", check=True)
    got = _json_lines(r.stdout)
    assert [(e["Time"], e["Action"], e["Actor"]["ID"]) for e in got] == want
    # stop's record and the exit's race (conmon writes the exit), as Docker's events do
    web = [e["Action"] for e in got if e["Actor"]["Attributes"].get("name") == "web"]
    assert web in (["create", "start", "stop", "die", "destroy"],
                   ["create", "start", "die", "stop", "destroy"]), web
    die = next(e for e in got if e["Action"] == "die" and e["Name"] == "once")
    assert die["Actor"]["Attributes"]["exitCode"] == "3"
    assert die["Actor"]["Attributes"]["image"] == "docker.io/library/busybox:latest"
    # Docker's text line, one per event
    text = user.run("events", "--filter", "container=web", check=True).stdout.splitlines()
    assert len(text) == 5
    cid = got[-1]["Actor"]["ID"] if got[-1]["Name"] == "web" else next(
        e["Actor"]["ID"] for e in got if e["Name"] == "web")
    assert text[1].endswith(f" container start {cid} "
                            "(image=docker.io/library/busybox:latest, name=web)")
    assert text[1][:30].endswith("Z") and "T" in text[1][:11]
    # filters and times
    r = user.run("events", "--filter", "event=die", "--format", "{{.Actor.Attributes.name}} "
                 "{{.Actor.Attributes.exitCode}}", check=True)
    assert r.stdout.split("\n")[:2] == ["web 143", "once 3"] or \
        r.stdout.split("\n")[:2] == ["web 137", "once 3"], r.stdout
    assert user.run("events", "--since", "1h", "--filter", "container=once",
                    check=True).stdout.count("\n") == 4
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert user.run("events", "--since", future, check=True).stdout == ""
    bad = user.run("events", "--since", "soon")
    assert bad.returncode == 2 and "--since: 'soon' is not a time" in bad.stderr, bad.stderr
    bad = user.run("events", "--filter", "colour=red")
    assert bad.returncode == 2 and "invalid filter 'colour'" in bad.stderr, bad.stderr


def test_events_follow_prints_new_events_until_until(user: User, busybox: str) -> None:
    until = (datetime.now(UTC) + timedelta(seconds=12)).isoformat()
    follower = user.popen("events", "--follow", "--filter", "container=late", "--until", until,
                          "--format", "{{.Action}}", stdout=-1, stderr=-1)
    time.sleep(1)
    user.run("run", "--name", "late", busybox, "true", check=True)
    out, err = follower.communicate(timeout=60)
    assert follower.returncode == 0, err
    assert out.split() == ["create", "start", "die"]
