"""Ours next to OONI's: our current verdict beside OONI's own for every imported measurement.

Responsibility: read imported measurements (the ``imports`` table, schema 5) with their
current verdict from probe databases, read-only, through the store's read-only opener; build
the agreement matrix (our verdict × OONI's outcome) and the list of disagreements grouped by
what they mean; render it as a terminal table, Markdown, CSV or JSON (``probe compare --ooni``).

OONI's outcome of a Web Connectivity measurement is its ``blocking`` and ``accessible`` test
keys (ooni/spec ``nettests/ts-017-web-connectivity.md``: ``blocking`` false + ``accessible``
true = accessible; a string = an anomaly of that type — ``dns``, ``tcp_ip``, ``tls`` (0.5),
``http-failure``, ``http-diff``; false + false = the website is down; null = the measurement
failed, e.g. the control did not answer) and, from 0.5, ``x_blocking_flags`` (probe-cli
``internal/experiment/webconnectivitylte/analysiscore.go``: 1 DNS, 2 TCP/IP, 4 TLS, 8 HTTP
failure, 16 HTTP diff, 32 success).

OONI's app tests publish their own verdict keys instead (stored as an object in place of
``blocking``: probe.ingest.mapper.APP_VERDICT_KEYS), read here into the same outcomes
(:func:`app_outcome`): ``facebook_dns_blocking`` → dns, ``facebook_tcp_blocking``,
``telegram_tcp_blocking`` and ``whatsapp_endpoints_status`` → tcp_ip,
``telegram_http_blocking`` and ``telegram_web_status`` → http-failure, and a blocked WhatsApp
registration server or web client, or Signal's backend, by its failure (``ssl_*`` tls, DNS
errors dns, connect errors tcp_ip, else http-failure); every key present saying "ok" or false
is accessible (ooni/spec ts-018, ts-019, ts-020, ts-029).

The groups say which of OONI's anomalies we consider false positives (the site answered with a
CDN challenge or region block, the site died, broken IPv6, the network was cut) and which
blocks OONI missed (a block page served with HTTP 200 that it scored accessible).
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from probe.report.scrub import clean_text
from probe.store.readonly import connect_readonly, reading

FORMATS = ("table", "md", "csv", "json")

#: Our verdicts, in matrix order (``none`` = the measurement has no verdict yet).
OUR_VERDICTS = ("ok", "blocked", "intercepted", "throttled", "down", "shutdown",
                "inconclusive", "none")
#: OONI's outcomes, in matrix order (further ``anomaly.*`` types are appended when seen).
OONI_OUTCOMES = ("accessible", "anomaly.dns", "anomaly.tcp_ip", "anomaly.tls",
                 "anomaly.http-failure", "anomaly.http-diff", "down", "failure", "unknown")
#: ``x_blocking_flags`` bits (probe-cli webconnectivitylte analysiscore.go).
BLOCKING_FLAGS = ((1, "dns"), (2, "tcp_ip"), (4, "tls"), (8, "http-failure"),
                  (16, "http-diff"), (32, "success"))
INTERFERENCE = frozenset({"blocked", "intercepted", "throttled"})

#: Disagreement groups: code → what it means for an analyst, in display order.
GROUPS: dict[str, str] = {
    "block_ooni_missed": "blocks OONI missed: we see interference, OONI scored it accessible",
    "ooni_anomaly_server_side": "OONI anomaly, a server-side refusal for us (CDN captcha, "
                                "region block): a false positive",
    "ooni_anomaly_site_down": "OONI anomaly, the site itself is down for us: a false positive",
    "ooni_anomaly_broken_ipv6": "OONI anomaly, broken IPv6 on the probe's side for us: "
                                "a false positive",
    "ooni_anomaly_network_cut": "OONI anomaly, the network was cut for us (shutdown)",
    "ooni_anomaly_we_reached": "OONI anomaly, the site was reachable for us",
    "ooni_anomaly_we_cannot_tell": "OONI anomaly, we cannot tell (inconclusive)",
    "ooni_down_we_blocked": "OONI says the site is down, we see interference",
    "ooni_down_we_reached": "OONI says the site is down, it was reachable for us",
    "ooni_accessible_we_other": "OONI says accessible, we say down, shutdown or inconclusive",
    "ooni_down_we_other": "OONI says down, we say shutdown or inconclusive",
    "ooni_unsure_we_judged": "OONI could not tell (failure or no verdict), we could",
    "not_judged": "no verdict of ours yet (run probe reanalyze)",
}


@dataclass(frozen=True, slots=True)
class Side:
    """One side's judgement of a measurement, as displayed."""

    outcome: str
    method: str | None = None
    confidence: float | None = None
    evidence: str = ""


