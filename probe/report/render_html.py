"""HTML output: one self-contained file that opens offline.

Everything is inside the file — CSS, a small script for sorting/filtering the tables, SVG
charts — and a Content-Security-Policy allows exactly our own style and script (by hash) and
nothing else: no fetches, no fonts, no frames, no inline event handlers. Text from the network
is escaped by :mod:`probe.report.markup`; URLs are shown as text, never as links (a click would
reach a censored or hostile site from the analyst's machine). Times are shown in the report's
zone.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib

from probe.report import svg
from probe.report.markup import Markup, el, join
from probe.report.records import ChangeRow, Comparison, Report, Status, TargetRow
from probe.report.tables import change_label, change_rows
from probe.report.times import fmt_duration, fmt_local, iso_utc, resolve_tz
from probe.report.vocab import (
    CHANGES,
    CUT_STATES,
    STATE_LOOK,
    VERDICT_LOOK,
    VERDICTS,
    state_look,
    verdict_look,
)

_CSS_BASE = """
:root{--fg:#1b1b1b;--muted:#5a5a5a;--line:#d6d6d6;--bg:#fff;--alt:#f6f6f6}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
color:var(--fg);background:var(--bg)}
header,main,footer{max-width:1400px;margin:0 auto;padding:0 20px}
header{padding-top:18px}
h1{font-size:24px;margin:0 0 4px}
h2{font-size:19px;margin:28px 0 8px;padding-top:8px;border-top:2px solid var(--line)}
h3{font-size:15px;margin:18px 0 6px}
p.sub,p.note{color:var(--muted);margin:4px 0}
nav{margin:10px 0;display:flex;flex-wrap:wrap;gap:4px 14px}
nav a{color:#0b57a4}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0}
.card{border:1px solid var(--line);border-radius:6px;padding:8px 14px;min-width:130px}
.card b{display:block;font-size:22px}
.card span{color:var(--muted);font-size:12px}
table{border-collapse:collapse;width:100%;margin:6px 0 10px;font-size:13px}
th,td{border-bottom:1px solid var(--line);padding:4px 6px;text-align:left;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
tbody tr:nth-child(even){background:var(--alt)}
thead th{position:sticky;top:0;background:#ececec;z-index:1}
th button{all:unset;cursor:pointer;font-weight:600}
th button:focus-visible{outline:2px solid #0b57a4}
th[aria-sort=ascending] button::after{content:" \\25B2"}
th[aria-sort=descending] button::after{content:" \\25BC"}
.wrap{overflow-x:auto}
.url,.ev,.tt{overflow-wrap:anywhere;word-break:break-word}
.url{max-width:260px;font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12px}
.ev{max-width:420px;color:#333}
.ev .k,small{color:var(--muted)}
.tt{max-width:200px}
.v{display:inline-block;padding:0 6px;border-radius:3px;font-size:12px;font-weight:600;
white-space:nowrap;border:1px solid #0003}
.filters{display:flex;flex-wrap:wrap;gap:10px;align-items:center;margin:6px 0}
.filters input{padding:4px 6px;min-width:260px}
.filters select{padding:3px}
svg.chart{display:block;margin:4px 0 10px;background:#fff}
svg.chart text{font-size:11px;fill:#222}
svg.chart text.seg{font-weight:600}
svg.chart text.inv{fill:#fff}
svg.chart text.tick{font-size:10px;fill:#555}
svg.chart text.b{font-weight:600}
svg.chart rect{shape-rendering:crispEdges}
svg.chart .grid{stroke:#bbb;stroke-width:.5;stroke-dasharray:2 2}
svg.chart .nodata{fill:#fff;stroke:#999;stroke-width:.5}
ul.legend{list-style:none;padding:0;margin:4px 0;display:flex;flex-wrap:wrap;gap:4px 14px;
font-size:12px}
ul.legend svg{vertical-align:-1px}
svg.mini{vertical-align:middle;margin-right:6px}
footer{margin:30px auto 40px;color:var(--muted);font-size:12px}
@media print{thead th{position:static}.filters{display:none}}
"""

_JS = """
(function () {
  "use strict";
  function value(cell) {
    var v = cell.getAttribute("data-sort");
    return v === null ? cell.textContent.trim() : v;
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, i) {
      var button = document.createElement("button");
      button.type = "button";
      button.textContent = th.textContent;
      th.textContent = "";
      th.appendChild(button);
      button.addEventListener("click", function () {
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var numeric = th.classList.contains("n");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = value(a.cells[i]), y = value(b.cells[i]), c;
          if (numeric) { c = (parseFloat(x) || 0) - (parseFloat(y) || 0); }
          else { c = x.localeCompare(y); }
          return ascending ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
  Array.prototype.forEach.call(document.querySelectorAll("[data-filter]"), function (box) {
    var table = document.getElementById(box.getAttribute("data-filter"));
    var text = box.querySelector("input");
    var select = box.querySelector("select");
    var count = box.querySelector("output");
    function apply() {
      var q = text.value.toLowerCase(), want = select ? select.value : "", shown = 0;
      Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
        var ok = (!q || row.textContent.toLowerCase().indexOf(q) >= 0) &&
                 (!want || row.getAttribute("data-verdict") === want);
        row.hidden = !ok;
        if (ok) { shown += 1; }
      });
      count.textContent = shown + " of " + table.tBodies[0].rows.length + " shown";
    }
    text.addEventListener("input", apply);
    if (select) { select.addEventListener("change", apply); }
    apply();
  });
}());
"""


def _badge_css() -> str:
    rules = [
        f".v-{v}{{background:{look.colour};color:{look.fg}}}" for v, look in VERDICT_LOOK.items()
    ]
    rules += [
        f".s-{s.replace('.', '-')}{{background:{look.colour};color:{look.fg}}}"
        for s, look in STATE_LOOK.items()
    ]
    return "\n".join(rules)


CSS = _CSS_BASE + _badge_css() + "\n"


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


CSP = (
    "default-src 'none'; "
    f"style-src '{_sha256(CSS)}'; "
    f"script-src '{_sha256(_JS)}'; "
    "img-src data:; base-uri 'none'; form-action 'none'"
)


def badge(verdict: str | None, method: str | None = None) -> Markup:
    look = verdict_look(verdict)
    text = look.label if verdict else "not measured"
    return el("span", {"class": f"v v-{verdict or 'none'}"}, text) + (
        Markup(" ") + el("code", None, method) if method else Markup("")
    )


def state_badge(state: str) -> Markup:
    return el("span", {"class": f"v s-{state.replace('.', '-')}"}, state_look(state).label)


def _time(when: dt.datetime | None, tz: dt.tzinfo) -> Markup:
    if when is None:
        return Markup("")
    return el("time", {"datetime": iso_utc(when)}, fmt_local(when, tz))


def _td(content: object, *, sort: object = None, cls: str | None = None) -> Markup:
    return el("td", {"data-sort": sort, "class": cls}, content)


def _num(n: int | float) -> Markup:
    return _td(f"{n:,}" if isinstance(n, int) else f"{n:g}", sort=n, cls="n")


def _table(
    table_id: str | None, headers: list[tuple[str, bool]], rows: list[Markup], sortable: bool = True
) -> Markup:
    head = el(
        "tr",
        None,
        [
            el("th", {"class": "n" if numeric else None, "scope": "col"}, h)
            for h, numeric in headers
        ],
    )
    return el(
        "div",
        {"class": "wrap"},
        el(
            "table",
            {"id": table_id, "class": "sortable" if sortable else None},
            el("thead", None, head),
            el("tbody", None, rows),
        ),
    )


def render_html(report: Report) -> str:
    tz = resolve_tz(report.meta.tz)
    m, s = report.meta, report.summary
    start, end = (m.since or m.first_run), (m.until or m.last_run)
    period = (
        f"{fmt_local(start, tz)} → {fmt_local(end, tz)} ({m.tz})"
        if start
        else "no runs in this period"
    )
    title = f"Reachability report · {period}"
    scale = svg.report_scale(report)
    sections = [
        ("summary", "Summary", _summary(report, tz)),
        ("health", "Network health", _health(report, scale, tz)),
        ("targets", "Targets", _targets(report, tz)),
        ("changes", "What changed", _changes(report, tz)),
        ("timeline", "Timeline per target", _timelines(report, scale, tz)),
        ("network-timeline", "Timeline per network", _network_mix(report, scale, tz)),
    ]
    if len(report.networks) > 1:
        sections.append(("networks", "Comparison across networks", _networks(report, tz)))
    sections.append(("breakdown", "By category and method", _breakdown(report, tz)))
    body = join(
        [
            el(
                "header",
                None,
                el("h1", None, "Reachability report"),
                el(
                    "p",
                    {"class": "sub"},
                    f"{period} · {s.targets} targets · {s.runs} runs · {s.networks} "
                    f"network{'s' if s.networks != 1 else ''} · {s.measurements:,} measurements",
                ),
                el(
                    "p",
                    {"class": "sub"},
                    f"Databases: {', '.join(m.databases)}"
                    + (f" · categories: {', '.join(m.categories)}" if m.categories else "")
                    + f" · generated {fmt_local(m.generated_at, tz)}",
                ),
                el("nav", None, [el("a", {"href": f"#{sid}"}, name) for sid, name, _ in sections]),
            ),
            el(
                "main",
                None,
                [
                    el("section", {"id": sid}, el("h2", None, name), content)
                    for sid, name, content in sections
                ],
            ),
            el("footer", None, el("p", None, _FOOTER)),
        ]
    )
    return (
        Markup("<!DOCTYPE html>\n")
        + el(
            "html",
            {"lang": "en"},
            el(
                "head",
                None,
                Markup('<meta charset="utf-8">'),
                el("meta", {"http-equiv": "Content-Security-Policy", "content": CSP}),
                el("meta", {"name": "viewport", "content": "width=device-width, initial-scale=1"}),
                el("meta", {"name": "referrer", "content": "no-referrer"}),
                el("meta", {"name": "generator", "content": "probe report"}),
                el("link", {"rel": "icon", "href": "data:,"}),
                el("title", None, title),
                Markup("<style>") + Markup(CSS) + Markup("</style>"),
            ),
            el("body", None, body, Markup("<script>") + Markup(_JS) + Markup("</script>")),
        )
        + "\n"
    )


_FOOTER = (
    "How to read this report: a target's status is its latest conclusive verdict on each "
    "network — a network shutdown or an inconclusive test says nothing about a site — and the "
    "most severe one across networks. Blocked, intercepted and throttled count as "
    "interference. Timeline cells are runs, or time buckets when there are too many runs (a "
    "bucket shows its most frequent verdict; hover for counts). The network-health timeline "
    "comes from canary hosts measured before, during and after each run (or from the verdicts "
    "for older databases). Addresses other than those the measurements contacted are replaced "
    "by [ip]. Colours follow the Okabe–Ito palette and every colour has a label. Generated "
    "by probe; this file makes no network requests."
)


def _summary(report: Report, tz: dt.tzinfo) -> Markup:
    s = report.summary
    cards = [
        (
            f"{s.targets_interfered_now} / {s.targets}",
            "targets blocked, intercepted or throttled now",
        ),
        (str(s.targets_interfered), "targets interfered with at some point"),
        (
            f"{s.runs:,}",
            "runs (" + ", ".join(f"{n} {k}" for k, n in s.runs_by_status.items()) + ")",
        ),
        (str(s.networks), "networks"),
        (f"{s.measurements:,}", "measurements"),
        (fmt_duration(s.cut_seconds) if s.cut_seconds else "none", "network cut (all networks)"),
    ]
    total = s.measurements or 1
    rows = [
        el(
            "tr",
            {"data-verdict": v},
            _td(badge(v), sort=v),
            _td(VERDICT_DESCRIPTIONS[v]),
            _num(n),
            _num(round(100.0 * n / total, 1)),
        )
        for v, n in s.verdicts.items()
    ]
    return join(
        [
            el(
                "div",
                {"class": "cards"},
                [
                    el("div", {"class": "card"}, el("b", None, big), el("span", None, small))
                    for big, small in cards
                ],
            ),
            el("h3", None, "Verdicts of all measurements"),
            svg.verdict_bar(s.verdicts),
            _table(
                "verdicts",
                [("verdict", False), ("meaning", False), ("measurements", True), ("%", True)],
                rows,
            ),
        ]
    )


VERDICT_DESCRIPTIONS = {
    "ok": "reachable, consistent with the control vantage",
    "blocked": "deliberate interference on the probe's network",
    "intercepted": "TLS interception: a certificate the control does not see",
    "throttled": "reachable but far slower than the control and the canaries",
    "down": "the site itself is unavailable (the control sees the same failure)",
    "shutdown": "the probe's network was cut, not this site",
    "inconclusive": "not enough evidence to tell",
}


def _health(report: Report, scale: svg.Scale | None, tz: dt.tzinfo) -> Markup:
    if not report.health or scale is None:
        return el("p", None, "No health data in this period.")
    states = sorted({h.state for h in report.health})
    cuts = [h for h in report.health if h.state in CUT_STATES]
    source = {
        "canaries": "canary hosts measured with every run",
        "verdicts": "the verdicts of each run (no canary samples in the database)",
        "canaries+verdicts": "canary hosts, or the verdicts for runs without canaries",
    }.get(report.meta.health_source, report.meta.health_source)
    rows = [
        el(
            "tr",
            {"data-verdict": h.state},
            _td(h.network),
            _td(state_badge(h.state), sort=h.state),
            _td(_time(h.start, tz), sort=iso_utc(h.start)),
            _td(_time(h.end, tz), sort=iso_utc(h.end)),
            _td(fmt_duration(h.seconds), sort=h.seconds, cls="n"),
            _num(h.rounds),
            _td(h.source),
        )
        for h in cuts
    ]
    return join(
        [
            el("p", {"class": "note"}, f"State of each probe's network, from {source}."),
            svg.state_legend(states),
            svg.health_chart(report, scale, tz),
            el("h3", None, f"Cuts ({len(cuts)})"),
            _table(
                "cuts",
                [
                    ("network", False),
                    ("state", False),
                    ("from", False),
                    ("until", False),
                    ("duration", True),
                    ("health rounds", True),
                    ("evidence", False),
                ],
                rows,
            )
            if cuts
            else el("p", None, "No shutdown or local outage in this period."),
        ]
    )


def _evidence(t: TargetRow) -> Markup:
    parts: list[object] = [t.evidence]
    if t.title:
        parts += [Markup("<br>"), el("span", {"class": "k"}, "page title: "), t.title]
    if t.server:
        parts += [Markup("<br>"), el("span", {"class": "k"}, "server: "), t.server]
    return join(parts)


def _target_row(t: TargetRow, tz: dt.tzinfo) -> Markup:
    return el(
        "tr",
        {"data-verdict": t.verdict},
        _td(t.url, sort=t.url, cls="url"),
        _td(t.category or "", sort=t.category or ""),
        _td(
            join([badge(t.verdict), Markup("<br>"), el("small", None, _time(t.measured_at, tz))]),
            sort=f"{VERDICTS.index(t.verdict)}",
        ),
        _td(el("code", None, t.method) if t.method else "", sort=t.method or ""),
        _num(t.confidence),
        _td(
            join(
                [
                    f"{t.networks_interfered} of {t.networks}",
                    Markup("<br>"),
                    el("small", None, t.network),
                ]
            ),
            sort=t.networks_interfered,
            cls="n",
        ),
        _td(_time(t.first_blocked, tz), sort=iso_utc(t.first_blocked) if t.first_blocked else ""),
        _td(_time(t.last_blocked, tz), sort=iso_utc(t.last_blocked) if t.last_blocked else ""),
        _td(f"{t.interfered:,} / {t.measurements:,}", sort=t.interfered, cls="n"),
        _td(_evidence(t), cls="ev"),
    )


def _targets(report: Report, tz: dt.tzinfo) -> Markup:
    options = [el("option", {"value": ""}, "every status")] + [
        el("option", {"value": v}, verdict_look(v).label) for v in VERDICTS
    ]
    headers = [
        ("target", False),
        ("category", False),
        ("status", False),
        ("method", False),
        ("confidence", True),
        ("networks interfered (status seen on)", True),
        ("first seen blocked", False),
        ("last seen blocked", False),
        ("interfered / measured", True),
        ("evidence", False),
    ]
    return join(
        [
            el(
                "p",
                {"class": "note"},
                "Status = latest conclusive verdict on each network, the most severe across "
                'networks; "blocked" dates count blocking, interception and throttling. Click a '
                "column to sort; type to filter.",
            ),
            el(
                "div",
                {"class": "filters", "data-filter": "targets-table"},
                el(
                    "label",
                    None,
                    "Filter ",
                    el(
                        "input",
                        {
                            "type": "search",
                            "placeholder": "URL, method, evidence…",
                            "aria-label": "filter targets",
                        },
                    ),
                ),
                el("label", None, "Status ", el("select", {"aria-label": "status"}, options)),
                el("output", None, ""),
            ),
            _table("targets-table", headers, [_target_row(t, tz) for t in report.targets]),
        ]
    )


def _status_cell(st: Status | None, tz: dt.tzinfo) -> Markup:
    if st is None:
        return _td("", sort="")
    return _td(
        join([badge(st.verdict, st.method), Markup("<br>"), _time(st.at, tz)]), sort=st.verdict
    )


def _change_table(rows: list[ChangeRow], tz: dt.tzinfo, table_id: str) -> Markup:
    with_net = any(r.network for r in rows)
    headers = (
        [("change", False)]
        + ([("network", False)] if with_net else [])
        + [
            ("target", False),
            ("category", False),
            ("before", False),
            ("after", False),
            ("evidence (after)", False),
        ]
    )
    out = []
    for r, flat in zip(rows, change_rows(rows), strict=True):
        cells = [_td(el("b", None, change_label(r.change)), sort=CHANGES.index(r.change))]
        if with_net:
            cells.append(_td(r.network))
        cells += [
            _td(r.url, cls="url"),
            _td(r.category or ""),
            _status_cell(r.before, tz),
            _status_cell(r.after, tz),
            _td(flat["evidence"] or "", cls="ev"),
        ]
        out.append(el("tr", {"data-verdict": r.change}, cells))
    return _table(table_id, headers, out)


def _changes(report: Report, tz: dt.tzinfo) -> Markup:
    counts = {c: 0 for c in CHANGES}
    for r in report.changes:
        counts[r.change] += 1
    summary = ", ".join(f"{n} {change_label(c)}" for c, n in counts.items() if n)
    return join(
        [
            el("p", {"class": "note"}, f"Compared: {report.meta.baseline}."),
            el("p", None, summary or "Nothing changed."),
            _change_table(report.changes, tz, "changes-table") if report.changes else Markup(""),
        ]
    )


def _timelines(report: Report, scale: svg.Scale | None, tz: dt.tzinfo) -> Markup:
    if scale is None or not report.timeline:
        return el("p", None, "No measurements in this period.")
    unit = (
        "one cell per run"
        if report.meta.timeline_unit == "run"
        else f"one cell per {report.meta.timeline_unit} (its most frequent verdict)"
    )
    parts: list[object] = [
        el(
            "p",
            {"class": "note"},
            f"Verdict over time, {unit}; the top rows are the "
            "network's health and the mix of all targets. Hover a cell for details.",
        ),
        svg.verdict_legend(),
    ]
    for net in report.cells:
        parts.append(el("h3", None, net))
        parts.append(svg.timeline_chart(report, net, scale, tz))
    return join(parts)


def _network_mix(report: Report, scale: svg.Scale | None, tz: dt.tzinfo) -> Markup:
    if scale is None or not report.network_timeline:
        return el("p", None, "No measurements in this period.")
    parts: list[object] = [
        el(
            "p",
            {"class": "note"},
            "Share of each verdict among all measurements of a network in each timeline cell.",
        ),
        svg.verdict_legend(),
    ]
    for net in report.cells:
        parts.append(el("h3", None, net))
        parts.append(svg.mix_chart(report, net, scale, tz))
    return join(parts)


def _networks(report: Report, tz: dt.tzinfo) -> Markup:
    nets = [n.label for n in report.networks]
    summary_rows = [
        el(
            "tr",
            None,
            _td(n.label),
            _td("" if n.asn is None else f"AS{n.asn}"),
            _td(n.cc or ""),
            _num(n.runs),
            _num(n.measurements),
            _td(_time(n.first_run, tz), sort=iso_utc(n.first_run) if n.first_run else ""),
            _td(_time(n.last_run, tz), sort=iso_utc(n.last_run) if n.last_run else ""),
            _td(join([svg.mini_bar(n.verdicts), _mix_text(n.verdicts)])),
            _td(fmt_duration(n.cut_seconds) if n.cut_seconds else "", sort=n.cut_seconds, cls="n"),
        )
        for n in report.networks
    ]
    pivot_rows = []
    for url in report.target_urls:
        cells = [_td(url, cls="url")]
        statuses = [report.comparison.get((n, url)) for n in nets]
        for st in statuses:
            cells.append(_status_cell(st, tz))
        verdicts = {st.verdict for st in statuses if st is not None}
        differs = len(verdicts) > 1
        cells.append(_td("differs" if differs else "same", sort=int(differs)))
        pivot_rows.append(el("tr", None, cells))
    return join(
        [
            _table(
                "networks-table",
                [
                    ("network", False),
                    ("ASN", False),
                    ("country", False),
                    ("runs", True),
                    ("measurements", True),
                    ("first run", False),
                    ("last run", False),
                    ("verdicts", False),
                    ("cut", True),
                ],
                summary_rows,
            ),
            el("h3", None, "Status of each target on each network"),
            _table(
                "pivot-table",
                [("target", False)] + [(n, False) for n in nets] + [("networks agree?", False)],
                pivot_rows,
            ),
        ]
    )


def _mix_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{verdict_look(v).label} {n:,}" for v, n in counts.items() if n)


def _breakdown(report: Report, tz: dt.tzinfo) -> Markup:
    cat_rows = [
        el(
            "tr",
            None,
            _td(c.category or "(none)"),
            _num(c.targets),
            _num(c.targets_interfered),
            _num(c.measurements),
            _td(join([svg.mini_bar(c.verdicts), _mix_text(c.verdicts)])),
        )
        for c in report.categories
    ]
    method_rows = [
        el(
            "tr",
            {"data-verdict": m.verdict},
            _td(badge(m.verdict), sort=m.verdict),
            _td(el("code", None, m.method) if m.method else "", sort=m.method or ""),
            _num(m.measurements),
            _num(m.targets),
            _num(m.networks),
            _td(_time(m.first_seen, tz), sort=iso_utc(m.first_seen)),
            _td(_time(m.last_seen, tz), sort=iso_utc(m.last_seen)),
        )
        for m in report.methods
    ]
    return join(
        [
            el("h3", None, "By category"),
            _table(
                "categories-table",
                [
                    ("category", False),
                    ("targets", True),
                    ("targets interfered", True),
                    ("measurements", True),
                    ("verdicts", False),
                ],
                cat_rows,
            ),
            el("h3", None, "By method (everything but ok)"),
            _table(
                "methods-table",
                [
                    ("verdict", False),
                    ("method", False),
                    ("measurements", True),
                    ("targets", True),
                    ("networks", True),
                    ("first seen", False),
                    ("last seen", False),
                ],
                method_rows,
            ),
        ]
    )


def render_comparison_html(comparison: Comparison) -> str:
    """``probe compare --format html``: the change table in a small self-contained page."""
    tz = resolve_tz(comparison.tz)
    counts = ", ".join(f"{n} {change_label(k)}" for k, n in comparison.counts.items() if n)
    body = el(
        "main",
        None,
        el("h1", None, "What changed"),
        el("p", None, f"Before: {comparison.before_label}"),
        el("p", None, f"After: {comparison.after_label} (times in {comparison.tz})"),
        el("p", None, counts or "No changes."),
        _change_table(comparison.rows, tz, "changes-table"),
    )
    return (
        Markup("<!DOCTYPE html>\n")
        + el(
            "html",
            {"lang": "en"},
            el(
                "head",
                None,
                Markup('<meta charset="utf-8">'),
                el("meta", {"http-equiv": "Content-Security-Policy", "content": CSP}),
                el("link", {"rel": "icon", "href": "data:,"}),
                el("title", None, "What changed"),
                Markup("<style>") + Markup(CSS) + Markup("</style>"),
            ),
            el("body", None, body, Markup("<script>") + Markup(_JS) + Markup("</script>")),
        )
        + "\n"
    )
