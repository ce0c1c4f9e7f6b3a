"""The report as frozen records: what every renderer (HTML, Markdown, CSV, JSON) shows.

Times are aware UTC datetimes here; renderers show them in the report's zone. Text fields that
came from the network (``evidence``, ``title``, ``server``, URLs) are already one-line and
scrubbed of foreign IP addresses (:mod:`probe.report.scrub`) but NOT escaped: escaping belongs
to each output format. A field documented "None = …" says what its absence means.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from probe.report.vocab import CUT_STATES


@dataclass(frozen=True, slots=True)
class Meta:
    """What the report covers.

    ``since``/``until``: the requested period (None = open). ``first_run``/``last_run``: the
    starts of the first and last run found in it (None = no runs). ``baseline``: how "what
    changed" was computed (a sentence). ``timeline_unit``: ``run`` or a bucket width (``1 d``).
    """

    generated_at: dt.datetime
    tz: str
    since: dt.datetime | None
    until: dt.datetime | None
    first_run: dt.datetime | None
    last_run: dt.datetime | None
    databases: tuple[str, ...]
    categories: tuple[str, ...]
    baseline: str
    timeline_unit: str
    health_source: str


@dataclass(frozen=True, slots=True)
class Summary:
    targets: int
    runs: int
    runs_by_status: dict[str, int]
    measurements: int
    networks: int
    verdicts: dict[str, int]
    #: Targets with at least one blocked/intercepted/throttled verdict in the period.
    targets_interfered: int
    #: Targets whose latest verdict (on any network) is blocked/intercepted/throttled.
    targets_interfered_now: int
    #: Total time the health timeline shows as cut (shutdowns + local outages), all networks.
    cut_seconds: float


@dataclass(frozen=True, slots=True)
class TargetRow:
    """One target: its status at the end of the period and its blocking history.

    The status is the latest conclusive verdict (not ``shutdown``/``inconclusive`` when there
    is another) on each network, the most severe across networks; ``network`` is where that
    was seen, ``networks`` how many networks measured the target and ``networks_interfered``
    on how many its status is blocked, intercepted or throttled. ``interfered`` counts the
    measurements with interference out of ``measurements``.
    ``first_blocked``/``last_blocked``: start of the first/last run that saw interference
    (blocked, intercepted or throttled); None = never seen. ``title``/``server``: of the last
    HTTP response of the latest measurement; None = no response.
    """

    url: str
    hostname: str
    category: str | None
    network: str
    verdict: str
    method: str | None
    confidence: float
    evidence: str
    measured_at: dt.datetime
    first_blocked: dt.datetime | None
    last_blocked: dt.datetime | None
    measurements: int
    interfered: int
    networks: int
    networks_interfered: int
    title: str | None
    server: str | None


@dataclass(frozen=True, slots=True)
class NetworkRow:
    label: str
    asn: int | None
    cc: str | None
    runs: int
    measurements: int
    first_run: dt.datetime | None
    last_run: dt.datetime | None
    verdicts: dict[str, int]
    cut_seconds: float


@dataclass(frozen=True, slots=True)
class TimelineSegment:
    """Consecutive timeline cells of one target on one network with the same verdict.

    A cell is one run (``unit`` = run) or one time bucket, whose verdict is the most frequent
    one (ties → the more severe). ``measurements`` counts every measurement in the cells.
    """

    network: str
    url: str
    start: dt.datetime
    end: dt.datetime
    verdict: str
    method: str | None
    cells: int
    measurements: int


@dataclass(frozen=True, slots=True)
class NetworkBucket:
    """The verdict mix of every measurement on one network in one timeline cell."""

    network: str
    start: dt.datetime
    end: dt.datetime
    verdicts: dict[str, int]


@dataclass(frozen=True, slots=True)
class HealthSegment:
    """Consecutive health rounds of one network with the same state.

    ``source``: ``canaries`` (health samples) or ``verdicts`` (derived from the run's
    verdicts when the database has no health samples).
    """

    network: str
    start: dt.datetime
    end: dt.datetime
    state: str
    rounds: int
    source: str

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True, slots=True)
class CategoryRow:
    category: str | None
    targets: int
    measurements: int
    verdicts: dict[str, int]
    targets_interfered: int


@dataclass(frozen=True, slots=True)
class MethodRow:
    verdict: str
    method: str | None
    measurements: int
    targets: int
    networks: int
    first_seen: dt.datetime
    last_seen: dt.datetime


@dataclass(frozen=True, slots=True)
class Status:
    """A target's status on one network at the end of a period or in one run."""

    verdict: str
    method: str | None
    at: dt.datetime
    evidence: str = ""


@dataclass(frozen=True, slots=True)
class ChangeRow:
    """How one target changed on one network; ``before`` None = not measured before."""

    change: str
    network: str
    url: str
    category: str | None
    before: Status | None
    after: Status | None


@dataclass(frozen=True, slots=True)
class Report:
    meta: Meta
    summary: Summary
    targets: list[TargetRow]
    networks: list[NetworkRow]
    timeline: list[TimelineSegment]
    #: Cell boundaries of the timeline per network, oldest first (run starts or buckets).
    cells: dict[str, list[tuple[dt.datetime, dt.datetime]]]
    network_timeline: list[NetworkBucket]
    health: list[HealthSegment]
    categories: list[CategoryRow]
    methods: list[MethodRow]
    #: Latest conclusive status of every target on every network (comparison across networks).
    comparison: dict[tuple[str, str], Status]
    changes: list[ChangeRow]
    target_urls: list[str] = field(default_factory=list)

    @property
    def cuts(self) -> list[HealthSegment]:
        return [h for h in self.health if h.state in CUT_STATES]


@dataclass(frozen=True, slots=True)
class Comparison:
    """``probe compare``: what changed between two runs or two periods."""

    before_label: str
    after_label: str
    tz: str
    rows: list[ChangeRow]
    before_targets: int
    after_targets: int
    counts: dict[str, int] = field(default_factory=dict)