@dataclass(frozen=True, slots=True)
class Row:
    """One imported measurement with both judgements.

    ``ours``: our verdict (outcome = verdict name; ``none`` = not judged). ``ooni``: OONI's
    outcome (:data:`OONI_OUTCOMES`) with its raw ``blocking``/``accessible``/flags.
    ``group``: the disagreement group (:data:`GROUPS`); None = the two agree.
    """

    measurement_id: str
    input: str
    measurement_uid: str | None
    report_id: str | None
    probe_cc: str | None
    probe_asn: int | None
    test_version: str | None
    started_at: str
    ours: Side
    ooni: Side
    ooni_blocking: Any
    ooni_accessible: Any
    ooni_flags: int | None
    group: str | None
    test_name: str = "web_connectivity"


@dataclass(frozen=True, slots=True)
class OoniComparison:
    """The agreement matrix and every disagreement, grouped."""

    databases: tuple[str, ...]
    total: int
    agree: int
    matrix: dict[str, dict[str, int]]
    outcomes: tuple[str, ...]
    disagreements: dict[str, list[Row]] = field(default_factory=dict)


# --- the decision (pure) -------------------------------------------------------------------


def flag_names(flags: int | None) -> list[str]:
    """The names of the bits set in ``x_blocking_flags`` (empty for None or 0)."""
    return [name for bit, name in BLOCKING_FLAGS if flags and flags & bit]


#: App-test keys that say "blocked" when true, and the anomaly each is.
_APP_FLAGS = (("facebook_dns_blocking", "dns"), ("facebook_tcp_blocking", "tcp_ip"),
              ("telegram_tcp_blocking", "tcp_ip"), ("telegram_http_blocking", "http-failure"))
#: App-test status keys ("ok" / "blocked"), and the key naming the failure when blocked (None:
#: the anomaly is ``tcp_ip``, WhatsApp's chat endpoints being TCP connects).
_APP_STATUS = (("whatsapp_endpoints_status", None),
               ("registration_server_status", "registration_server_failure"),
               ("whatsapp_web_status", "whatsapp_web_failure"),
               ("telegram_web_status", "telegram_web_failure"),
               ("signal_backend_status", "signal_backend_failure"))


def _anomaly_of(failure: Any) -> str:
    """The Web Connectivity anomaly an app test's failure string belongs to."""
    text = str(failure or "")
    if text.startswith("ssl_"):
        return "tls"
    if text.startswith(("dns_", "android_dns")):
        return "dns"
    if text.startswith(("connection_", "generic_timeout")) or text == "connect_error":
        return "tcp_ip"
    return "http-failure"


def app_outcome(keys: dict[str, Any]) -> str:
    """OONI's outcome of an app test from its own verdict keys (see the docstring): the
    first anomaly in the keys' order, accessible when every key present says ok, else
    failure (OONI could not tell)."""
    for key, anomaly in _APP_FLAGS:
        if keys.get(key) is True:
            return f"anomaly.{anomaly}"
    for key, failure_key in _APP_STATUS:
        if keys.get(key) in ("blocked", "blocking"):
            return "anomaly." + ("tcp_ip" if failure_key is None
                                 else _anomaly_of(keys.get(failure_key)))
    said = [keys[k] for k, _ in _APP_FLAGS if k in keys] + \
        [keys[k] for k, _ in _APP_STATUS if k in keys]
    if said and all(v is False or v == "ok" for v in said):
        return "accessible"
    return "failure"


