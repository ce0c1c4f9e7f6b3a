"""Network-state inference from canary samples: one table row per situation."""

import pytest

from probe.classify.health import (
    NetworkState,
    cut_began_after,
    infer_state,
    portal_signature,
    rounds,
    state_during,
)
from probe.model import HealthSample, HealthScope

G, R, D, INTL, C, P = (HealthScope.GATEWAY, HealthScope.RESOLVER, HealthScope.DOMESTIC,
                    HealthScope.INTERNATIONAL, HealthScope.CONTROL, HealthScope.PORTAL)
T = "generic_timeout_error"


def s(scope, failure=None, at="2022-01-05T10:30:00.000000Z", target="x", unexpected=None):
    return HealthSample(at=at, phase="during", scope=scope, target=target, elapsed=0.1,
                        failure=failure, unexpected=unexpected)


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
                         failure=x.failure, unexpected=x.unexpected) for x in state_samples]


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


# --- captive portals ---------------------------------------------------------------------------

GSTATIC = "http://connectivitycheck.gstatic.com/generate_204"
APPLE = "http://captive.apple.com/hotspot-detect.html"
MSFT = "http://www.msftconnecttest.com/connecttest.txt"
PORTAL = "302 portal.isp.test"


def p(target, unexpected=None, failure=None):
    return s(P, failure, target=target, unexpected=unexpected)


#: The rest of a round on a portal network: HTTPS to the canaries refused or dropped.
DROPPED = [s(G), s(R), s(D, T), s(INTL, T), s(C, T)]


@pytest.mark.parametrize(
    ("portal", "rest", "signature", "state"),
    [
        # a portal intercepts every check alike
        ([p(GSTATIC, PORTAL), p(APPLE, PORTAL), p(MSFT, PORTAL)], DROPPED, PORTAL,
         NetworkState.CAPTIVE),
        ([p(GSTATIC, PORTAL), p(APPLE, PORTAL), p(MSFT)], DROPPED, PORTAL, NetworkState.CAPTIVE),
        # a portal on a network whose HTTPS still works (a walled garden letting 443 through)
        ([p(GSTATIC, PORTAL), p(MSFT, PORTAL)], WHOLE, PORTAL, NetworkState.CAPTIVE),
        # one interception: a censor's block page (or DNS lie) for one check host
        ([p(GSTATIC, "200 title 'Access restricted'"), p(APPLE), p(MSFT)], WHOLE, None,
         NetworkState.WHOLE),
        # two different answers: one poisoned to an unrelated host, one block page
        ([p(GSTATIC, "200 sha256 0123456789abcdef"), p(APPLE, "302 warning.rt.ru"), p(MSFT)],
         WHOLE, None, NetworkState.WHOLE),
        # all fine
        ([p(GSTATIC), p(APPLE), p(MSFT)], WHOLE, None, NetworkState.WHOLE),
        # failures only (DNS/TCP/HTTP level) are ordinary failures: here a full shutdown
        ([p(GSTATIC, failure=T), p(APPLE, failure="connection_reset"), p(MSFT, failure=T)],
         DROPPED, None, NetworkState.SHUTDOWN_FULL),
        # a failure carries no signature even if one was somehow recorded with it
        ([p(GSTATIC, PORTAL, failure=T), p(APPLE, PORTAL)], DROPPED, None,
         NetworkState.SHUTDOWN_FULL),
        # one check sampled twice is still one check
        ([p(GSTATIC, PORTAL), p(GSTATIC, PORTAL)], DROPPED, None, NetworkState.SHUTDOWN_FULL),
    ],
    ids=["three-alike", "two-alike", "two-alike-https-works", "one", "two-different",
         "all-fine", "failures-only", "failure-does-not-count", "same-check-twice"],
)
def test_captive_portal(portal, rest, signature, state):
    assert portal_signature(portal + rest) == signature
    assert infer_state(portal + rest) is state
    (r,) = rounds(_round("2022-01-05T10:00:00.000000Z", portal + rest))
    assert (r.state, r.portal) == (state, signature)


CAPTIVE = [p(GSTATIC, PORTAL), p(APPLE, PORTAL), *DROPPED]


@pytest.mark.parametrize(
    ("timeline", "expected"),
    [
        ([("10:00:00", CAPTIVE), ("10:01:00", CAPTIVE)], "captive_portal"),
        # the portal's positive proof wins over the cut its dropped HTTPS looks like
        ([("10:00:00", CUT), ("10:00:15", CAPTIVE), ("10:01:00", CUT)], "captive_portal"),
        ([("10:00:00", WHOLE), ("10:00:15", CAPTIVE), ("10:01:00", WHOLE)], "captive_portal"),
        # a portal that went away before the measurement does not count
        ([("09:00:00", CAPTIVE), ("10:00:00", WHOLE), ("10:01:00", WHOLE)], "whole"),
    ],
)
def test_captive_window(timeline, expected):
    samples = [x for at, group in timeline for x in _round(f"2022-01-05T{at}.000000Z", group)]
    state, r = state_during(rounds(samples), "2022-01-05T10:00:10.000000Z",
                            "2022-01-05T10:00:20.000000Z")
    assert state.value == expected
    if state is NetworkState.CAPTIVE:
        assert r is not None and r.portal == PORTAL and PORTAL in r.summary()
