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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from secpod.audit import _canon

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


@dataclass
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
    groups: dict[tuple[str, str, str], _Group] = defaultdict(_Group)
    users: dict[str, Counter[str]] = defaultdict(Counter)
    uids: dict[str, Any] = {}
    refusal_reasons: dict[str, Counter[str]] = defaultdict(Counter)   # reason -> actions
    refusal_users: dict[str, set[str]] = defaultdict(set)
    images: dict[tuple[str, str, str], dict[str, Any]] = {}
    cis_info: dict[str, dict[str, Any]] = {}
    cis_users: dict[str, set[str]] = defaultdict(set)
    unenf_count: Counter[str] = Counter()
    unenf_users: dict[str, set[str]] = defaultdict(set)
    actions: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    times: list[tuple[str, str, str]] = []   # (time, user, outcome kind) for the timeline
    lifetimes: dict[str, dict[str, Any]] = {}
    refusal_marks: list[dict[str, Any]] = []
    first = last = None
    total = 0
    flagged_cis = flagged_unenforced = 0

    for rec in records:
        t = rec.get("time")
        if not isinstance(t, str):
            continue
        if (since and t < since) or (until and t > until):
            continue
        total += 1
        if first is None or t < first:
            first = t
        if last is None or t > last:
            last = t
        user = _s(rec.get("user")) or str(rec.get("uid"))
        uids.setdefault(user, rec.get("uid"))
        action = _s(rec.get("action"))
        outcome = _s(rec.get("outcome"))
        actions[action] += 1
        outcomes[outcome] += 1
        ucount = users[user]
        ucount["records"] += 1
        img = rec.get("image") or {}
        ref = _s(img.get("ref")) if isinstance(img, dict) else ""
        digest = _s(img.get("digest")) if isinstance(img, dict) else ""
        profile = _s(rec.get("profile"))
        g = groups[(user, ref or digest, profile)]
        g.uid = rec.get("uid")
        ctr = rec.get("container") or {}
        cid = _s(ctr.get("id")) if isinstance(ctr, dict) else ""
        kind = outcome
        if outcome == "refused":
            reason = _s(rec.get("reason")) or "(no reason given)"
            g.refusals[reason] += 1
            ucount["refusals"] += 1
            refusal_reasons[reason][action] += 1
            refusal_users[reason].add(user)
            if len(refusal_marks) < MAX_TIMELINE_ITEMS:
                refusal_marks.append({"time": t, "user": user, "action": action,
                                      "reason": reason, "image": ref or digest})
        elif outcome == "error":
            g.errors += 1
            ucount["errors"] += 1
        status = trust_status(rec.get("trust"))
        if status is not None and action in ("container.create", "container.run.refused",
                                             "image.verify"):
            g.trust[status] += 1
            if status != "verified":
                key = (ref, digest, status)
                entry = images.get(key)
                if entry is None:
                    trust = rec["trust"]
                    reasons = trust.get("reasons") if isinstance(trust, dict) else None
                    entry = images[key] = {
                        "image": ref, "digest": digest, "status": status, "count": 0,
                        "users": set(),
                        "requirements": [r for r in trust.get("requirements") or []
                                         if isinstance(r, str)],
                        "reasons": [r for r in reasons or [] if isinstance(r, str)][:5]}
                entry["count"] += 1
                entry["users"].add(user)
        if action == "container.create" and outcome == "ok":
            g.containers += 1
            ucount["containers"] += 1
            kind = "run"
            conf = rec.get("confinement")
            if isinstance(conf, dict):
                if conf.get("cis_findings"):
                    flagged_cis += 1
                if conf.get("unenforced"):
                    flagged_unenforced += 1
                for f in conf.get("cis_findings") or []:
                    if isinstance(f, dict) and isinstance(f.get("id"), str):
                        fid = f["id"]
                        g.cis[fid] += 1
                        if fid not in cis_info:
                            cis_info[fid] = {"id": fid, "severity": _s(f.get("severity")),
                                             "title": _s(f.get("title")), "containers": 0}
                        cis_info[fid]["containers"] += 1
                        cis_users[fid].add(user)
                for u in conf.get("unenforced") or []:
                    if isinstance(u, str):
                        g.unenforced[u] += 1
                        unenf_count[u] += 1
                        unenf_users[u].add(user)
            if cid and len(lifetimes) < MAX_TIMELINE_ITEMS:
                lifetimes[cid] = {"id": cid, "name": _s(ctr.get("name")), "user": user,
                                  "image": ref or digest, "profile": profile, "created": t,
                                  "start": None, "end": None, "exit_status": None}
        elif action == "container.start" and outcome == "ok":
            g.starts += 1
            if cid in lifetimes and lifetimes[cid]["start"] is None:
                lifetimes[cid]["start"] = t
        elif action == "container.exit":
            g.exits += 1
            es = rec.get("exit_status")
            if isinstance(es, int) and es != 0:
                g.nonzero_exits += 1
            if cid in lifetimes:
                lifetimes[cid]["end"] = t
                lifetimes[cid]["exit_status"] = es if isinstance(es, int) else None
        times.append((t, user, kind))

    def ranked(c: Counter[str]) -> list[dict[str, Any]]:
        return [{"value": k, "count": v} for k, v in c.most_common()]

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
            "users": len(users),
            "containers": sum(g.containers for g in groups.values()),
            "refusals": outcomes.get("refused", 0),
            "errors": outcomes.get("error", 0),
            "unverified_images": len({(i["image"], i["digest"]) for i in images.values()}),
            "containers_with_cis_findings": flagged_cis,
            "containers_with_unenforced": flagged_unenforced,
            "unenforced_settings": len(unenf_count),
        },
        "actions": dict(sorted(actions.items())),
        "users": [{"user": u, "uid": uids.get(u), "records": c["records"],
                   "containers": c["containers"], "refusals": c["refusals"],
                   "errors": c["errors"]} for u, c in sorted(users.items())],
        "groups": group_list,
        "refusals": [{"reason": r, "count": sum(a.values()), "actions": dict(a),
                      "users": sorted(refusal_users[r])}
                     for r, a in sorted(refusal_reasons.items(),
                                        key=lambda kv: -sum(kv[1].values()))],
        "images": sorted(({**i, "users": sorted(i["users"])} for i in images.values()),
                         key=lambda i: (i["status"], i["image"], i["digest"])),
        "cis_findings": cis_list,
        "unenforced": [{"setting": s, "containers": n, "users": sorted(unenf_users[s])}
                       for s, n in unenf_count.most_common()],
        "timeline": _timeline(times, first, last, list(lifetimes.values()), refusal_marks,
                              sorted(users)),
    }
    return report


def _parse(t: str) -> datetime:
    return datetime.strptime(t, _canon.TIME_FORMAT).replace(tzinfo=UTC)


def _timeline(times: list[tuple[str, str, str]], first: str | None, last: str | None,
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
    cache: dict[str, float] = {}
    for t, user, kind in times:
        # Times share their first 19 characters with their neighbours; cache by second.
        sec = t[:19]
        ts = cache.get(sec)
        if ts is None:
            try:
                ts = _parse(sec + ".000000Z").timestamp()
            except ValueError:
                continue
            if len(cache) > 100_000:
                cache.clear()
            cache[sec] = ts
        i = min(int((ts - base) / width), TIMELINE_BINS - 1)
        cell = bins[i].setdefault(user, {"run": 0, "ok": 0, "refused": 0, "error": 0})
        if kind in cell:
            cell[kind] += 1
    return {
        "start": first, "end": last, "bin_seconds": width, "users": users,
        "bins": bins,
        "containers": lifetimes if len(lifetimes) < MAX_TIMELINE_ITEMS else [],
        "refusals": refusals if len(refusals) < MAX_TIMELINE_ITEMS else [],
    }