def ooni_outcome(blocking: Any, accessible: Any) -> str:
    """OONI's outcome from its ``blocking`` and ``accessible`` keys, or an app test's own
    verdict keys (see the docstring)."""
    if isinstance(blocking, dict):
        return app_outcome(blocking)
    if isinstance(blocking, str) and blocking:
        return f"anomaly.{blocking}"
    if blocking is False and accessible is True:
        return "accessible"
    if blocking is False and accessible is False:
        return "down"
    if blocking is None and accessible in (None, False):
        return "failure"
    return "unknown"


def group_of(ours: str, method: str | None, ooni: str) -> str | None:
    """The disagreement group of our verdict (and method) against OONI's outcome; None =
    they agree (ok/accessible, interference/anomaly, down/down, inconclusive/failure)."""
    if ours == "none":
        return "not_judged"
    anomaly = ooni.startswith("anomaly.")
    if ((ours == "ok" and ooni == "accessible") or (ours in INTERFERENCE and anomaly)
            or (ours == "down" and ooni == "down")
            or (ours == "inconclusive" and ooni in ("failure", "unknown"))):
        return None
    if anomaly:
        if ours == "inconclusive":
            return {"server_side": "ooni_anomaly_server_side",
                    "local_ipv6": "ooni_anomaly_broken_ipv6"}.get(
                        method or "", "ooni_anomaly_we_cannot_tell")
        return {"ok": "ooni_anomaly_we_reached", "down": "ooni_anomaly_site_down",
                "shutdown": "ooni_anomaly_network_cut"}[ours]
    if ooni == "accessible":
        return "block_ooni_missed" if ours in INTERFERENCE else "ooni_accessible_we_other"
    if ooni == "down":
        if ours in INTERFERENCE:
            return "ooni_down_we_blocked"
        return "ooni_down_we_reached" if ours == "ok" else "ooni_down_we_other"
    return "ooni_unsure_we_judged"


def build(rows: Iterable[Row], databases: Sequence[str] = ()) -> OoniComparison:
    """The matrix and grouped disagreements of ``rows`` (pure)."""
    counts: Counter[tuple[str, str]] = Counter()
    extra: list[str] = []
    groups: dict[str, list[Row]] = {}
    total = agree = 0
    for r in rows:
        total += 1
        counts[(r.ours.outcome, r.ooni.outcome)] += 1
        if r.ooni.outcome not in OONI_OUTCOMES and r.ooni.outcome not in extra:
            extra.append(r.ooni.outcome)
        if r.group is None:
            agree += 1
        else:
            groups.setdefault(r.group, []).append(r)
    outcomes = (*OONI_OUTCOMES[:-3], *sorted(extra), *OONI_OUTCOMES[-3:])
    matrix = {ours: {o: counts[(ours, o)] for o in outcomes} for ours in OUR_VERDICTS}
    ordered = {g: groups[g] for g in GROUPS if g in groups}
    return OoniComparison(tuple(databases), total, agree, matrix, outcomes, ordered)


# --- reading (read-only) ---------------------------------------------------------------------

_QUERY = """
SELECT m.measurement_id, m.url, m.started_at, i.measurement_uid, i.report_id, i.probe_cc,
       i.probe_asn, i.test_name, i.test_version, i.ooni_blocking, i.ooni_accessible, i.ooni_flags,
       v.verdict, v.method, v.confidence, v.evidence
FROM imports i JOIN measurements m ON m.measurement_id = i.measurement_id
LEFT JOIN verdicts v ON v.measurement_id = i.measurement_id AND v.is_current = 1
ORDER BY m.started_at, m.measurement_id
"""


def _json(text: str | None) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return text


