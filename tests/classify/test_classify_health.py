"""Network-state inference from canary samples: one table row per situation."""

import pytest

from probe.classify.health import (
    NetworkState,
    cut_began_after,
    infer_state,
    rounds,
    state_during,
)
from probe.model import HealthSample, HealthScope

G, R, D, INTL, C = (HealthScope.GATEWAY, HealthScope.RESOLVER, HealthScope.DOMESTIC,
                 HealthScope.INTERNATIONAL, HealthScope.CONTROL)
T = "generic_timeout_error"


def s(scope, failure=None, at="2022-01-05T10:30:00.000000Z", target="x"):
    return HealthSample(at=at, phase="during", scope=scope, target=target, elapsed=0.1,
                        failure=failure)


@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        ([s(G), s(R), s(D), s(D), s(INTL), s(C)], NetworkState.WHOLE),
        ([s(G), s(R), s(D), s(INTL, T), s(INTL), s(C, T)], NetworkState.WHOLE),  # one intl flaky
        ([s(G, T), s(R, T), s(D, T), s(INTL, T), s(C, T)], NetworkState.LOCAL_OUTAGE),
        ([s(G), s(R, T), s(D, T), s(D, T), s(INTL, T), s(C, T)], NetworkState.SHUTDOWN_FULL),
        ([s(G), s(R), s(D), s(D), s(INTL, T), s(C, T)], NetworkState.SHUTDOWN_INTERNATIONAL),
        ([s(G), s(R), s(D), s(D, T), s(INTL, T), s(C, T)], NetworkState.SHUTDOWN_ALLOWLIST),
        ([s(G), s(R), s(D)], NetworkState.UNKNOWN),  # nothing beyond the border sampled
        ([], NetworkState.UNKNOWN),
        # without a gateway canary a total silence is still a full shutdown, not local
        ([s(R, T), s(D, T), s(INTL, T)], NetworkState.SHUTDOWN_FULL),
    ],
    ids=["whole", "whole-flaky", "local", "full", "international", "allowlist", "unknown",
         "empty", "full-no-gateway"],
)
def test_infer_state(samples, expected):
    assert infer_state(samples) is expected


def _round(at, state_samples):
    return [HealthSample(at=at, phase="during", scope=x.scope, target=x.target, elapsed=0.1,
                         failure=x.failure) for x in state_samples]


WHOLE = [s(G), s(D), s(INTL)]
CUT = [s(G), s(D, T), s(INTL, T)]


@pytest.mark.parametrize(
    ("timeline", "start", "end", "expected"),
    [
        ([("10:00:00", WHOLE), ("10:01:00", WHOLE)], "10:00:10", "10:00:20", "whole"),
        ([("10:00:00", WHOLE), ("10:00:15", CUT), ("10:01:00", WHOLE)], "10:00:10", "10:00:20",
         "shutdown.full"),
        ([("10:00:00", CUT), ("10:01:00", CUT)], "10:00:10", "10:00:20", "shutdown.full"),
        # a cut that ended well before the measurement does not count
        ([("09:00:00", CUT), ("10:00:00", WHOLE), ("10:01:00", WHOLE)], "10:00:10", "10:00:20",
         "whole"),
        ([], "10:00:10", "10:00:20", "unknown"),
    ],
)
def test_state_during(timeline, start, end, expected):
    samples = [x for at, group in timeline for x in _round(f"2022-01-05T{at}.000000Z", group)]
    state, _ = state_during(rounds(samples), f"2022-01-05T{start}.000000Z",
                            f"2022-01-05T{end}.000000Z")
    assert state.value == expected


@pytest.mark.parametrize(
    ("timeline", "start", "expected"),
    [
        # whole when the request left, cut right after: possibly this request's own trigger
        ([("10:00:00", WHOLE), ("10:00:15", CUT)], "10:00:10", True),
        # no round before the measurement: nothing says the cut was already there
        ([("10:00:15", CUT)], "10:00:10", True),
        # already cut before the measurement started: not this request's doing
        ([("10:00:00", CUT), ("10:00:15", CUT)], "10:00:10", False),
        # the cut round itself is the one before the measurement
        ([("10:00:00", CUT)], "10:00:10", False),
    ],
)
def test_cut_began_after(timeline, start, expected):
    samples = [x for at, group in timeline for x in _round(f"2022-01-05T{at}.000000Z", group)]
    health = rounds(samples)
    cut = [r for r in health if r.state.is_cut][-1]
    assert cut_began_after(health, cut, f"2022-01-05T{start}.000000Z") is expected


def test_round_summary_counts_scopes():
    (r,) = rounds(_round("2022-01-05T10:00:00.000000Z", CUT))
    assert "domestic 0/1 up" in r.summary() and r.state is NetworkState.SHUTDOWN_FULL
