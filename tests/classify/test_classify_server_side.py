"""A site's own error is not a censor's page: 5xx answers over plain HTTP that carry the site's
own uncommon headers are ``inconclusive server_side``, never ``blocked`` (analysis 1.7.0).

The brief's classic OONI false positive: a busy or rate-limiting site answers 503 (OONI's own
test helper sheds load that way, /work/shared/reference/ooni-methodology.md) while the control
in a data centre gets the page; probe/classify/http.py ``http_diff`` already told a 4xx with
the site's headers from an injected page, ``server_error`` did not."""

from __future__ import annotations

import pytest

from probe.classify import classify
from tests.factories import HTTP_URL, SITE_HEADERS, ctl, http_ok

FOREIGN = (("Server", "nginx"), ("Content-Type", "text/html"), ("X-Filter", "on"))
BARE = (("Content-Type", "text/html"),)


@pytest.mark.parametrize("status, headers, expected", [
    # The site's own X-Site-Build header (the control's page has it too): the server answered.
    (503, SITE_HEADERS, ("inconclusive", "server_side")),
    (502, SITE_HEADERS, ("inconclusive", "server_side")),
    # Headers the site never sends, or none that say anything: a difference, as before.
    (503, FOREIGN, ("blocked", "http.diff")),
    (503, BARE, ("blocked", "http.diff")),
])
def test_a_5xx_over_plain_http_with_the_sites_headers_is_the_server(
        status: int, headers: tuple[tuple[str, str], ...], expected: tuple[str, str]) -> None:
    v = classify(http_ok(control=(ctl(url=HTTP_URL),), status=status, headers=headers,
                         body=b"<html><body>Service Unavailable</body></html>", title=None))
    assert (v.verdict.value, v.method) == expected, v.evidence