def _row(r: sqlite3.Row) -> Row:
    blocking, accessible = _json(r["ooni_blocking"]), _json(r["ooni_accessible"])
    flags = r["ooni_flags"]
    outcome = ooni_outcome(blocking, accessible)
    ours = r["verdict"] or "none"
    ooni_evidence = (" ".join(f"{k}={json.dumps(v)}" for k, v in blocking.items())
                     if isinstance(blocking, dict) else
                     f"blocking={json.dumps(blocking)} accessible={json.dumps(accessible)}")
    if flags is not None:
        ooni_evidence += f" x_blocking_flags={flags} ({','.join(flag_names(flags)) or '-'})"
    return Row(
        measurement_id=r["measurement_id"], input=clean_text(r["url"]),
        measurement_uid=r["measurement_uid"], report_id=r["report_id"],
        probe_cc=r["probe_cc"], probe_asn=r["probe_asn"], test_version=r["test_version"],
        started_at=r["started_at"],
        ours=Side(ours, r["method"], r["confidence"], clean_text(r["evidence"])),
        ooni=Side(outcome, None, None, ooni_evidence), ooni_blocking=blocking,
        ooni_accessible=accessible, ooni_flags=flags,
        group=group_of(ours, r["method"], outcome), test_name=r["test_name"])


def read_rows(db: str | Path) -> Iterator[Row]:
    """Every imported measurement of one database with both judgements, oldest first. A
    database from before imports existed (schema < 5) has none."""
    conn = connect_readonly(db)
    try:
        conn.row_factory = sqlite3.Row
        with reading(db):
            if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                            "AND name = 'imports'").fetchone() is None:
                return
            for r in conn.execute(_QUERY):
                yield _row(r)
    finally:
        conn.close()


def compare_ooni(databases: Sequence[str | Path]) -> OoniComparison:
    """Ours next to OONI's over every imported measurement of ``databases`` (read-only)."""
    def rows() -> Iterator[Row]:
        for db in databases:
            yield from read_rows(db)
    return build(rows(), [str(d) for d in databases])


# --- rendering -------------------------------------------------------------------------------

_SHORT = {"accessible": "access", "anomaly.dns": "a.dns", "anomaly.tcp_ip": "a.tcp",
          "anomaly.tls": "a.tls", "anomaly.http-failure": "a.httpf",
          "anomaly.http-diff": "a.hdiff", "down": "down", "failure": "fail",
          "unknown": "unkn"}


def _ours_line(r: Row) -> str:
    conf = f" {r.ours.confidence:.2f}" if r.ours.confidence is not None else ""
    method = f" {r.ours.method}" if r.ours.method else ""
    return f"{r.ours.outcome}{method}{conf}: {r.ours.evidence}"


def _where(r: Row) -> str:
    asn = f"AS{r.probe_asn}" if r.probe_asn else "AS?"
    return (f"{r.probe_cc or '??'} {asn} {r.started_at[:16]}Z uid {r.measurement_uid or '-'}"
            f" ({r.test_name} {r.test_version or '?'})")


def _used_rows(c: OoniComparison) -> list[str]:
    return [v for v in OUR_VERDICTS if sum(c.matrix[v].values())]


