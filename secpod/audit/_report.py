"""The compliance report: what ran, under what, what was refused, what was weak.

:func:`build_report` folds records into a plain JSON-ready dict; the
renderers in :mod:`secpod.audit._render` turn that into text, CSV or HTML.
Grouping is per (user, image, profile). Fields it reads from records:

- ``container.create`` (outcome ok) is one container; its
  ``confinement["cis_findings"]`` (``{"id","severity","title"}``) and
  ``confinement["unenforced"]`` (strings) are that container's findings;
- ``container.start``/``container.exit`` give the timeline's bars and exit
  statuses;
- any record with outcome ``refused`` is a refusal (by ``reason``);
- ``trust`` (the signing area's decision: ``accepted``, ``requirements``,
  ``reasons``) classifies an image: *rejected* (not accepted), *unverified*
  (accepted with no signature requirement, e.g. ``insecureAcceptAnything``)
  or *verified*.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime

from secpod._record import field, record
from secpod.audit import _canon

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

FORMAT = "secpod-audit-report/1"
_SIGNED_REQS = {"signedBy", "sigstoreSigned"}
MAX_TIMELINE_ITEMS = 400
TIMELINE_BINS = 60


def trust_status(trust: Any) -> str | None:
    """``verified``, ``unverified``, ``rejected``, or None when there is no decision."""
    if not isinstance(trust, dict) or "accepted" not in trust:
        return None
    if trust.get("accepted") is not True:
        return "rejected"
    reqs = trust.get("requirements")
    if isinstance(reqs, list) and _SIGNED_REQS & {r for r in reqs if isinstance(r, str)}:
        return "verified"
    return "unverified"


@record
class _Group:
    containers: int = 0
    starts: int = 0
    exits: int = 0
    nonzero_exits: int = 0
    refusals: Counter[str] = field(default_factory=Counter)
    errors: int = 0
    trust: Counter[str] = field(default_factory=Counter)
    cis: Counter[str] = field(default_factory=Counter)
    unenforced: Counter[str] = field(default_factory=Counter)
    uid: Any = None


def _s(v: Any) -> str:
    return v if isinstance(v, str) else ""


def build_report(records: Iterable[dict[str, Any]], *, since: str | None = None,
                 until: str | None = None, source: str = "") -> dict[str, Any]:
    """Fold ``records`` (in log order) into the report. Pure."""
    groups: dict[tuple[str, str, str], _Group] = {}
    user_records: dict[str, int] = {}
    uids: dict[str, Any] = {}
    refusal_reasons: dict[str, Counter[str]] = defaultdict(Counter)   # reason -> actions
    refusal_users: dict[str, set[str]] = defaultdict(set)
    images: dict[tuple[str, str, str], dict[str, Any]] = {}
    cis_info: dict[str, dict[str, Any]] = {}
    cis_users: dict[str, set[str]] = defaultdict(set)
    unenf_count: Counter[str] = Counter()
    unenf_users: dict[str, set[str]] = defaultdict(set)
    actions: dict[str, int] = {}
    outcomes: dict[str, int] = {}
    minutes: dict[tuple[str, str, str], int] = {}   # (YYYY-MM-DDTHH:MM, user, kind) -> n
    lifetimes: dict[str, dict[str, Any]] = {}
    refusal_marks: list[dict[str, Any]] = []
    first = last = None
    total = 0
    flagged_cis = flagged_unenforced = 0
    trust_actions = ("container.create", "container.run.refused", "image.verify")
    pods: dict[str, dict[str, Any]] = {}      # pod id -> its user, members and actions

    # The hot loop of a million-record report: plain dict operations only.
    for rec in records:
        t = rec.get("time")
        if t.__class__ is not str:
            continue
        if (since and t < since) or (until and t > until):
            continue
        total += 1
        if first is None or t < first:
            first = t
        if last is None or t > last:
            last = t
        user = rec.get("user")
        if user.__class__ is not str or not user:
            user = str(rec.get("uid"))
        if user in user_records:
            user_records[user] += 1
        else:
            user_records[user] = 1
            uids[user] = rec.get("uid")
        action = _s(rec.get("action"))
        outcome = _s(rec.get("outcome"))
        actions[action] = actions.get(action, 0) + 1
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        img = rec.get("image")
        if img.__class__ is dict:
            ref, digest = _s(img.get("ref")), _s(img.get("digest"))
        else:
            ref = digest = ""
        profile = _s(rec.get("profile"))
        gkey = (user, ref or digest, profile)
        g = groups.get(gkey)
        if g is None:
            g = groups[gkey] = _Group(uid=rec.get("uid"))
        kind = outcome
        if outcome == "refused":
            reason = _s(rec.get("reason")) or "(no reason given)"
            g.refusals[reason] += 1
            refusal_reasons[reason][action] += 1
            refusal_users[reason].add(user)
            if len(refusal_marks) < MAX_TIMELINE_ITEMS:
                refusal_marks.append({"time": t, "user": user, "action": action,
                                      "reason": reason, "image": ref or digest})
        elif outcome == "error":
            g.errors += 1
        trust = rec.get("trust")
        if trust and action in trust_actions:
            status = trust_status(trust)
            if status is not None:
                g.trust[status] += 1
                if status != "verified":
                    key = (ref, digest, status)
                    entry = images.get(key)
                    if entry is None:
                        reasons = trust.get("reasons")
                        entry = images[key] = {
                            "image": ref, "digest": digest, "status": status, "count": 0,
                            "users": set(),
                            "requirements": [r for r in trust.get("requirements") or []
                                             if isinstance(r, str)],
                            "reasons": [r for r in reasons or [] if isinstance(r, str)][:5]}
                    entry["count"] += 1
                    entry["users"].add(user)
        if action[:4] == "pod.":
            _pod_action(pods, rec, user, action, outcome, t)
        if action == "container.create":
            if outcome == "ok":
                g.containers += 1
                kind = "run"
                conf = rec.get("confinement")
                if conf.__class__ is dict and conf.get("pod").__class__ is dict:
                    _pod_member(pods, conf["pod"], rec, user, profile)
                if conf.__class__ is dict:
                    findings = conf.get("cis_findings")
                    if findings and findings.__class__ is list:
                        flagged_cis += 1
                        for f in findings:
                            if f.__class__ is dict and f.get("id").__class__ is str:
                                fid = f["id"]
                                g.cis[fid] += 1
                                info = cis_info.get(fid)
                                if info is None:
                                    info = cis_info[fid] = {
                                        "id": fid, "severity": _s(f.get("severity")),
                                        "title": _s(f.get("title")), "containers": 0}
                                info["containers"] += 1
                                cis_users[fid].add(user)
                    unenf = conf.get("unenforced")
                    if unenf and unenf.__class__ is list:
                        flagged_unenforced += 1
                        for u in unenf:
                            if u.__class__ is str:
                                g.unenforced[u] += 1
                                unenf_count[u] += 1
                                unenf_users[u].add(user)
                if len(lifetimes) < MAX_TIMELINE_ITEMS:
                    ctr = rec.get("container")
                    ctr = ctr if ctr.__class__ is dict else {}
                    cid = _s(ctr.get("id"))
                    if cid:
                        lifetimes[cid] = {"id": cid, "name": _s(ctr.get("name")),
                                          "user": user, "image": ref or digest,
                                          "profile": profile, "created": t, "start": None,
                                          "end": None, "exit_status": None}
        elif action == "container.start":
            if outcome == "ok":
                g.starts += 1
                if lifetimes:
                    ctr = rec.get("container")
                    life = lifetimes.get(_s(ctr.get("id"))) if ctr.__class__ is dict else None
                    if life is not None and life["start"] is None:
                        life["start"] = t
        elif action == "container.exit":
            g.exits += 1
            es = rec.get("exit_status")
            if es.__class__ is int and es != 0:
                g.nonzero_exits += 1
            if lifetimes:
                ctr = rec.get("container")
                life = lifetimes.get(_s(ctr.get("id"))) if ctr.__class__ is dict else None
                if life is not None:
                    life["end"] = t
                    life["exit_status"] = es if es.__class__ is int else None
        mkey = (t[:16], user, kind)
        minutes[mkey] = minutes.get(mkey, 0) + 1

    group_list = []
    for (user, image, profile), g in sorted(groups.items()):
        if not (g.containers or g.refusals or g.errors or g.trust or g.exits or g.starts):
            continue
        group_list.append({
            "user": user, "uid": g.uid, "image": image, "profile": profile,
            "containers": g.containers, "starts": g.starts, "exits": g.exits,
            "nonzero_exits": g.nonzero_exits, "errors": g.errors,
            "refusals": sum(g.refusals.values()),
            "refusal_reasons": [{"reason": k, "count": v} for k, v in g.refusals.most_common()],
            "trust": dict(sorted(g.trust.items())),
            "cis_findings": [{"id": k, "severity": cis_info[k]["severity"],
                              "title": cis_info[k]["title"], "count": v}
                             for k, v in sorted(g.cis.items())],
            "unenforced": [{"setting": k, "count": v} for k, v in g.unenforced.most_common()],
        })

    cis_list = sorted(cis_info.values(), key=lambda c: (c["id"]))
    for c in cis_list:
        c["users"] = sorted(cis_users[c["id"]])
    report = {
        "format": FORMAT,
        "generated": _canon.now(),
        "source": source,
        "since": since,
        "until": until,
        "period": {"first": first, "last": last},
        "totals": {
            "records": total,
            "users": len(user_records),
            "containers": sum(g.containers for g in groups.values()),
            "refusals": outcomes.get("refused", 0),
            "errors": outcomes.get("error", 0),
            "unverified_images": len({(i["image"], i["digest"]) for i in images.values()}),
            "containers_with_cis_findings": flagged_cis,
            "containers_with_unenforced": flagged_unenforced,
            "unenforced_settings": len(unenf_count),
        },
        "actions": dict(sorted(actions.items())),
        "users": [{"user": u, "uid": uids.get(u), "records": n,
                   "containers": sum(g.containers for k, g in groups.items() if k[0] == u),
                   "refusals": sum(sum(g.refusals.values()) for k, g in groups.items()
                                   if k[0] == u),
                   "errors": sum(g.errors for k, g in groups.items() if k[0] == u)}
                  for u, n in sorted(user_records.items())],
        "groups": group_list,
        "pods": sorted(({**p, "actions": dict(sorted(p["actions"].items()))}
                        for p in pods.values()), key=lambda p: (p["user"], p["name"])),
        "refusals": [{"reason": r, "count": sum(a.values()), "actions": dict(a),
                      "users": sorted(refusal_users[r])}
                     for r, a in sorted(refusal_reasons.items(),
                                        key=lambda kv: -sum(kv[1].values()))],
        "images": sorted(({**i, "users": sorted(i["users"])} for i in images.values()),
                         key=lambda i: (i["status"], i["image"], i["digest"])),
        "cis_findings": cis_list,
        "unenforced": [{"setting": s, "containers": n, "users": sorted(unenf_users[s])}
                       for s, n in unenf_count.most_common()],
        "timeline": _timeline(minutes, first, last, list(lifetimes.values()), refusal_marks,
                              sorted(user_records)),
    }
    return report


def _pod_entry(pods: dict[str, dict[str, Any]], pid: str, name: str,
               user: str) -> dict[str, Any]:
    entry = pods.get(pid)
    if entry is None:
        entry = pods[pid] = {"id": pid, "name": name, "user": user, "created": None,
                             "members": [], "actions": Counter(), "refusals": 0,
                             "infra_deaths": 0}
    return entry


def _pod_action(pods: dict[str, dict[str, Any]], rec: dict[str, Any], user: str,
                action: str, outcome: str, t: str) -> None:
    """A ``pod.*`` record: counted under its pod (a refused create of a pod that never
    existed has no id, and counts only among the refusals)."""
    details = rec.get("details")
    pod = details.get("pod") if details.__class__ is dict else None
    if pod.__class__ is not dict or not _s(pod.get("id")):
        return
    entry = _pod_entry(pods, _s(pod["id"]), _s(pod.get("name")), user)
    entry["actions"][action] += 1
    if outcome == "refused":
        entry["refusals"] += 1
    if action == "pod.create" and outcome == "ok":
        entry["created"] = t
    elif action == "pod.infra.exited":
        entry["infra_deaths"] += 1


def _pod_member(pods: dict[str, dict[str, Any]], pod: dict[str, Any], rec: dict[str, Any],
                user: str, profile: str) -> None:
    if not _s(pod.get("id")):
        return
    entry = _pod_entry(pods, _s(pod["id"]), _s(pod.get("name")), user)
    ctr = rec.get("container")
    name = _s(ctr.get("name")) if ctr.__class__ is dict else ""
    if len(entry["members"]) < MAX_TIMELINE_ITEMS:
        entry["members"].append({"name": name, "profile": profile})


def _parse(t: str) -> datetime:
    return datetime.strptime(t, _canon.TIME_FORMAT).replace(tzinfo=UTC)


def _timeline(minutes: dict[tuple[str, str, str], int], first: str | None, last: str | None,
              lifetimes: list[dict[str, Any]], refusals: list[dict[str, Any]],
              users: list[str]) -> dict[str, Any]:
    """Activity per user in equal time bins, and (for small logs) each container's span."""
    if first is None or last is None:
        return {"start": None, "end": None, "bins": [], "users": users, "containers": [],
                "refusals": []}
    try:
        t0, t1 = _parse(first), _parse(last)
    except ValueError:
        return {"start": first, "end": last, "bins": [], "users": users, "containers": [],
                "refusals": []}
    span = max((t1 - t0).total_seconds(), 1.0)
    width = span / TIMELINE_BINS
    bins: list[dict[str, dict[str, int]]] = [dict() for _ in range(TIMELINE_BINS)]
    base = t0.timestamp()
    days: dict[str, float] = {}
    for (t, user, kind), n in minutes.items():
        # strptime per record is the slowest thing in a report: parse the day once,
        # the time of day by hand (record times are YYYY-MM-DDTHH:MM:SS.ffffffZ).
        day = days.get(t[:10])
        if day is None:
            try:
                day = days[t[:10]] = _parse(t[:10] + "T00:00:00.000000Z").timestamp()
            except ValueError:
                continue
        try:
            ts = day + int(t[11:13]) * 3600 + int(t[14:16]) * 60
        except ValueError:
            continue
        i = min(max(int((ts - base) / width), 0), TIMELINE_BINS - 1)
        cell = bins[i].setdefault(user, {"run": 0, "ok": 0, "refused": 0, "error": 0})
        if kind in cell:
            cell[kind] += n
    return {
        "start": first, "end": last, "bin_seconds": width, "users": users,
        "bins": bins,
        "containers": lifetimes if len(lifetimes) < MAX_TIMELINE_ITEMS else [],
        "refusals": refusals if len(refusals) < MAX_TIMELINE_ITEMS else [],
    }
