"""Throttling: the run's speed baseline, and the rule that calls a slow transfer throttled.

Responsibility: :func:`throttle_baseline` (per-run aggregate of clean transfers, computed
once and passed in :class:`~probe.classify.context.Context`) and the rules :func:`throttled`
(a transfer that completed far slower than the control and the baseline) and
:func:`stalled` (the HTTP deadline hit after the response status arrived: a transfer that
froze after N bytes is ``blocked``/``http.stall``, one still trickling in is ``throttled`` or,
without a yardstick that proves it, ``inconclusive``/``slow_transfer`` — never
``http.timeout``).

WHY these thresholds: Kazakhstan throttled www.azattyq.org from 2022-09-27 with TLS handshakes
often over 2 s (daily median over 4 s) against a baseline host on the same providers; the
handshakes *complete* (unlike SNI blocking, whose handshake times out). Russia's 2021 Twitter
throttling policed to 130-150 kbit/s. OONI's design target is a slowdown of 10x or more. So:
a handshake over :data:`SLOW_HANDSHAKE_S`, or a throughput over a transfer large and long
enough to measure, at least :data:`FACTOR` times slower than the baseline (the probe's own link
to other sites, as KZ's azattyq measurements compared with a baseline host on the same
providers) and at least :data:`CONTROL_FACTOR` times slower than the control (which rules out a
site slow everywhere; its figure for a small page is latency-bound, so 10x would miss real
throttling when the helper is busy). Without a baseline the control alone must show
:data:`FACTOR` (lower confidence): a slow volunteer link cannot then be ruled out as well.

WHY the baseline takes only transfers the control saw fast: a site slow for everyone (its own
server is the bottleneck) says nothing about the volunteer's link; in the baseline it drags
the median down until a throttled page's low rate looks normal (issue 12). A transfer counts
only when the control's own rate for it is within :data:`FACTOR` of the run's *typical fast*
control rate: the upper quartile of the control rates (canary measurements, which have no
control, count as they are). Not the fastest: the sites a censor throttles are exactly those
the control fetches at full speed, so one fast page (or a few throttled ones) would set a
yardstick that every latency-bound small page misses, leaving only the throttled pages in the
baseline — and then they no longer look slow (found by `make bench`: its 20 throttled pages
were `ok` in the 1,000-target list). A quartile needs a quarter of the run's sites to be fast
at the control, and keeps out sites slow for everyone while they are fewer than three in four.

WHY a freeze is told from a trickle by the silence before the deadline: from June 2025 Russian
ISPs (the TSPU) let only the first ~16 KB of a connection to sites on Cloudflare, Hetzner,
DigitalOcean and OVH through and then drop the rest (Cloudflare, "Russian Internet users are
unable to access the open Internet", blog.cloudflare.com, 2025-06-26: "only the first 16 KB
of any web asset"; net4people/bbs#417, quoting ntc.party/t/17013: the connection "hangs"
after about 16 KB; net4people/bbs#490: frozen after 16-20 KB; Mediazona, "The 16-kilobyte
curtain", 2025-06-19): the client gets a status and part of the body, then nothing until its
deadline, while the control gets the whole page. A throttled transfer (150 kbit/s) keeps
delivering a segment every few tens of milliseconds. So a response whose last byte came at least
:data:`STALL_SILENCE_S` and half the exchange before the deadline *froze*; one whose bytes
kept coming is a slow path (``http.timeout`` would blame the wrong technique in both cases).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence

from probe import failures as f
from probe.classify.base import Case, blocked, inconclusive, verdict
from probe.classify.context import BaselineSample, ThrottleBaseline
from probe.classify.control import read as read_control
from probe.classify.health import HealthRound, state_during
from probe.classify.observations import endpoint, final_hop, secs, succeeded, tls_of, took
from probe.model import HTTPObservation, Measurement, Verdict, VerdictKind

#: A TLS handshake slower than this may be throttled (azattyq.org: "often over 2 s").
SLOW_HANDSHAKE_S = 2.0
#: How many times slower than the yardsticks (OONI's target: 10x).
FACTOR = 10.0
#: With a baseline, how many times slower than the control suffices: the control only rules
#: out a site slow everywhere, and its rate for a small page is bound by latency.
CONTROL_FACTOR = 3.0
#: A body smaller than this says more about latency than about bandwidth.
MIN_RATE_BYTES = 16 * 1024
#: The probe's transfer must take at least this long to be called slow (below it, a 10x
#: ratio is noise).
MIN_SLOW_TRANSFER_S = 0.5
#: A response whose last byte came at least this long before the deadline, and at least
#: :data:`STALL_FRACTION` of the exchange before it, froze (a throttled transfer at even
#: 10 kbit/s delivers a full segment every 1.2 s).
STALL_SILENCE_S = 2.0
STALL_FRACTION = 0.5
BASELINE_VERSION = 2


def handshake_time(m: Measurement, hop: HTTPObservation) -> float | None:
    t = tls_of(m, hop)
    return took(t) if t is not None else None


def rate_bps(h: HTTPObservation) -> float | None:
    """Bits per second of the body transfer; None when too small or instantaneous."""
    if not h.body_length or h.body_length < MIN_RATE_BYTES:
        return None
    seconds = took(h)
    return h.body_length * 8 / seconds if seconds > 0 else None


def throttle_baseline(measurements: Iterable[Measurement],
                      rounds: Sequence[HealthRound] = (),
                      canaries: Iterable[Measurement] = ()) -> ThrottleBaseline | None:
    """The run's typical handshake time and throughput, from its clean transfers.

    A measurement contributes when its final response arrived without failure (over a chain
    that validated, for https) and no health round around it shows a cut. Its throughput
    counts only when the control saw the same transfer fast (:func:`_saw_fast`): a
    site slow for everyone measures its server, not the volunteer's link. ``canaries`` are
    measurements of the run's canary sites (no control needed: they are chosen to be fast).
    Blocked and throttled targets rarely qualify, and the rules leave the judged measurement
    out of its own yardstick and use medians, so a few slow ones do not move it.
    None = nothing qualified.
    """
    builder = BaselineBuilder(rounds)
    for m in measurements:
        builder.add(m)
    for m in canaries:
        builder.add(m, canary=True)
    return builder.result()


class BaselineBuilder:
    """:func:`throttle_baseline`'s one streaming pass as an accumulator: measurements are added
    one at a time (a run read in pieces, e.g. by several tasks of the Dask path, whose builders
    are then merged in the run's order), and :meth:`result` gives the baseline."""

    def __init__(self, rounds: Sequence[HealthRound] = ()) -> None:
        # keep a few numbers per transfer, never the measurements (a run's measurements do
        # not fit in memory at scale); the run's typical control rate is only known at the
        # end, so the throughput filter is applied in result()
        self.rounds = tuple(rounds)
        self.control_rates: list[float] = []
        self.seen: list[tuple[str, float | None, float | None, float | None, bool]] = []

    def add(self, m: Measurement, canary: bool = False) -> None:
        control_rate = None if canary else _control_rate_of(m)
        if control_rate is not None:
            self.control_rates.append(control_rate)
        hop = final_hop(m)
        if hop is None or not succeeded(hop) or hop.location is not None:
            return
        state, _ = state_during(self.rounds, m.started_at, m.finished_at)
        if state.is_cut:
            return
        hs: float | None = None
        if hop.url.startswith("https:"):
            t = tls_of(m, hop)
            if t is None or t.verified is not True:
                return
            hs = took(t)
        self.seen.append((m.target.url, hs, rate_bps(hop), control_rate, canary))

    def merge(self, later: BaselineBuilder) -> BaselineBuilder:
        """Add what ``later`` saw (measurements of the same run, after this one's)."""
        self.control_rates.extend(later.control_rates)
        self.seen.extend(later.seen)
        return self

    def result(self) -> ThrottleBaseline | None:
        reference = _upper_quartile(self.control_rates)
        samples: list[BaselineSample] = [
            {"url": url, "tls_handshake_s": hs,
             "throughput_bps": rate if canary or _saw_fast(control_rate, reference) else None}
            for url, hs, rate, control_rate, canary in self.seen]
        if not samples:
            return None
        return {"version": BASELINE_VERSION, "samples": samples,
                "tls_handshake_s": _median(s["tls_handshake_s"] for s in samples),
                "throughput_bps": _median(s["throughput_bps"] for s in samples)}


def _control_rate_of(m: Measurement) -> float | None:
    """The control's rate for ``m``'s page, from a body large enough to measure one."""
    c = read_control(m.control).http
    if c is None or not c.ok or not c.body_length or c.body_length < MIN_RATE_BYTES:
        return None
    if c.throughput_bps:
        return c.throughput_bps
    return c.body_length * 8 / c.elapsed if c.elapsed else None


def _upper_quartile(values: list[float]) -> float | None:
    """The upper quartile (inclusive method: within the data's range); None without data."""
    if len(values) < 2:
        return values[0] if values else None
    return statistics.quantiles(values, n=4, method="inclusive")[2]


def _saw_fast(control_rate: float | None, reference: float | None) -> bool:
    """The control fetched the page within :data:`FACTOR` of the run's typical fast control
    transfer (:func:`_upper_quartile`): the site's own server was not the bottleneck."""
    return (control_rate is not None and reference is not None
            and control_rate * FACTOR >= reference)


def _median(values: Iterable[float | None]) -> float | None:
    vs = [v for v in values if v is not None]
    return statistics.median(vs) if vs else None


def _baseline(case: Case, key: str) -> float | None:
    """The baseline median without this measurement's own sample."""
    b = case.ctx.throttle_baseline
    if not b:
        return None
    url = case.m.target.url
    values = [s.get(key) for s in b.get("samples", []) if s.get("url") != url]
    return _median(v for v in values if isinstance(v, int | float))


def _control_handshake(case: Case, ip: str | None) -> float | None:
    eps = [e for e in case.control.endpoints
           if e.handshake_ok and e.tls_handshake_time is not None]
    same = [e for e in eps if e.ip == ip]
    times = [e.tls_handshake_time for e in (same or eps) if e.tls_handshake_time is not None]
    return min(times) if times else None


def _control_rate(case: Case) -> float | None:
    c = case.control.http
    if c is None or not c.ok:
        return None
    if c.throughput_bps:
        return c.throughput_bps
    if c.body_length and c.body_length >= MIN_RATE_BYTES and c.elapsed:
        return c.body_length * 8 / c.elapsed
    return None


def _kbps(bps: float) -> str:
    return f"{bps / 1000:.0f} kbit/s" if bps < 10e6 else f"{bps / 1e6:.0f} Mbit/s"


def _ratio(value: float, ref: float | None, higher_is_slower: bool) -> float | None:
    """How many times slower ``value`` is than ``ref`` (None = no reference)."""
    if ref is None or ref <= 0 or value <= 0:
        return None
    return value / ref if higher_is_slower else ref / value


def _judge(value: float, refs: dict[str, float | None], *,
           higher_is_slower: bool) -> float | None:
    """The confidence that ``value`` is throttled against the yardsticks, or None.

    With the baseline (the probe's own link to other sites): at least :data:`FACTOR` times
    slower than it, and — when the control's figure is known — at least
    :data:`CONTROL_FACTOR` times slower than the control (the control only has to show the
    site is not slow everywhere; its figure for a small page is latency-bound and noisy).
    Without a baseline the control alone must show :data:`FACTOR`.
    """
    base = _ratio(value, refs["baseline"], higher_is_slower)
    ctl = _ratio(value, refs["control"], higher_is_slower)
    if base is not None:
        if base < FACTOR or (ctl is not None and ctl < CONTROL_FACTOR):
            return None
        return 0.8 if ctl is not None and ctl >= FACTOR else 0.7
    if ctl is not None and ctl >= FACTOR:
        return 0.6
    return None


def _refs_text(refs: dict[str, float | None], fmt: str) -> str:
    parts = []
    for name, r in refs.items():
        if r is not None:
            parts.append(f"{name} {secs(r) if fmt == 's' else _kbps(r)}")
    return ", ".join(parts)


def throttled(case: Case) -> Verdict | None:
    """The transfer completed, far slower than the control and the baseline."""
    h = case.final
    if not case.responded or h is None or not case.control.fetched:
        return None
    common = dict(step="http", tx_id=h.tx_id, url=h.url, ip=h.ip, port=h.port,
                  status=h.status, body_length=h.body_length)
    hs = handshake_time(case.m, h)
    if hs is not None and hs > SLOW_HANDSHAKE_S:
        refs = {"control": _control_handshake(case, h.ip),
                "baseline": _baseline(case, "tls_handshake_s")}
        confidence = _judge(hs, refs, higher_is_slower=True)
        if confidence is not None:
            return verdict(
                case, VerdictKind.THROTTLED, "throttle", confidence,
                f"TLS handshake with {endpoint(h.ip, h.port)} for {h.url} completed but took "
                f"{secs(hs)}, far slower than the {_refs_text(refs, 's')}",
                tls_handshake_s=round(hs, 3), control_tls_handshake_s=refs["control"],
                baseline_tls_handshake_s=refs["baseline"], **common)
    rate = rate_bps(h)
    if rate is not None and took(h) >= MIN_SLOW_TRANSFER_S:
        refs = {"control": _control_rate(case), "baseline": _baseline(case, "throughput_bps")}
        confidence = _judge(rate, refs, higher_is_slower=False)
        if confidence is not None:
            return verdict(
                case, VerdictKind.THROTTLED, "throttle", confidence,
                f"HTTP {h.status} for {h.url}: {h.body_length} bytes at {_kbps(rate)} in "
                f"{secs(took(h))}, far slower than the {_refs_text(refs, 'bps')}",
                throughput_bps=round(rate), control_throughput_bps=refs["control"],
                baseline_throughput_bps=refs["baseline"], **common)
    return None


def silence(h: HTTPObservation) -> float | None:
    """Seconds between the last byte received and the end of the exchange; None = not
    recorded (imported or older data) or nothing arrived."""
    if h.last_byte_t is None:
        return None
    return max(0.0, h.t - h.last_byte_t)


def froze(h: HTTPObservation) -> bool:
    """The response stopped dead well before the deadline (see the module docstring)."""
    quiet = silence(h)
    return quiet is not None and quiet >= STALL_SILENCE_S and quiet >= STALL_FRACTION * took(h)


def _trickle_rate(h: HTTPObservation) -> float | None:
    """Bits per second of a body cut off by the deadline, up to its last byte when known."""
    if not h.body_length or h.body_length < MIN_RATE_BYTES:
        return None
    end = h.last_byte_t if h.last_byte_t is not None else h.t
    seconds = end - h.t0
    return h.body_length * 8 / seconds if seconds > 0 else None


def stalled(case: Case) -> Verdict | None:
    """The HTTP deadline hit after the response status arrived.

    WHY: the status and part of the body got through, so the path works; a censor either
    froze the connection after a few kilobytes (Russia 2025, see the module docstring) or
    slowed it down. A freeze — silence for the rest of the deadline while the control fetched
    the whole page — is ``blocked``/``http.stall`` with the byte count; bytes still trickling
    in at the deadline are ``throttled`` with the measured rate when the control and the
    baseline show it is far slower than elsewhere, else ``inconclusive``/``slow_transfer``
    (the yardstick is missing). Never ``http.timeout``: that would blame the wrong technique.
    A control that failed too, or none, is left to the failure rules (``down``, ``no_control``).
    """
    a = case.attempt
    h = a.http[-1] if a.http else None
    if h is None or h.failure != f.GENERIC_TIMEOUT or h.status is None:
        return None
    c = case.control.http
    if c is None or not c.ok or not case.control.fetched:
        return None
    common = dict(step="http", tx_id=h.tx_id, url=h.url, ip=h.ip, port=h.port,
                  failure=h.failure, status=h.status, body_length=h.body_length,
                  received_bytes=h.received_bytes, control_body_length=c.body_length)
    got = h.received_bytes if h.received_bytes is not None else h.body_length or 0
    if froze(h):
        quiet = silence(h) or 0.0
        whole = c.body_length is not None and c.body_length > (h.body_length or 0)
        ctl_text = (f"the control fetched the whole page ({c.body_length} bytes)" if whole
                    else f"the control fetched the page (HTTP {c.status})")
        return blocked(
            case, "http.stall", 0.75 if whole else 0.65,
            f"HTTP {h.status} for {h.url} from {endpoint(h.ip, h.port)} stalled after {got} "
            f"bytes ({h.body_length or 0} of body): nothing more arrived in the last "
            f"{secs(quiet)} before the deadline ({secs(took(h))}); {ctl_text}",
            stalled_after_bytes=got, silence_s=round(quiet, 3), **common)
    rate = _trickle_rate(h)
    if rate is not None:
        refs = {"control": _control_rate(case), "baseline": _baseline(case, "throughput_bps")}
        confidence = _judge(rate, refs, higher_is_slower=False)
        if confidence is not None:
            return verdict(
                case, VerdictKind.THROTTLED, "throttle", confidence - 0.1,
                f"HTTP {h.status} for {h.url} timed out while the body was still arriving: "
                f"{h.body_length} bytes at {_kbps(rate)}, far slower than the "
                f"{_refs_text(refs, 'bps')}",
                throughput_bps=round(rate), control_throughput_bps=refs["control"],
                baseline_throughput_bps=refs["baseline"], **common)
    how = f" at {_kbps(rate)}" if rate is not None else ""
    progress = ("the body was still arriving" if silence(h) is not None
                else "how far the body got was not recorded")
    return inconclusive(
        case, "slow_transfer",
        f"HTTP {h.status} for {h.url} timed out after {got} bytes{how} ({progress}); the "
        f"control fetched the page, but no yardstick shows this transfer was far slower than "
        f"elsewhere (a throttled path or a slow server cannot be told apart)",
        0.4, symptom="throttle", throughput_bps=round(rate) if rate is not None else None,
        **common)
