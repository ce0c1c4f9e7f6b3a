"""Which failed targets are re-measured after residual censorship (probe.run.residual), and
the note their verdicts carry. Pure: attempts and health rounds in, the plan out."""

from __future__ import annotations

import dataclasses

import pytest

from probe.classify import classify
from probe.classify.health import HealthRound, NetworkState
from probe.run import residual
from probe.run.residual import Attempt, suspects
from tests.factories import meas, sys_dns, tcp

S, X = "185.61.20.20", "104.28.1.10"  # the trigger's server, another server
WHOLE = HealthRound("2026-11-21T10:01:00.000000Z", NetworkState.WHOLE, {"international": 2}, {})
CUT = HealthRound("2026-11-21T10:01:06.000000Z", NetworkState.SHUTDOWN_FULL, {"gateway": 1},
                  {"international": 2, "domestic": 2})

WHOLE_AGAIN = HealthRound("2026-11-21T10:01:10.000000Z", NetworkState.WHOLE, {"international": 2},
                          {})
CUT_EARLY = HealthRound("2026-11-21T10:00:59.000000Z", NetworkState.SHUTDOWN_FULL, {}, {})


def at(sec: float) -> str:
    sec += 60  # seconds after 10:01:00 (negative = before)
    return f"2026-11-21T10:{int(sec) // 60:02d}:{sec % 60:09.6f}Z"


def attempt(url: str, start: float, end: float, connected=(), unreachable=()) -> Attempt:
    return Attempt(url, url.split("/")[2], at(start), at(end), frozenset(connected),
                   frozenset(unreachable), "x")


TRIGGER = attempt("http://meduza.io/", 0, 3, connected=[S])


@pytest.mark.parametrize(("name", "attempts", "health", "canaries", "expected"), [
    ("same server, right after the trigger", [TRIGGER, attempt("http://a/", 3, 9, (), [S])],
     (), True, ["http://a/"]),
    ("another server, canaries cut after the trigger",
     [TRIGGER, attempt("https://b/", 3, 9, (), [X])], (WHOLE, CUT), True,
     ["https://b/", "http://meduza.io/"]),  # the trigger too: its own block, or a shutdown?
    ("a cut already there before the trigger is not its doing",
     [TRIGGER], (CUT_EARLY, CUT), True, []),
    ("another server, canaries whole: an IP block of its own",
     [TRIGGER, attempt("https://b/", 3, 9, (), [X])], (WHOLE,), True, []),
    ("another server, no canaries: only same-server evidence counts",
     [TRIGGER, attempt("https://b/", 3, 9, (), [X])], (), False, []),
    ("same server but long after the cool-down window",
     [TRIGGER, attempt("http://a/", 200, 206, (), [S])], (), True, []),
    ("failed before the trigger started", [attempt("http://a/", -9, -1, (), [S]), TRIGGER],
     (), True, []),
    ("no trigger (nothing connected then failed)", [attempt("http://a/", 3, 9, (), [S])],
     (), True, []),
    # a client-wide cut: a trigger-like failure may be a victim that sent its request just
    # after the real trigger, so it is re-measured too — after every victim
    ("victims first, trigger-like failures last",
     [TRIGGER, attempt("https://c/", 3, 6, [S]), attempt("http://a/", 4, 9, (), [S])],
     (WHOLE, CUT), True, ["http://a/", "http://meduza.io/", "https://c/"]),
    ("a failure after the network was seen whole again is not the cut's",
     [TRIGGER, attempt("https://b/", 3, 5, (), [X]), attempt("https://d/", 12, 14, (), [X])],
     (WHOLE, CUT, WHOLE_AGAIN), True, ["https://b/", "http://meduza.io/"]),
    ("a failure before the network was seen whole again is the cut's",
     [TRIGGER, attempt("https://d/", 7, 14, (), [X])],
     (WHOLE, CUT, WHOLE_AGAIN), True, ["https://d/", "http://meduza.io/"]),
    ("trigger-like failures without a client-wide cut are left alone",
     [TRIGGER, attempt("https://c/", 3, 6, [S])], (WHOLE,), True, []),
])
def test_suspects(name, attempts, health, canaries, expected):
    got = [a.url for a, _ in suspects(attempts, health, 90.0, canaries, 10)]
    assert got == expected, name


def test_the_limit_bounds_the_plan():
    victims = [attempt(f"http://v{i}/", 3, 9, (), [S]) for i in range(20)]
    assert len(suspects([TRIGGER, *victims], (), 90.0, True, 10)) == 10


def test_same_server_suspects_are_spread_apart():
    a1 = attempt("http://a1/", 3, 9, (), [S])
    a2 = attempt("http://a2/", 3.5, 9, (), [S])
    b = attempt("http://b/", 4, 9, (), [X])
    got = [a.url for a, _ in suspects([TRIGGER, a1, a2, b], (WHOLE, CUT), 90.0, True, 10)]
    assert got == ["http://a1/", "http://b/", "http://a2/", "http://meduza.io/"]


def test_a_re_measurement_says_why_in_its_verdict():
    first = attempt("https://example.test/", 3, 9, (), [S])
    note = residual.note(first, TRIGGER, 90.0)
    assert note["scope"] == "same_server"
    m = meas(dns=sys_dns(), tcp_=(tcp(10, failure="generic_timeout_error"),))
    plain = classify(m)
    noted = classify(dataclasses.replace(m, extra={"residual": note}))
    assert (noted.verdict, noted.method) == (plain.verdict, plain.method)
    assert noted.details["residual"]["trigger_url"] == "http://meduza.io/"
    assert "residual censorship" in noted.evidence and "residual" not in plain.details
