"""Aggregations over a loaded :class:`~probe.report.workspace.Workspace`, all in SQL.

The workspace's ``cells`` table already holds the verdicts grouped per (period, network,
target, timeline bucket, verdict, method) — a year of hourly runs of 100 targets is ~1M
verdicts but ~100k cells. Every function here is one or two GROUP BY queries over it and
returns small results keyed by the workspace's integer ids (``run_idx``, ``net_idx``,
``target_idx``); :mod:`probe.report.build` turns them into records. Nothing loops over
verdicts in Python.

``period`` selects which window of the workspace to aggregate (0 = the report's period).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass

from probe.report.vocab import INTERFERENCE, NOT_CONCLUSIVE, SEVERITY, VERDICT_CODE, VERDICTS

_INTERFERENCE_CODES = ",".join(str(VERDICT_CODE[v]) for v in INTERFERENCE)
_NOT_CONCLUSIVE_CODES = ",".join(str(VERDICT_CODE[v]) for v in NOT_CONCLUSIVE)
_SEVERITY_CASE = (
    "CASE verdict "
    + " ".join(f"WHEN {VERDICT_CODE[v]} THEN {SEVERITY[v]}" for v in VERDICTS)
    + " ELSE 0 END"
)
#: Run indexes are below this; it ranks conclusive verdicts above any run index.
_RANK = 1_000_000_000


def verdict_name(code: int) -> str:
    return VERDICTS[code]


def _zeros() -> dict[str, int]:
    return dict.fromkeys(VERDICTS, 0)


def build_rollup(conn: sqlite3.Connection, period: int = 0) -> None:
    """Create ``rollup``: counts per (network, target, verdict, method) in the period, with
    the first and last run of each; the breakdowns below read it."""
    conn.execute("DROP TABLE IF EXISTS rollup")
    conn.execute(
        """
        CREATE TABLE rollup AS
        SELECT net_idx, target_idx, verdict, method, sum(n) AS n,
               min(first_run) AS first_run, max(last_run) AS last_run
        FROM cells WHERE period = ?
        GROUP BY net_idx, target_idx, verdict, method
        """,
        (period,),
    )


def verdict_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Measurements per verdict (every verdict listed, zeros included). Needs ``rollup``."""
    counts = _zeros()
    for code, n in conn.execute("SELECT verdict, sum(n) FROM rollup GROUP BY verdict"):
        counts[verdict_name(code)] = n
    return counts


def network_verdict_counts(conn: sqlite3.Connection) -> dict[int, dict[str, int]]:
    """Measurements per verdict on each network. Needs ``rollup``."""
    out: dict[int, dict[str, int]] = {}
    for net, code, n in conn.execute(
        "SELECT net_idx, verdict, sum(n) FROM rollup GROUP BY net_idx, verdict"
    ):
        out.setdefault(net, _zeros())[verdict_name(code)] = n
    return out


@dataclass(frozen=True, slots=True)
class TargetStats:
    measurements: int
    interfered: int
    first_blocked_run: int | None
    last_blocked_run: int | None


def target_stats(conn: sqlite3.Connection) -> dict[int, TargetStats]:
    """Per target: measurements, those with interference, and the first/last run that saw
    interference (None = never). Needs ``rollup``."""
    return {
        t: TargetStats(n, k or 0, first, last)
        for t, n, k, first, last in conn.execute(
            f"""
            SELECT target_idx, sum(n),
                   sum(CASE WHEN verdict IN ({_INTERFERENCE_CODES}) THEN n END),
                   min(CASE WHEN verdict IN ({_INTERFERENCE_CODES}) THEN first_run END),
                   max(CASE WHEN verdict IN ({_INTERFERENCE_CODES}) THEN last_run END)
            FROM rollup GROUP BY target_idx
            """
        )
    }


@dataclass(frozen=True, slots=True)
class CategoryStats:
    category: str | None
    targets: int
    measurements: int
    verdicts: dict[str, int]
    targets_interfered: int


def category_stats(conn: sqlite3.Connection) -> list[CategoryStats]:
    """Per category (None = no category): targets, measurements, verdict mix and targets that
    saw interference; most interfered first, then by name. Needs ``rollup``."""
    mix: dict[str | None, dict[str, int]] = {}
    for cat, code, n in conn.execute(
        "SELECT t.category, r.verdict, sum(r.n) FROM rollup r "
        "JOIN targets t ON t.target_idx = r.target_idx GROUP BY t.category, r.verdict"
    ):
        mix.setdefault(cat, _zeros())[verdict_name(code)] = n
    out = []
    for cat, targets, interfered in conn.execute(
        f"""
        SELECT t.category, count(DISTINCT r.target_idx),
               count(DISTINCT CASE WHEN r.verdict IN ({_INTERFERENCE_CODES})
                              THEN r.target_idx END)
        FROM rollup r JOIN targets t ON t.target_idx = r.target_idx
        GROUP BY t.category
        """
    ):
        verdicts = mix.get(cat, _zeros())
        out.append(CategoryStats(cat, targets, sum(verdicts.values()), verdicts, interfered))
    out.sort(key=lambda c: (-c.targets_interfered, c.category is None, c.category or ""))
    return out