def render_table(c: OoniComparison) -> str:
    """The terminal table: the matrix, then each group's disagreements."""
    out = [f"Ours next to OONI's: {c.total} imported measurements, {c.agree} agree, "
           f"{c.total - c.agree} disagree", ""]
    head = ["ours \\ OONI", *(_SHORT.get(o, o) for o in c.outcomes)]
    body = [[v, *(str(c.matrix[v][o] or ".") for o in c.outcomes)] for v in _used_rows(c)]
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
    for row in [head, *body]:
        out.append("  ".join(cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i])
                             for i, cell in enumerate(row)).rstrip())
    for g, rows in c.disagreements.items():
        out += ["", f"{GROUPS[g]} ({len(rows)})"]
        for r in rows:
            out += [f"  {r.input}  [{_where(r)}]", f"    ours: {_ours_line(r)}",
                    f"    OONI: {r.ooni.outcome}: {r.ooni.evidence}"]
    return "\n".join(out) + "\n"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_md(c: OoniComparison) -> str:
    """Markdown: the matrix as a table and one table per disagreement group."""
    out = ["## Ours next to OONI's", "",
           f"{c.total} imported measurements: {c.agree} agree, {c.total - c.agree} disagree.",
           "", "| ours \\ OONI | " + " | ".join(c.outcomes) + " |",
           "|---|" + "---:|" * len(c.outcomes)]
    for v in _used_rows(c):
        out.append(f"| {v} | " + " | ".join(str(c.matrix[v][o]) for o in c.outcomes) + " |")
    for g, rows in c.disagreements.items():
        out += ["", f"### {GROUPS[g]} ({len(rows)})", "",
                "| input | where | ours | OONI |", "|---|---|---|---|"]
        for r in rows:
            out.append(f"| {_md_cell(r.input)} | {_md_cell(_where(r))} | "
                       f"{_md_cell(_ours_line(r))} | "
                       f"{_md_cell(r.ooni.outcome + ': ' + r.ooni.evidence)} |")
    return "\n".join(out) + "\n"


CSV_FIELDS = ("group", "input", "measurement_uid", "report_id", "probe_cc", "probe_asn",
              "test_version", "started_at", "our_verdict", "our_method", "our_confidence",
              "our_evidence", "ooni_outcome", "ooni_blocking", "ooni_accessible",
              "ooni_flags", "ooni_flag_names", "measurement_id")


def render_csv(c: OoniComparison) -> str:
    """Two CSV tables in one stream, each after a ``# name`` line: the matrix, and one row
    per disagreement."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    buf.write("# matrix\n")
    w.writerow(["ours", *c.outcomes])
    for v in OUR_VERDICTS:
        w.writerow([v, *(c.matrix[v][o] for o in c.outcomes)])
    buf.write("# disagreements\n")
    w.writerow(CSV_FIELDS)
    for g, rows in c.disagreements.items():
        for r in rows:
            w.writerow([g, r.input, r.measurement_uid or "", r.report_id or "",
                        r.probe_cc or "", r.probe_asn or "", r.test_version or "",
                        r.started_at, r.ours.outcome, r.ours.method or "",
                        "" if r.ours.confidence is None else r.ours.confidence,
                        r.ours.evidence, r.ooni.outcome, json.dumps(r.ooni_blocking),
                        json.dumps(r.ooni_accessible),
                        "" if r.ooni_flags is None else r.ooni_flags,
                        ",".join(flag_names(r.ooni_flags)), r.measurement_id])
    return buf.getvalue()


def to_json(c: OoniComparison) -> dict[str, Any]:
    """The comparison as plain JSON values (the ``ooni`` section of compare's JSON)."""
    def row(r: Row) -> dict[str, Any]:
        d = asdict(r)
        d["ooni_flag_names"] = flag_names(r.ooni_flags)
        return d
    return {"databases": list(c.databases), "total": c.total, "agree": c.agree,
            "disagree": c.total - c.agree, "outcomes": list(c.outcomes), "matrix": c.matrix,
            "groups": {g: GROUPS[g] for g in c.disagreements},
            "disagreements": {g: [row(r) for r in rows]
                              for g, rows in c.disagreements.items()}}


def render_json(c: OoniComparison) -> str:
    return json.dumps({"ooni": to_json(c)}, indent=2, ensure_ascii=False) + "\n"


def render(c: OoniComparison, fmt: str) -> str:
    """Render in one of :data:`FORMATS` (checked by the caller)."""
    return {"table": render_table, "md": render_md, "csv": render_csv,
            "json": render_json}[fmt](c)


__all__ = ["FORMATS", "GROUPS", "OoniComparison", "Row", "build", "compare_ooni",
           "group_of", "ooni_outcome", "render"]
