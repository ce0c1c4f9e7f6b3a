"""The contract between the real control helper and the classifier.

The helper's answer is built here by :func:`probe.control.measure.summarise` (pure) from the
helper's own observations, then wrapped as :mod:`probe.control.client` does. If either side
changes a field, these tests break rather than a scenario silently turning inconclusive.
"""

from __future__ import annotations

from typing import Any

import pytest

from probe import failures as f
from probe.classify import classify
from probe.control.measure import summarise
from probe.model import Measurement, TCPObservation, TLSObservation, VerdictKind
from tests.factories import (
    CONTROL,
    HTTP_URL,
    IP,
    LIE,
    ROGUE_CHAIN,
    URL,
    context,
    http,
    meas,
    sys_dns,
    tcp,
    tls,
)

T = f.GENERIC_TIMEOUT


def helper(m: Measurement, extra: list[tuple[TCPObservation, TLSObservation | None]] = (),
           throughput: bool = True) -> dict[str, Any]:
    """The answer as the probe stores it (client adds ``control`` and ``control_failure``)."""
    return {**summarise(m, list(extra), throughput), "control": CONTROL, "control_failure": None}


#: What the helper sees for a healthy https site, with the probe's address checked as well.
HEALTHY = helper(meas(dns=sys_dns(), tcp_=(tcp(),), tls_=(tls(),), http_=(http(took=0.01),)),
                 [(tcp(1000), tls(1000))])
HEALTHY_HTTP = helper(meas(HTTP_URL, sys_dns(), (tcp(port=80),), (),
                           (http(url=HTTP_URL, took=0.01),)), [(tcp(1000, port=80), None)])


@pytest.mark.parametrize(
    ("probe", "answer", "kind", "method"),
    [
        # the control completes the handshake the probe's ClientHello could not
        (meas(dns=sys_dns(), tcp_=(tcp(),), tls_=(tls(failure=T, took=10.0),)), HEALTHY,
         "blocked", "tls.timeout"),
        # the control connects to the very address the probe could not
        (meas(dns=sys_dns(), tcp_=(tcp(failure=T, took=10.0),)), HEALTHY,
         "blocked", "tcp.timeout"),
        (meas(HTTP_URL, sys_dns(), (tcp(port=80),), (),
              (http(url=HTTP_URL, status=None, failure=f.CONNECTION_RESET, body=None),)),
         HEALTHY_HTTP, "blocked", "http.reset"),
        # the resolver lies, the control resolves
        (meas(dns=sys_dns(failure=f.DNS_NXDOMAIN)), HEALTHY, "blocked", "dns.nxdomain"),
        # nothing listens anywhere: the helper sends no HTTP request
        (meas(dns=sys_dns(), tcp_=(tcp(failure=f.CONNECTION_REFUSED),)),
         helper(meas(dns=sys_dns(), tcp_=(tcp(failure=f.CONNECTION_REFUSED),)),
                [(tcp(1000, failure=f.CONNECTION_REFUSED), None)]),
         "down", "down.tcp"),
        # an expired domain: NXDOMAIN at the helper too
        (meas(dns=sys_dns(failure=f.DNS_NXDOMAIN)),
         helper(meas(dns=sys_dns(failure=f.DNS_NXDOMAIN))), "down", "down.dns"),
        # a ghost domain answered locally only: the resolver rewrites NXDOMAIN (not a block)
        (meas(HTTP_URL, sys_dns("example.test", LIE), (tcp(ip=LIE, port=80),), (),
              (http(url=HTTP_URL, ip=LIE, body=b"<title>Parked</title>", title="Parked"),)),
         helper(meas(HTTP_URL, sys_dns(failure=f.DNS_NXDOMAIN)), [(tcp(1000, LIE, port=80),
                                                                   None)]),
         "down", "down.dns"),
        # a bad certificate everywhere: the helper completes TLS, the chain fails, no HTTP
        (meas(dns=sys_dns(), tcp_=(tcp(),), tls_=(tls(verified=False,
                                                      error=f.SSL_UNKNOWN_AUTHORITY,
                                                      chain=ROGUE_CHAIN),)),
         helper(meas(dns=sys_dns(), tcp_=(tcp(),),
                     tls_=(tls(verified=False, error=f.SSL_UNKNOWN_AUTHORITY,
                               chain=ROGUE_CHAIN),))),
         "down", "down.tls"),
        # an unknown rogue CA only at the probe
        (meas(dns=sys_dns(), tcp_=(tcp(),), tls_=(tls(verified=False,
                                                      error=f.SSL_UNKNOWN_AUTHORITY,
                                                      chain=ROGUE_CHAIN),)),
         HEALTHY, "intercepted", "tls.mitm"),
        # a 503 everywhere
        (meas(dns=sys_dns(), tcp_=(tcp(),), tls_=(tls(),), http_=(http(status=503),)),
         helper(meas(dns=sys_dns(), tcp_=(tcp(),), tls_=(tls(),), http_=(http(status=503),))),
         "down", "down.http"),
        # fetched at full speed by the helper, at 160 kbit/s by the probe
        (meas(dns=sys_dns(), tcp_=(tcp(),), tls_=(tls(),),
              http_=(http(took=10.0, body_length=200_000),)),
         helper(meas(dns=sys_dns(), tcp_=(tcp(),), tls_=(tls(),),
                     http_=(http(took=0.02, body_length=200_000),))),
         "throttled", "throttle"),
        (meas(dns=sys_dns(), tcp_=(tcp(),), tls_=(tls(),), http_=(http(),)), HEALTHY,
         "ok", None),
    ],
    ids=["sni-drop", "ip-blackhole", "http-reset", "dns-nxdomain", "down-tcp", "down-dns",
         "ghost-domain", "bad-cert-everywhere", "rogue-ca", "5xx-everywhere", "throttled",
         "ok"],
)
def test_real_helper_answers(probe: Measurement, answer: dict[str, Any], kind: str,
                             method: str | None) -> None:
    m = Measurement(probe.target, probe.started_at, probe.finished_at, probe.dns, probe.tcp,
                    probe.tls, probe.http, (answer,))
    v = classify(m, context())
    assert (v.verdict.value, v.method) == (kind, method), v.evidence
    assert v.verdict is VerdictKind.OK or "control" in v.details


def test_refusal_is_a_failed_control() -> None:
    refused = {"version": 1, "url": URL, "failure": "address not allowed", "refused": True,
               "control": CONTROL, "control_failure": None}
    m = meas(dns=sys_dns(), tcp_=(tcp(failure=T),), control=(refused,))
    v = classify(m)
    assert (v.verdict.value, v.method) == ("inconclusive", "control_failed")
    assert "address not allowed" in v.evidence
    assert IP in v.evidence