@dataclass(frozen=True, slots=True)
class MethodStats:
    verdict: str
    method: str | None
    measurements: int
    targets: int
    networks: int
    first_run: int
    last_run: int


def method_stats(conn: sqlite3.Connection) -> list[MethodStats]:
    """Every (verdict, method) except ``ok``, most frequent first. Needs ``rollup``."""
    return [
        MethodStats(verdict_name(code), method, n, targets, nets, first, last)
        for code, method, n, targets, nets, first, last in conn.execute(
            f"""
            SELECT verdict, method, sum(n), count(DISTINCT target_idx), count(DISTINCT net_idx),
                   min(first_run), max(last_run)
            FROM rollup WHERE verdict != {VERDICT_CODE["ok"]}
            GROUP BY verdict, method
            ORDER BY sum(n) DESC, verdict, method
            """
        )
    ]


@dataclass(frozen=True, slots=True)
class Pick:
    """The verdict of one target in one run, chosen by an aggregation."""

    run_idx: int
    net_idx: int
    target_idx: int
    verdict: str
    method: str | None


def status(
    conn: sqlite3.Connection, period: int, before_bucket: Mapping[int, int] | None = None
) -> dict[tuple[int, int], Pick]:
    """Each target's status on each network: its latest *conclusive* verdict in the period
    (``shutdown``/``inconclusive`` say nothing about the site), else its latest verdict.

    ``before_bucket`` limits each network to timeline buckets below the given one (the
    status before the network's last cell). Keys are ``(net_idx, target_idx)``. In a period
    holding a single run per network this is simply the verdicts of that run.
    """
    bound_sql = ""
    if before_bucket is not None:
        conn.execute("DROP TABLE IF EXISTS bounds")
        conn.execute("CREATE TABLE bounds (net_idx INTEGER PRIMARY KEY, bound INTEGER)")
        conn.executemany("INSERT INTO bounds VALUES (?, ?)", list(before_bucket.items()))
        bound_sql = " AND bucket < (SELECT bound FROM bounds b WHERE b.net_idx = cells.net_idx)"
    return {
        (net, t): Pick(rank % _RANK, net, t, verdict_name(code), method)
        for net, t, rank, code, method in conn.execute(
            f"""
            SELECT net_idx, target_idx,
                   max((verdict NOT IN ({_NOT_CONCLUSIVE_CODES})) * {_RANK} + last_run),
                   verdict, method
            FROM cells WHERE period = ?{bound_sql}
            GROUP BY net_idx, target_idx
            """,
            (period,),
        )
    }


@dataclass(frozen=True, slots=True)
class Cell:
    net_idx: int
    target_idx: int
    bucket: int
    verdict: str
    method: str | None
    measurements: int


def timeline_cells(conn: sqlite3.Connection, period: int = 0) -> list[Cell]:
    """One cell per (network, target, bucket): the most frequent verdict (ties → the more
    severe) with its most frequent method; ordered by network, target, bucket."""
    return [
        Cell(net, t, b, verdict_name(code), method, total)
        for net, t, b, code, method, _, total in conn.execute(
            f"""
            WITH v AS (
                SELECT net_idx, target_idx, bucket, verdict, method, max(n) AS top,
                       sum(n) AS vn
                FROM cells WHERE period = ?
                GROUP BY net_idx, target_idx, bucket, verdict
            )
            SELECT net_idx, target_idx, bucket, verdict, method,
                   max(vn * 8 + {_SEVERITY_CASE}), sum(vn)
            FROM v GROUP BY net_idx, target_idx, bucket
            ORDER BY net_idx, target_idx, bucket
            """,
            (period,),
        )
    ]


def network_buckets(
    conn: sqlite3.Connection, period: int = 0
) -> dict[tuple[int, int], dict[str, int]]:
    """Verdict mix per (network, bucket)."""
    out: dict[tuple[int, int], dict[str, int]] = {}
    for net, b, code, n in conn.execute(
        "SELECT net_idx, bucket, verdict, sum(n) FROM cells WHERE period = ? "
        "GROUP BY net_idx, bucket, verdict",
        (period,),
    ):
        out.setdefault((net, b), _zeros())[verdict_name(code)] = n
    return out


def health_rounds(conn: sqlite3.Connection, period: int = 0) -> list[tuple[int, float, str, str]]:
    """``(net_idx, t, state, source)`` of every health round, per network oldest first."""
    return list(
        conn.execute(
            "SELECT net_idx, t, state, source FROM rounds WHERE period = ? ORDER BY net_idx, t",
            (period,),
        )
    )
