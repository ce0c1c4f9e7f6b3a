"""Stored URLs a hostile server, another tool or the scrubber wrote never stop classification.

Found when merging the Tor kind (a scrubbed IP-literal URL, ``http://[scrubbed]:80/``, made the
whole run's reclassification raise) and then by hand: a redirect's ``Location: http://[x]/``
did the same. ``urlsplit`` raises ``ValueError`` for an invalid bracketed host or port;
:func:`probe.model.split_url` never does, and every reader of stored URLs uses it.
"""

from __future__ import annotations

import dataclasses
from urllib.parse import urlsplit

import pytest

from probe.classify import classify, classify_run
from probe.model import VerdictKind, split_url
from tests.factories import http, meas, sys_dns, target, tcp, tls

HOSTILE = [
    "http://[evil]/",
    "http://[scrubbed]:80/x",
    "https://[::1/",
    "http://example.com:99999/",
    "http://example.com:port/",
    "http://[1.2.3.4]/",
]


@pytest.mark.parametrize("url", HOSTILE)
def test_split_url_never_raises_and_keeps_the_scheme(url: str) -> None:
    parts = split_url(url)
    assert parts.scheme == url.partition("://")[0]
    with pytest.raises(ValueError):  # the stdlib would have raised somewhere
        _ = urlsplit(url).port


@pytest.mark.parametrize("location", HOSTILE)
def test_a_hostile_redirect_location_is_judged_not_raised(location: str) -> None:
    url = "https://example.com/"
    m = meas(url, sys_dns(), (tcp(),), (tls(),),
             (http(url=url, status=302, location=location),), ())
    v = classify(m)
    assert v.verdict is not VerdictKind.BLOCKED  # a redirect with no evidence blames no one
    assert classify_run([m])[0].verdict is v.verdict


@pytest.mark.parametrize("url", ["http://[scrubbed]:80/x", "http://[evil]/"])
def test_a_stored_url_that_does_not_parse_is_judged(url: str) -> None:
    m = meas("http://example.com/", sys_dns(), (tcp(),), (), (http(url=url),), ())
    m = dataclasses.replace(m, target=target("http://example.com/"))
    assert classify(m).verdict in set(VerdictKind)
