"""secpod events: audit records as Docker's events, filters, times, the text line."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from secpod._times import parse_duration, parse_point, parse_point_nanos
from secpod.audit import _events
from secpod.errors import UsageError

NOW = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)


def _rec(seq: int, action: str, outcome: str = "ok", *, t: str = "2026-12-03T11:00:00.000001Z",
         cid: str | None = "ab" * 32, name: str | None = "web",
         ref: str | None = "docker.io/library/busybox:latest",
         digest: str | None = "sha256:" + "cd" * 32, **extra: object) -> dict[str, object]:
    return {"seq": seq, "prev": "0" * 64, "time": t, "action": action, "outcome": outcome,
            "user": "u", "container": {"id": cid, "name": name},
            "image": {"ref": ref, "digest": digest}, "exit_status": None, **extra}


def _log(tmp_path: Path, recs: list[dict[str, object]]) -> Path:
    path = tmp_path / "log.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


def test_go_durations() -> None:
    assert parse_duration("10s", "--x") == 10
    assert parse_duration("1m30s", "--x") == 90
    assert parse_duration("1.5h", "--x") == 5400
    assert parse_duration("250ms", "--x") == pytest.approx(0.25)
    assert parse_duration("0", "--x") == 0
    for bad in ("", "10", "s", "1x", "1m 2s", "-5s", "1.2.3s"):
        with pytest.raises(UsageError, match="--x: invalid duration"):
            parse_duration(bad, "--x")


def test_points_in_time() -> None:
    assert parse_point("10m", "--since", now=NOW) == datetime(2026, 12, 3, 11, 50, tzinfo=UTC)
    assert parse_point("1h30m", "--since", now=NOW) == datetime(2026, 12, 3, 10, 30,
                                                               tzinfo=UTC)
    assert parse_point("1700000000", "--since").timestamp() == 1700000000
    assert parse_point("1700000000.5", "--since").timestamp() == 1700000000.5
    assert parse_point("2026-12-03T10:00:00Z", "--since") == datetime(2026, 12, 3, 10,
                                                                       tzinfo=UTC)
    assert parse_point("2026-12-03T11:00:00+01:00", "--since") == datetime(2026, 12, 3, 10,
                                                                            tzinfo=UTC)
    assert parse_point_nanos("2026-12-03T10:00:00.123456789Z", "--since") == (
        int(datetime(2026, 12, 3, 10, tzinfo=UTC).timestamp()) * 10**9 + 123456789)
    assert parse_point_nanos("2026-12-03T10:00:00.5+01:00", "--since") == (
        int(datetime(2026, 12, 3, 9, tzinfo=UTC).timestamp()) * 10**9 + 500000000)
    assert parse_point_nanos("1700000000", "--since") == 1700000000 * 10**9
    with pytest.raises(UsageError, match="--until: 'yesterday' is not a time"):
        parse_point("yesterday", "--until")
    with pytest.raises(UsageError, match="--since: invalid duration"):
        parse_point("10q", "--since")


def test_each_action_that_happened_is_one_event() -> None:
    assert _events.event_of(_rec(0, "container.start", "refused")) is None
    assert _events.event_of(_rec(0, "container.run.refused", "refused")) is None
    assert _events.event_of(_rec(0, "audit.cosign")) is None
    die = _events.event_of(_rec(0, "container.exit", "error", exit_status=None))
    assert die is not None and die["Action"] == "die"  # an exit is an event whatever its outcome
    ev = _events.event_of(_rec(0, "container.exit", exit_status=3,
                               details={"stopped_by": "stop"}))
    assert ev is not None
    assert ev["Type"] == "container" and ev["Action"] == ev["status"] == "die"
    assert ev["Actor"] == {"ID": "ab" * 32, "Attributes": {
        "name": "web", "image": "docker.io/library/busybox:latest", "exitCode": "3",
        "stoppedBy": "stop"}}
    assert ev["timeNano"] == 1796295600000001000 and ev["time"] == 1796295600
    kill = _events.event_of(_rec(0, "container.kill", details={"signal": "TERM"}))
    assert kill is not None and kill["Actor"]["Attributes"]["signal"] == "TERM"
    rm = _events.event_of(_rec(0, "container.rm"))
    assert rm is not None and rm["Action"] == "destroy"
    pull = _events.event_of(_rec(0, "image.pull", cid=None, name=None, ref="127.0.0.1:5000/a:1"))
    assert pull is not None and pull["Type"] == "image" and pull["Actor"]["ID"] == "127.0.0.1:5000/a:1"


def test_text_line_is_dockers() -> None:
    ev = _events.event_of(_rec(0, "container.start", t="2026-12-03T11:00:00.123456Z"))
    assert ev is not None
    assert _events.text_line(ev) == ("2026-12-03T11:00:00.123456000Z container start "
                                     + "ab" * 32
                                     + " (image=docker.io/library/busybox:latest, name=web)")


def test_a_hand_edited_record_is_no_event_rather_than_a_crash() -> None:
    assert _events.event_of({"action": "container.start", "outcome": "ok", "time": 5}) is None
    ev = _events.event_of({"action": "container.start", "outcome": "ok",
                           "time": "2026-12-03T11:00:00Z", "container": "x", "image": [1]})
    assert ev is not None and ev["Actor"]["ID"] == ""


def test_filters_and_range(tmp_path: Path) -> None:
    other = "ef" * 32
    log = _log(tmp_path, [
        _rec(0, "container.create", t="2026-12-03T11:00:00.000001Z"),
        _rec(1, "container.start", t="2026-12-03T11:00:01.000001Z"),
        _rec(2, "container.create", t="2026-12-03T11:00:02.000001Z", cid=other, name="db",
             ref="docker.io/library/postgres:16"),
        _rec(3, "image.pull", t="2026-12-03T11:00:03.000001Z", cid=None, name=None,
             ref="docker.io/library/postgres:16", digest="sha256:" + "12" * 32),
    ])

    def seqs(*filters: str, since: str | None = None, until: str | None = None) -> list[int]:
        s = None if since is None else _events.nanos(parse_point(since, "--since"))
        u = None if until is None else _events.nanos(parse_point(until, "--until"))
        return [e["Seq"] for e in _events.read(log, since=s, until=u,
                                               keep=_events.selector(list(filters)))]

    assert seqs() == [0, 1, 2, 3]
    assert seqs("container=web") == [0, 1]
    assert seqs("container=efef") == [2]                 # a prefix of the id
    assert seqs("container=web", "container=db") == [0, 1, 2]   # one key: either value
    assert seqs("container=web", "event=start") == [1]   # two keys: both
    assert seqs("event=create") == [0, 2]
    assert seqs("image=postgres") == [2, 3]
    assert seqs("image=busybox:latest") == [0, 1]
    assert seqs("image=1212") == [3]
    assert seqs("type=image") == [3]
    assert seqs(since="2026-12-03T11:00:01Z") == [1, 2, 3]
    assert seqs(until="2026-12-03T11:00:02Z") == [0, 1]
    with pytest.raises(UsageError, match="invalid filter 'name'"):
        seqs("name=web")


def test_follow_prints_what_is_recorded_after_it_started(tmp_path: Path) -> None:
    log = _log(tmp_path, [_rec(0, "container.create")])
    got: list[int] = []
    until = time.time_ns() + 1_500_000_000

    def reader() -> None:
        for ev in _events.follow(log, until=until, poll=0.05):
            got.append(ev["Seq"])

    th = threading.Thread(target=reader)
    th.start()
    time.sleep(0.3)
    stamp = datetime.now(UTC).isoformat(timespec="microseconds")[:26] + "Z"
    with log.open("a") as f:
        f.write(json.dumps(_rec(1, "container.start", t=stamp))[:40])
        f.flush()
        time.sleep(0.2)   # a torn line is held until its end arrives
        f.write(json.dumps(_rec(1, "container.start", t=stamp))[40:] + "\n")
    th.join(timeout=10)
    assert not th.is_alive()
    assert got == [0, 1]


def test_health_from_the_image_and_the_flags() -> None:
    from secpod.sandbox import health
    from secpod.spec import Health

    image = {"Healthcheck": {"Test": ["CMD", "wget", "-qO-", "127.0.0.1"],
                             "Interval": 10 * 10**9, "Retries": 5}}
    assert health.resolve(None, image) == {
        "test": ["CMD", "wget", "-qO-", "127.0.0.1"], "interval": 10.0, "timeout": 30.0,
        "start_period": 0.0, "retries": 5, "on_failure": "none"}
    mine = health.resolve(Health(test=("CMD-SHELL", "true"), timeout=2.0, on_failure="stop"),
                          image)
    assert mine["test"] == ["CMD-SHELL", "true"] and mine["interval"] == 10.0
    assert mine["timeout"] == 2.0 and mine["on_failure"] == "stop"
    assert health.resolve(Health(test=("NONE",)), image) == {}
    assert health.resolve(None, {}) == {}
    with pytest.raises(UsageError, match="not one secpod can run"):
        health.resolve(None, {"Healthcheck": {"Test": ["SHELL", "x"]}})


def test_pod_actions_are_pod_events() -> None:
    pod = {"pod": {"id": "9f" * 32, "name": "web"}}
    ev = _events.event_of(_rec(0, "pod.create", cid=None, name=None, ref=None, digest=None,
                               details=pod))
    assert ev is not None and (ev["Type"], ev["Action"], ev["Name"]) == ("pod", "create", "web")
    assert ev["Actor"]["ID"] == "9f" * 32
    died = _events.event_of(_rec(0, "pod.infra.exited", details=pod))
    assert died is not None and died["Action"] == "died"
    assert _events.event_of(_rec(0, "pod.create", "refused", details=pod)) is None
    keep = _events.selector(["pod=web"])
    assert keep(ev) and not keep(_events.event_of(_rec(0, "container.start")))  # type: ignore[arg-type]
    assert _events.selector(["type=pod"])(ev)
