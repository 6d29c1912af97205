"""Render a report (from :func:`secpod.audit._report.build_report`) as text, CSV, JSON or HTML.

The HTML is one self-contained file: inline CSS and SVG, no scripts, fonts
or images from anywhere else, so it can be mailed to an auditor and opened
offline.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from html import escape

from secpod.audit import _canon

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

FORMATS = ("text", "json", "csv", "html")
HTML_ROWS = 250  # per table; the JSON and CSV reports hold every row


def _more(n: int) -> str:
    if n <= HTML_ROWS:
        return ""
    return (f'<p class="none">and {n - HTML_ROWS:,} more rows: the JSON and CSV reports '
            "hold them all.</p>")


def render(report: dict[str, Any], fmt: str) -> str:
    """The report in ``fmt`` (one of FORMATS)."""
    if fmt == "json":
        return json.dumps(report, indent=2, sort_keys=True) + "\n"
    if fmt == "csv":
        return render_csv(report)
    if fmt == "html":
        return render_html(report)
    from secpod._text import printable

    return printable(render_text(report), keep_newlines=True)


# --- text --------------------------------------------------------------------


def _table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    from secpod._text import table_lines

    return table_lines(headers, rows)


def _pairs(items: list[dict[str, Any]], key: str) -> str:
    return "; ".join(f"{i[key]} ({i['count']})" for i in items)


def render_text(r: dict[str, Any]) -> str:
    t = r["totals"]
    out = [
        "secpod audit report",
        f"source:  {r['source']}",
        f"period:  {r['period']['first'] or '-'} .. {r['period']['last'] or '-'}",
        f"records: {t['records']}   users: {t['users']}   containers: {t['containers']}   "
        f"refusals: {t['refusals']}   errors: {t['errors']}",
        f"unverified or rejected images: {t['unverified_images']}   containers with CIS "
        f"findings: {t['containers_with_cis_findings']}   with unenforced settings: "
        f"{t['containers_with_unenforced']}",
        "",
        "By user, image and profile",
    ]
    out += _table(
        ["USER", "IMAGE", "PROFILE", "CONTAINERS", "REFUSALS", "ERRORS", "TRUST", "CIS",
         "UNENFORCED"],
        [[g["user"], g["image"] or "-", g["profile"] or "-", g["containers"], g["refusals"],
          g["errors"], ",".join(f"{k}={v}" for k, v in g["trust"].items()) or "-",
          ",".join(f"{c['id']}x{c['count']}" for c in g["cis_findings"]) or "-",
          ",".join(f"{u['setting']}x{u['count']}" for u in g["unenforced"]) or "-"]
         for g in r["groups"]])
    out += ["", "Pods"]
    out += _table(["USER", "POD", "MEMBERS", "ACTIONS", "INFRA DEATHS"],
                  [[p["user"], p["name"] or p["id"][:12],
                    ",".join(f"{m['name']}({m['profile']})" for m in p["members"]) or "-",
                    ",".join(f"{k}x{v}" for k, v in p["actions"].items()) or "-",
                    p["infra_deaths"]] for p in r.get("pods", [])]
                  ) if r.get("pods") else ["(none)"]
    out += ["", "Refusals and their reasons"]
    out += _table(["COUNT", "REASON", "USERS"],
                  [[x["count"], x["reason"], ",".join(x["users"])] for x in r["refusals"]]
                  ) if r["refusals"] else ["(none)"]
    out += ["", "Unsigned, unverified or rejected images"]
    out += _table(["STATUS", "IMAGE", "DIGEST", "TIMES", "USERS"],
                  [[i["status"], i["image"] or "-", (i["digest"] or "-")[:19], i["count"],
                    ",".join(i["users"])] for i in r["images"]]) if r["images"] else ["(none)"]
    out += ["", "CIS Docker Benchmark container-runtime findings"]
    out += _table(["ID", "SEVERITY", "CONTAINERS", "TITLE", "USERS"],
                  [[c["id"], c["severity"], c["containers"], c["title"], ",".join(c["users"])]
                   for c in r["cis_findings"]]) if r["cis_findings"] else ["(none)"]
    out += ["", "Settings not enforced on this host"]
    out += _table(["CONTAINERS", "SETTING", "USERS"],
                  [[u["containers"], u["setting"], ",".join(u["users"])]
                   for u in r["unenforced"]]) if r["unenforced"] else ["(none)"]
    return "\n".join(out) + "\n"


# --- CSV ---------------------------------------------------------------------


CSV_COLUMNS = ["user", "uid", "image", "profile", "containers", "starts", "exits",
               "nonzero_exits", "refusals", "refusal_reasons", "errors", "verified",
               "unverified", "rejected", "cis_findings", "unenforced"]


def render_csv(r: dict[str, Any]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for g in r["groups"]:
        w.writerow([g["user"], g["uid"], g["image"], g["profile"], g["containers"], g["starts"],
                    g["exits"], g["nonzero_exits"], g["refusals"],
                    _pairs(g["refusal_reasons"], "reason"), g["errors"],
                    g["trust"].get("verified", 0), g["trust"].get("unverified", 0),
                    g["trust"].get("rejected", 0), _pairs(g["cis_findings"], "id"),
                    _pairs(g["unenforced"], "setting")])
    return buf.getvalue()


# --- HTML --------------------------------------------------------------------

_CSS = """
:root{--ink:#1d2433;--mute:#5b6478;--line:#e3e7ef;--bg:#f6f8fb;--ok:#2f9e6e;--warn:#e0a100;
--bad:#d64545;--info:#3d6fd8;--card:#fff}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
color:var(--ink);background:var(--bg)}
header{background:#18223a;color:#fff;padding:22px 32px}
header h1{margin:0 0 4px;font-size:22px;font-weight:650;letter-spacing:.2px}
header p{margin:0;color:#b8c2d9;font-size:13px}
main{padding:20px 32px 40px;max-width:1280px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(132px,1fr));gap:12px;
margin:0 0 22px}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:12px 14px}
.card b{display:block;font-size:26px;font-weight:650}
.card span{color:var(--mute);font-size:12px;text-transform:uppercase;letter-spacing:.5px}
.card.bad b{color:var(--bad)}.card.warn b{color:var(--warn)}.card.ok b{color:var(--ok)}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;
padding:16px 18px;margin:0 0 18px}
h2{font-size:16px;margin:0 0 12px}
table{border-collapse:collapse;width:100%;font-size:13px}
th{text-align:left;color:var(--mute);font-weight:600;border-bottom:2px solid var(--line);
padding:6px 8px;white-space:nowrap}
td{border-bottom:1px solid var(--line);padding:6px 8px;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.chip{display:inline-block;border-radius:9px;padding:0 7px;margin:1px 3px 1px 0;font-size:12px;
background:#eef1f7;color:var(--ink);max-width:100%;overflow-wrap:anywhere}
.chip.bad{background:#fde8e8;color:#a02828}.chip.warn{background:#fff3d1;color:#7a5a00}
.chip.ok{background:#e3f5ec;color:#1f6b49}.chip.info{background:#e6edfb;color:#2a4f9e}
.bar{height:8px;border-radius:4px;background:var(--bad);min-width:2px}
.none{color:var(--mute);font-style:italic}
.why{color:var(--bad);font-size:12px;max-width:260px}
.legend{display:flex;gap:16px;flex-wrap:wrap;color:var(--mute);font-size:12px;margin-top:8px}
.legend i{display:inline-block;width:12px;height:12px;border-radius:3px;margin-right:5px;
vertical-align:-2px}
svg text{font-family:inherit}
"""

_COLORS = {"run": "#2f9e6e", "ok": "#9fb3d9", "refused": "#d64545", "error": "#e0a100"}


def _ts(t: str | None) -> float | None:
    if not t:
        return None
    try:
        return datetime.strptime(t, _canon.TIME_FORMAT).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def _human(t: str | None) -> str:
    ts = _ts(t)
    if ts is None:
        return t or "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _short_time(ts: float, span: float) -> str:
    d = datetime.fromtimestamp(ts, UTC)
    if span <= 2 * 86400:
        return d.strftime("%H:%M:%S") if span < 600 else d.strftime("%d %b %H:%M")
    return d.strftime("%d %b %Y")


def _timeline_svg(tl: dict[str, Any]) -> str:
    users: list[str] = tl.get("users") or []
    start, end = _ts(tl.get("start")), _ts(tl.get("end"))
    if not users or start is None or end is None:
        return '<p class="none">No activity in this period.</p>'
    span = max(end - start, 1.0)
    left, right, top = 150, 20, 28
    width = 1100
    plot = width - left - right
    containers = tl.get("containers") or []
    refusals = tl.get("refusals") or []

    def x(ts: float) -> float:
        return left + (ts - start) / span * plot

    # Containers that overlap in time go on separate rows of their user's lane.
    rows_of: dict[str, list[float]] = {u: [] for u in users}
    placed: list[tuple[dict[str, Any], int, float, float | None]] = []
    for c in sorted(containers, key=lambda c: c.get("start") or c.get("created") or ""):
        s = _ts(c.get("start")) or _ts(c.get("created"))
        rows = rows_of.get(c["user"])
        if s is None or rows is None:
            continue
        e = _ts(c.get("end"))
        x0, x1 = x(s), max(x(e) if e is not None else left + plot, x(s) + 4)
        row = next((i for i, busy in enumerate(rows) if busy + 2 < x0), None)
        if row is None:
            row = len(rows) if len(rows) < 4 else min(range(len(rows)), key=rows.__getitem__)
            if row == len(rows):
                rows.append(0.0)
        rows[row] = max(rows[row], x1)
        placed.append((c, row, x0, e))
    row_h = 22
    lanes = {u: max(len(rows_of[u]), 1) for u in users}
    lane_top: dict[str, float] = {}
    y = float(top)
    for u in users:
        lane_top[u] = y
        y += lanes[u] * row_h + 20
    height = int(y) + 34

    parts = [f'<svg viewBox="0 0 {width} {height}" '
             f'width="100%" role="img" aria-label="Timeline of activity per user">']
    # Lanes and names.
    for i, u in enumerate(users):
        ly, lh = lane_top[u], lanes[u] * row_h + 20
        fill = "#f8fafd" if i % 2 == 0 else "#ffffff"
        parts.append(f'<rect x="{left}" y="{ly}" width="{plot}" height="{lh}" fill="{fill}"/>')
        parts.append(f'<text x="{left - 10}" y="{ly + lh / 2 + 5}" text-anchor="end" '
                     f'font-size="13" font-weight="600" fill="#1d2433">{escape(u)}</text>')
    # Time axis.
    axis_y = y
    parts.append(f'<line x1="{left}" y1="{axis_y}" x2="{left + plot}" y2="{axis_y}" '
                 'stroke="#9aa3b5"/>')
    for k in range(6):
        ts = start + span * k / 5
        xx = x(ts)
        parts.append(f'<line x1="{xx:.1f}" y1="{top}" x2="{xx:.1f}" y2="{axis_y + 5}" '
                     'stroke="#e3e7ef" stroke-dasharray="3 3"/>')
        anchor = "start" if k == 0 else "end" if k == 5 else "middle"
        parts.append(f'<text x="{xx:.1f}" y="{axis_y + 20}" text-anchor="{anchor}" '
                     f'font-size="11" fill="#5b6478">{escape(_short_time(ts, span))}</text>')
    if containers or refusals:
        for c, row, x0, e in placed:
            es = c.get("exit_status")
            color = ("#8d97ab" if e is None else _COLORS["run"] if es == 0 else _COLORS["error"])
            w = max((x(e) if e is not None else left + plot) - x0, 4)
            ry = lane_top[c["user"]] + 10 + row * row_h
            state = "still running" if e is None else f"exit {es}"
            title = (f"{c.get('name') or c['id'][:12]} · {c.get('image') or '?'} · profile "
                     f"{c.get('profile') or '?'} · {state}")
            parts.append(f'<rect x="{x0:.1f}" y="{ry}" width="{w:.1f}" height="{row_h - 6}" '
                         f'rx="4" fill="{color}" opacity="0.9"><title>{escape(title)}</title>'
                         '</rect>')
        for m in refusals:
            when = _ts(m.get("time"))
            if m["user"] not in lane_top or when is None:
                continue
            cx = x(when)
            cy = lane_top[m["user"]] + (lanes[m["user"]] * row_h + 20) / 2
            title = f"refused {m.get('action')}: {m.get('reason')}"
            parts.append(f'<path d="M{cx:.1f} {cy - 9:.1f} L{cx + 8:.1f} {cy:.1f} '
                         f'L{cx:.1f} {cy + 9:.1f} L{cx - 8:.1f} {cy:.1f} Z" fill="#d64545" '
                         f'stroke="#fff" stroke-width="1.5"><title>{escape(title)}</title>'
                         '</path>')
    else:
        bins = tl.get("bins") or []
        nb = max(len(bins), 1)
        # Containers, errors and refusals: the other actions would only bury them.
        shown = ("run", "error", "refused")
        peak = max((sum(cell.get(k, 0) for k in shown) for b in bins for cell in b.values()),
                   default=1) or 1
        bw = plot / nb
        for j, b in enumerate(bins):
            for u, cell in b.items():
                if u not in lane_top:
                    continue
                base = lane_top[u] + row_h + 14
                hmax = row_h + 8
                for kind in shown:
                    n = cell.get(kind, 0)
                    if not n:
                        continue
                    h = max(hmax * n / peak, 2)
                    base -= h
                    parts.append(f'<rect x="{left + j * bw + 1:.1f}" y="{base:.1f}" '
                                 f'width="{max(bw - 2, 1):.1f}" height="{h:.1f}" '
                                 f'fill="{_COLORS[kind]}"><title>{escape(u)}: {n} {kind}'
                                 '</title></rect>')
    parts.append("</svg>")
    return "".join(parts)


def _chips(items: list[tuple[str, str]]) -> str:
    if not items:
        return '<span class="none">none</span>'
    return "".join(f'<span class="chip {cls}">{escape(text)}</span>' for text, cls in items)


def _sev_class(sev: str) -> str:
    s = sev.lower()
    return "bad" if s in ("high", "critical") else "warn" if s in ("medium", "moderate") else ""


def _section(title: str, rows: list[dict[str, Any]], head: str,
             row: Callable[[dict[str, Any]], str], none: str, *, cut: bool = True) -> list[str]:
    """One report section: a table of ``rows`` (at most HTML_ROWS when ``cut``), or ``none``."""
    out = [f"<section><h2>{title}</h2>"]
    if rows:
        out.append(f"<table><tr>{head}</tr>")
        out += [row(x) for x in (rows[:HTML_ROWS] if cut else rows)]
        out.append("</table>")
        if cut:
            out.append(_more(len(rows)))
    else:
        out.append(f'<p class="none">{none}</p>')
    out.append("</section>")
    return out


def render_html(r: dict[str, Any]) -> str:
    t = r["totals"]
    tl = r["timeline"]
    cards = [
        ("Records", t["records"], ""), ("Users", t["users"], ""),
        ("Containers run", t["containers"], "ok"),
        ("Refusals", t["refusals"], "bad" if t["refusals"] else ""),
        ("Errors", t["errors"], "warn" if t["errors"] else ""),
        ("Unverified images", t["unverified_images"], "warn" if t["unverified_images"] else ""),
        ("With CIS findings", t["containers_with_cis_findings"],
         "warn" if t["containers_with_cis_findings"] else ""),
        ("Unenforced settings", t["containers_with_unenforced"],
         "warn" if t["containers_with_unenforced"] else ""),
    ]
    cis_sev = {c["id"]: c["severity"] for c in r["cis_findings"]}
    h: list[str] = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>secpod audit report</title>", f"<style>{_CSS}</style></head><body>",
        "<header><h1>secpod audit report</h1>",
        f"<p>{escape(r['source'])} &middot; {escape(_human(r['period']['first']))} to "
        f"{escape(_human(r['period']['last']))} &middot; generated "
        f"{escape(_human(r['generated']))}</p>"
        "</header><main>",
        '<div class="cards">',
    ]
    for label, value, cls in cards:
        h.append(f'<div class="card {cls}"><b>{value:,}</b><span>{escape(label)}</span></div>')
    h.append("</div>")
    def key(color: str, text: str) -> str:
        return f'<span><i style="background:{color}"></i>{escape(text)}</span>'

    if tl.get("containers") or tl.get("refusals"):
        keys = [key("#2f9e6e", "container, exit 0"), key("#e0a100", "non-zero exit"),
                key("#8d97ab", "still running"), key("#d64545", "refused")]
    else:
        keys = [key("#2f9e6e", "containers created"), key("#e0a100", "errors"),
                key("#d64545", "refusals"), "<span>per time slice, scaled to the busiest</span>"]
    legend = '<div class="legend">' + "".join(keys) + "</div>"
    h += ["<section><h2>Timeline</h2>", _timeline_svg(tl), legend, "</section>"]

    def group(g: dict[str, Any]) -> str:
        trust = [(f"{k} {v}", {"verified": "ok", "unverified": "warn",
                               "rejected": "bad"}.get(k, "")) for k, v in g["trust"].items()]
        cis = [(f"{c['id']} ×{c['count']}", _sev_class(cis_sev.get(c["id"], "")))
               for c in g["cis_findings"]]
        un = [(f"{u['setting']} ×{u['count']}", "warn") for u in g["unenforced"]]
        refused = f"<b>{g['refusals']}</b>" if g["refusals"] else "0"
        reasons = "".join(f"<div class='why'>{escape(x['reason'])} ×{x['count']}</div>"
                          for x in g["refusal_reasons"][:3])
        return (f"<tr><td>{escape(g['user'])}</td><td>{escape(g['image'] or '-')}</td>"
                f"<td>{escape(g['profile'] or '-')}</td><td class='n'>{g['containers']}"
                f"</td><td>{refused}{reasons}</td>"
                f"<td class='n'>{g['errors']}</td><td>{_chips(trust)}</td>"
                f"<td>{_chips(cis)}</td><td>{_chips(un)}</td></tr>")

    h += _section("By user, image and profile", r["groups"],
                  "<th>User</th><th>Image</th><th>Profile</th><th>Containers</th>"
                  "<th>Refusals</th><th>Errors</th><th>Trust</th><th>CIS findings</th>"
                  "<th>Not enforced</th>", group,
                  "Nothing ran or was refused in this period.")

    def pod(p: dict[str, Any]) -> str:
        members = _chips([(f"{m['name']} ({m['profile']})", "info") for m in p["members"]])
        acts = _chips([(f"{k} ×{v}", "info") for k, v in p["actions"].items()])
        deaths = f"<b>{p['infra_deaths']}</b>" if p["infra_deaths"] else "0"
        return (f"<tr><td>{escape(p['user'])}</td><td>{escape(p['name'] or p['id'][:12])}"
                f"</td><td>{members}</td><td>{acts}</td><td class='n'>{deaths}</td></tr>")

    h += _section("Pods", r.get("pods", []),
                  "<th>User</th><th>Pod</th><th>Members (profile)</th><th>Actions</th>"
                  "<th>Infra deaths</th>", pod, "No pod in this period.")

    top = max((x["count"] for x in r["refusals"]), default=1)

    def refusal(x: dict[str, Any]) -> str:
        pct = 100 * x["count"] / top
        acts = _chips([(a, "info") for a in x["actions"]])
        return (f"<tr><td class='n'>{x['count']}</td><td><div class='bar' "
                f"style='width:{pct:.0f}%'></div></td><td>{escape(x['reason'])}</td>"
                f"<td>{acts}</td><td>{escape(', '.join(x['users']))}</td></tr>")

    h += _section("Refusals and their reasons", r["refusals"],
                  "<th>Count</th><th style='width:22%'></th><th>Reason</th>"
                  "<th>Actions</th><th>Users</th>", refusal, "No refusals.")

    def image(i: dict[str, Any]) -> str:
        cls = "bad" if i["status"] == "rejected" else "warn"
        return (f"<tr><td>{_chips([(i['status'], cls)])}</td>"
                f"<td>{escape(i['image'] or '-')}</td>"
                f"<td><code>{escape((i['digest'] or '-')[:23])}</code></td>"
                f"<td class='n'>{i['count']}</td>"
                f"<td>{escape(', '.join(i['requirements']) or '-')}</td>"
                f"<td>{escape(', '.join(i['users']))}</td></tr>")

    h += _section("Unsigned, unverified or rejected images", r["images"],
                  "<th>Status</th><th>Image</th><th>Digest</th><th>Times</th>"
                  "<th>Policy</th><th>Users</th>", image,
                  "Every image that ran was verified against a signature.")

    def finding(c: dict[str, Any]) -> str:
        return (f"<tr><td>{escape(c['id'])}</td>"
                f"<td>{_chips([(c['severity'] or '?', _sev_class(c['severity']))])}</td>"
                f"<td>{escape(c['title'])}</td><td class='n'>{c['containers']}</td>"
                f"<td>{escape(', '.join(c['users']))}</td></tr>")

    # One row per CIS item or setting: few enough never to be cut.
    h += _section("CIS Docker Benchmark container-runtime findings", r["cis_findings"],
                  "<th>Item</th><th>Severity</th><th>Title</th><th>Containers</th>"
                  "<th>Users</th>", finding, "No container failed a CIS item.", cut=False)

    def unenforced(u: dict[str, Any]) -> str:
        return (f"<tr><td>{escape(u['setting'])}</td><td class='n'>{u['containers']}</td>"
                f"<td>{escape(', '.join(u['users']))}</td></tr>")

    h += _section("Settings not enforced on this host", r["unenforced"],
                  "<th>Setting</th><th>Containers</th><th>Users</th>", unenforced,
                  "Every LSM and cgroup setting was enforced.", cut=False)
    return "\n".join(h) + "</main></body></html>\n"
