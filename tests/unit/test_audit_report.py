"""The report fold and its renderings (pure: records in, text out)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from secpod.audit import _canon
from secpod.audit._query import Selection
from secpod.audit._render import render
from secpod.audit._report import MAX_TIMELINE_ITEMS, build_report, trust_status

SIGNED = {"accepted": True, "requirements": ["sigstoreSigned"], "reasons": ["ok"]}
ANY = {"accepted": True, "requirements": ["insecureAcceptAnything"], "reasons": []}
REJECTED = {"accepted": False, "requirements": ["signedBy"], "reasons": ["no signature"]}
CIS_MEM = {"id": "5.10", "severity": "medium", "title": "Memory limited"}
CIS_PRIV = {"id": "5.4", "severity": "high", "title": "Privileged"}


def rec(minute: int, user: str, action: str, outcome: str = "ok", **kw: Any) -> dict[str, Any]:
    r: dict[str, Any] = {
        "time": f"2024-05-01T10:{minute:02d}:00.000000Z", "uid": {"alice": 1001}.get(user, 1002),
        "user": user, "action": action, "outcome": outcome, "reason": None,
        "container": {"id": None, "name": None}, "image": {"ref": None, "digest": None},
        "profile": None, "confinement": None, "trust": None, "exit_status": None}
    r.update(kw)
    return r


def run(user: str, minute: int, cid: str, image: str, profile: str, *, cis: list[Any],
        unenforced: list[str], trust: dict[str, Any], status: int) -> list[dict[str, Any]]:
    ctr = {"id": cid, "name": cid}
    img = {"ref": image, "digest": "sha256:" + "a" * 64}
    conf = {"cis_findings": cis, "unenforced": unenforced}
    return [rec(minute, user, "container.create", container=ctr, image=img, profile=profile,
                confinement=conf, trust=trust),
            rec(minute, user, "container.start", container=ctr, image=img, profile=profile),
            rec(minute + 1, user, "container.exit", container=ctr, image=img, profile=profile,
                exit_status=status)]


RECORDS = [
    *run("alice", 0, "c1", "busybox:latest", "strict", cis=[CIS_MEM], unenforced=["pids"],
         trust=ANY, status=0),
    *run("alice", 2, "c2", "busybox:latest", "strict", cis=[CIS_MEM, CIS_PRIV], unenforced=[],
         trust=ANY, status=1),
    *run("bob", 4, "c3", "app:1", "default", cis=[], unenforced=[], trust=SIGNED, status=0),
    rec(6, "bob", "container.run.refused", "refused", reason="trust: rejected evil",
        image={"ref": "evil:1", "digest": None}, trust=REJECTED),
    rec(7, "bob", "container.run.refused", "refused", reason="trust: rejected evil",
        image={"ref": "evil:1", "digest": None}, trust=REJECTED),
    rec(8, "alice", "image.import", "error", reason="bad archive"),
]


@pytest.mark.parametrize(("trust", "want"), [
    (SIGNED, "verified"), (ANY, "unverified"), (REJECTED, "rejected"),
    ({"accepted": True, "requirements": []}, "unverified"), (None, None), ({"x": 1}, None),
    ({"accepted": "yes", "requirements": ["signedBy"]}, "rejected"),
])
def test_trust_status(trust: Any, want: str | None) -> None:
    assert trust_status(trust) == want


def test_fold_per_user_image_and_profile() -> None:
    r = build_report(RECORDS, source="log")
    t = r["totals"]
    assert (t["records"], t["users"], t["containers"], t["refusals"], t["errors"]) == (
        12, 2, 3, 2, 1)
    assert t["containers_with_cis_findings"] == 2 and t["containers_with_unenforced"] == 1
    groups = {(g["user"], g["image"], g["profile"]): g for g in r["groups"]}
    a = groups[("alice", "busybox:latest", "strict")]
    assert (a["containers"], a["exits"], a["nonzero_exits"]) == (2, 2, 1)
    assert a["trust"] == {"unverified": 2}
    assert [(c["id"], c["count"]) for c in a["cis_findings"]] == [("5.10", 2), ("5.4", 1)]
    assert a["unenforced"] == [{"setting": "pids", "count": 1}]
    e = groups[("bob", "evil:1", "")]
    assert e["refusals"] == 2
    assert e["refusal_reasons"] == [{"reason": "trust: rejected evil", "count": 2}]
    assert [(i["image"], i["status"], i["count"]) for i in r["images"]] == [
        ("evil:1", "rejected", 2), ("busybox:latest", "unverified", 2)]
    assert [(c["id"], c["containers"], c["users"]) for c in r["cis_findings"]] == [
        ("5.10", 2, ["alice"]), ("5.4", 1, ["alice"])]
    assert r["refusals"] == [{"reason": "trust: rejected evil", "count": 2,
                              "actions": {"container.run.refused": 2}, "users": ["bob"]}]
    assert {u["user"]: u["containers"] for u in r["users"]} == {"alice": 2, "bob": 1}
    spans = {c["id"]: (c["start"], c["end"], c["exit_status"]) for c in r["timeline"][
        "containers"]}
    assert spans["c2"] == ("2024-05-01T10:02:00.000000Z", "2024-05-01T10:03:00.000000Z", 1)


def test_since_and_until_select_a_period() -> None:
    r = build_report(RECORDS, since="2024-05-01T10:04:00.000000Z",
                     until="2024-05-01T10:06:30.000000Z")
    assert r["totals"]["records"] == 4
    assert [u["user"] for u in r["users"]] == ["bob"]


def test_formats() -> None:
    r = build_report(RECORDS, source="log")
    text = render(r, "text")
    assert "Refusals and their reasons" in text and "trust: rejected evil" in text
    rows = list(csv.DictReader(io.StringIO(render(r, "csv"))))
    row = next(x for x in rows if x["user"] == "alice" and x["image"] == "busybox:latest")
    assert (row["containers"], row["unverified"], row["cis_findings"]) == (
        "2", "2", "5.10 (2); 5.4 (1)")
    assert json.loads(render(r, "json"))["format"] == "secpod-audit-report/1"
    html = render(r, "html")
    assert html.startswith("<!DOCTYPE html>") and "<svg" in html and "<script" not in html
    assert "alice" in html and "evil:1" in html and "&lt;" not in html


def test_html_escapes_what_users_wrote() -> None:
    r = build_report([rec(0, "alice", "container.run.refused", "refused",
                          reason="<img src=x onerror=alert(1)>")])
    html = render(r, "html")
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


def test_a_big_log_draws_activity_bins_instead_of_bars() -> None:
    records = []
    for i in range(MAX_TIMELINE_ITEMS + 10):
        records += run("alice", i % 50, f"c{i}", "busybox:latest", "strict", cis=[],
                       unenforced=[], trust=ANY, status=0)
    r = build_report(records)
    assert r["timeline"]["containers"] == []
    assert sum(cell["run"] for b in r["timeline"]["bins"] for cell in b.values()) == len(
        records) // 3
    assert "alice: " in render(r, "html")


def test_selection_matches_what_a_person_types() -> None:
    sel = Selection.from_args(user="alice", action="container.*", image="busybox",
                              since="2024-05-01T10:01:00Z")
    got = [x for x in RECORDS if sel.matches(x)]
    assert [x["container"]["id"] for x in got] == ["c1", "c2", "c2", "c2"]
    assert Selection(container="c3").matches(RECORDS[6])
    assert Selection(image="aaaa").matches(RECORDS[0])  # a digest prefix
    # A hand-edited line may hold anything there: it does not match, and nothing breaks.
    odd = rec(1, "alice", "container.start", container="c3", image={"ref": 7, "digest": None})
    assert not Selection(container="c3").matches(odd)
    assert not Selection(image="7").matches(odd)
    assert _canon.parse_time("2024-05-01") == "2024-05-01T00:00:00.000000Z"


def test_containers_are_grouped_by_pod() -> None:
    pod = {"id": "p" * 64, "name": "web"}
    records = [
        rec(0, "alice", "pod.create", details={"pod": pod}),
        rec(1, "alice", "container.create", container={"id": "m1", "name": "app"},
            profile="strict", confinement={"pod": {**pod, "share": ["net"]}}),
        rec(2, "alice", "container.create", container={"id": "m2", "name": "side"},
            profile="default", confinement={"pod": pod}),
        rec(3, "alice", "container.create", container={"id": "x", "name": "alone"},
            profile="default", confinement={}),
        rec(4, "alice", "pod.infra.exited", details={"pod": pod, "stopped": ["app"]}),
        rec(5, "alice", "pod.create", "refused", reason="the pod name 'web' is in use",
            details={"pod": {"name": "web"}}),      # never made: no id, a refusal only
        rec(6, "alice", "pod.rm", details={"pod": pod}),
    ]
    r = build_report(records)
    assert r["pods"] == [{
        "id": "p" * 64, "name": "web", "user": "alice", "created": records[0]["time"],
        "members": [{"name": "app", "profile": "strict"}, {"name": "side", "profile": "default"}],
        "actions": {"pod.create": 1, "pod.infra.exited": 1, "pod.rm": 1}, "refusals": 0,
        "infra_deaths": 1}]
    assert r["totals"]["refusals"] == 1
    text = render(r, "text")
    assert "Pods" in text and "app(strict),side(default)" in text
    html = render(r, "html")
    assert "<h2>Pods</h2>" in html and "side (default)" in html
    assert build_report([])["pods"] == []
