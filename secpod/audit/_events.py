"""``secpod events``: Docker's events, read from the audit log.

The audit log already holds every action secpod took, in order, durably, so events are
a view of it and nothing else is kept in sync: each record of an action that happened
(outcome ``ok``; a container's exit whatever its outcome) becomes one event in Docker's
shape (``events.Message``: ``Type``, ``Action``, ``Actor.ID``, ``Actor.Attributes``,
``time``, ``timeNano``, and the older ``status``/``id``/``from``). Refused and failed
actions are not events (nothing happened); ``secpod audit log`` lists them.

Docker's text line is ``TIME TYPE ACTION ID (k=v, ...)``, the attributes sorted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from secpod.audit import _query
from secpod.filters import Filters, exact, parse_filters, prefix

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

#: audit action -> (Docker's event type, Docker's action)
ACTIONS: dict[str, tuple[str, str]] = {
    "container.create": ("container", "create"),
    "container.start": ("container", "start"),
    "container.restart": ("container", "restart"),
    "container.exit": ("container", "die"),
    "container.stop": ("container", "stop"),
    "container.kill": ("container", "kill"),
    "container.rm": ("container", "destroy"),
    "container.exec": ("container", "exec_die"),
    "container.rename": ("container", "rename"),
    "container.healthcheck": ("container", "health_status"),
    "image.import": ("image", "import"),
    "image.pull": ("image", "pull"),
    "image.push": ("image", "push"),
    "image.tag": ("image", "tag"),
    "image.rm": ("image", "delete"),
    "image.save": ("image", "save"),
    "pod.create": ("pod", "create"),
    "pod.start": ("pod", "start"),
    "pod.stop": ("pod", "stop"),
    "pod.kill": ("pod", "kill"),
    "pod.rm": ("pod", "remove"),
    "pod.infra.exited": ("pod", "died"),
}

#: --filter keys and what each value matches
FILTERS = {
    "container": "a container's name, or a prefix of its id",
    "event": "the action: create, start, restart, die, stop, kill, destroy, exec_die, "
             "rename, health_status, import, pull, push, tag, delete, save; and for pods "
             "create, start, stop, kill, remove, died",
    "image": "an image: its name, its repository, or a prefix of its digest",
    "type": "container, image or pod",
    "pod": "a pod's name, or a prefix of its id",
}


def _str(v: Any) -> str:
    return v if isinstance(v, str) else ""


def _obj(rec: dict[str, Any], key: str) -> dict[str, Any]:
    value = rec.get(key)
    return value if isinstance(value, dict) else {}


def event_of(rec: dict[str, Any]) -> dict[str, Any] | None:
    """The Docker event of one audit record, or None when the record is not one."""
    action = rec.get("action")
    kind = ACTIONS.get(action) if isinstance(action, str) else None
    if kind is None:
        return None
    if rec.get("outcome") != "ok" and action != "container.exit":
        return None
    if action == "container.healthcheck" and not _obj(rec, "details").get("changed"):
        return None  # Docker's health_status event is a change of status
    typ, verb = kind
    stamp = _str(rec.get("time"))
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    ctr, img, details = _obj(rec, "container"), _obj(rec, "image"), _obj(rec, "details")
    ref, digest = _str(img.get("ref")), _str(img.get("digest"))
    attrs: dict[str, str] = {}
    if typ == "container":
        actor = _str(ctr.get("id"))
        attrs["name"] = _str(ctr.get("name"))
        attrs["image"] = ref or digest
        if rec.get("exit_status") is not None:
            attrs["exitCode"] = str(rec["exit_status"])
        if action == "container.kill" and details.get("signal"):
            attrs["signal"] = str(details["signal"])
        if action == "container.rename" and details.get("old_name"):
            attrs["oldName"] = str(details["old_name"])
        if action == "container.exec" and isinstance(details.get("command"), list):
            attrs["execCommand"] = " ".join(str(a) for a in details["command"])
        if action == "container.restart" and details.get("restart_count") is not None:
            attrs["restartCount"] = str(details["restart_count"])
        if action == "container.healthcheck" and details.get("health_status"):
            verb = f"health_status: {details['health_status']}"
        if action == "container.exit" and details.get("stopped_by"):
            attrs["stoppedBy"] = str(details["stopped_by"])
    elif typ == "pod":
        pod = _obj(details, "pod")
        actor = _str(pod.get("id"))
        attrs["name"] = _str(pod.get("name"))
    else:
        actor = ref or digest
        attrs["name"] = ref or digest
        if digest:
            attrs["digest"] = digest
    nano = int(when.timestamp()) * 1_000_000_000 + when.microsecond * 1000
    return {
        "status": verb,
        "id": actor,
        "from": attrs.get("image", ""),
        "Type": typ,
        "Action": verb,
        "Actor": {"ID": actor, "Attributes": attrs},
        "scope": "local",
        "time": nano // 1_000_000_000,
        "timeNano": nano,
        # podman's names, for templates written for it
        "Name": attrs.get("name", ""),
        "Image": attrs.get("image", attrs.get("name", "")),
        "ID": actor,
        "Status": verb,
        "Time": stamp,
        "Seq": rec.get("seq"),
        "User": rec.get("user"),
    }


def text_line(ev: dict[str, Any]) -> str:
    """Docker's line: ``2026-12-03T11:00:00.123456000Z container start ID (image=x, name=y)``."""
    nano = int(ev["timeNano"])
    base = datetime.fromtimestamp(nano // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    attrs = ev["Actor"]["Attributes"]
    inner = ", ".join(f"{k}={attrs[k]}" for k in sorted(attrs))
    return (f"{base}.{nano % 1_000_000_000:09d}Z {ev['Type']} {ev['Action']} "
            f"{ev['Actor']['ID']}" + (f" ({inner})" if inner else ""))


def selector(values: list[str]) -> Callable[[dict[str, Any]], bool]:
    """Docker's ``--filter`` for events: values of one key are alternatives, keys must
    all match. Raises UsageError for an unknown key."""
    filters: Filters = parse_filters(values, FILTERS)

    def image_test(ev: dict[str, Any]) -> Callable[[str], bool]:
        ref = ev["Image"] if ev["Type"] == "container" else ev["Actor"]["ID"]
        digest = ev["Actor"]["Attributes"].get("digest", "")
        repo = ref.rpartition(":")[0] if ":" in ref.rpartition("/")[2] else ref
        short = repo.rpartition("/")[2]

        def test(v: str) -> bool:
            bare = v.removeprefix("sha256:")
            return (v in (ref, repo, short) or ref.endswith("/" + v)
                    or (len(bare) >= 4 and (digest or ref).removeprefix("sha256:")
                        .startswith(bare)))
        return test

    def keep(ev: dict[str, Any]) -> bool:
        is_ctr = ev["Type"] == "container"
        return filters.match({
            "container": prefix(ev["Actor"]["ID"], ev["Name"]) if is_ctr else lambda _v: False,
            "event": exact(ev["Action"], ev["Action"].partition(":")[0]),
            "image": image_test(ev) if ev["Type"] != "pod" else lambda _v: False,
            "type": exact(ev["Type"]),
            "pod": prefix(ev["Actor"]["ID"], ev["Name"]) if ev["Type"] == "pod"
            else lambda _v: False,
        })

    return keep


def _in_range(ev: dict[str, Any], since: int | None, until: int | None) -> bool:
    t = int(ev["timeNano"])
    return (since is None or t >= since) and (until is None or t <= until)


def read(log: Path, *, since: int | None = None, until: int | None = None,
         keep: Callable[[dict[str, Any]], bool] | None = None,
         ) -> Iterator[dict[str, Any]]:
    """The events recorded in ``log`` (times in nanoseconds since the epoch), in order.
    Raises AuditError if the log cannot be read."""
    for rec in _query.iter_records(log):
        ev = event_of(rec)
        if ev is not None and _in_range(ev, since, until) and (keep is None or keep(ev)):
            yield ev


def follow(log: Path, *, since: int | None = None, until: int | None = None,
           keep: Callable[[dict[str, Any]], bool] | None = None, poll: float = 0.2,
           clock: Callable[[], float] = time.time) -> Iterator[dict[str, Any]]:
    """As :func:`read`, then the events recorded from then on, as they are written,
    until ``until`` has passed (or forever). A log that does not exist yet is waited for.
    """
    pos = 0
    pending = b""
    while True:
        try:
            with open(log, "rb") as f:
                f.seek(pos)
                chunk = f.read()
        except FileNotFoundError:
            chunk = b""
        pos += len(chunk)
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        for line in lines:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            ev = event_of(rec) if isinstance(rec, dict) else None
            if ev is not None and _in_range(ev, since, None) and (keep is None or keep(ev)):
                if until is not None and int(ev["timeNano"]) > until:
                    return
                yield ev
        if until is not None and clock() * 1e9 > until and not pending:
            return
        time.sleep(poll)


def nanos(t: datetime) -> int:
    return int(t.timestamp()) * 1_000_000_000 + t.microsecond * 1000


def default_log() -> Path:
    from secpod.audit._log import log_path

    return log_path()


__all__ = ["ACTIONS", "FILTERS", "default_log", "event_of", "follow", "nanos", "read",
           "selector", "text_line"]
