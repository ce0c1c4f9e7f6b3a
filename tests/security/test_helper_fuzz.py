"""Fuzz the helper's HTTP interface (request line, headers, JSON body) for a bounded time:
no answer may be a 5xx, and nothing may reach the log as a traceback (issue 13).

The helper runs its real request path (protocol, policy, measurement) under a policy that
refuses every address, with a resolver on the loopback discard port: nothing is dialled and
nothing leaves the machine.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import socket
from functools import partial

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probe.control.measure import measure_request
from probe.control.policy import Policy
from probe.control.server import Limits
from probe.measure.settings import MeasureSettings, Resolver
from tests.security.helper_servers import HEALTH, exchange, helper_in_thread, read_answer

NOTHING = Policy(deny=(ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")),
                 own=None, request_timeout=3.0)
SETTINGS = MeasureSettings.with_timeout(0.3, use_system_resolver=False,
                                        resolvers=(Resolver("127.0.0.1", 9),))

TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
token = st.text(alphabet=TCHAR, min_size=1, max_size=12)
methods = st.one_of(st.sampled_from(["GET", "POST", "HEAD", "PUT", "OPTIONS"]), token)
paths = st.one_of(st.sampled_from(["/v1/measure", "/v1/health", "/", "*", "/v1/measure?x=1",
                                   "http://h/v1/measure"]),
                  st.text(min_size=0, max_size=64).map(lambda t: "/" + t))
header_names = st.one_of(st.sampled_from(["content-length", "transfer-encoding", "host",
                                          "authorization", "forwarded", "x-forwarded-for",
                                          "expect", "connection", "content-type"]), token)
header_values = st.one_of(st.sampled_from(["0", "5", "-1", "chunked", "close",
                                           "100-continue", "Bearer x", "for=1.2.3.4",
                                           "99999999999999999999"]),
                          st.text(max_size=40))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=20)
urls = st.one_of(
    st.sampled_from(["https://a.example/", "http://127.0.0.1/", "tcp://a.example:443",
                     "http://[::1]:80/", "https://0x7f.1/", "http://a.example:22/",
                     "ftp://a.example/", "http://", "https://a.example:99999/"]),
    st.text(max_size=60))
requests = st.fixed_dictionaries(
    {"url": urls},
    optional={"addresses": st.lists(st.one_of(st.sampled_from(["127.0.0.1", "10.0.0.1", "::1",
                                                               "1.1.1.1"]), st.text(max_size=20),
                                              st.integers()), max_size=10),
              "throughput": st.one_of(st.booleans(), json_values)})
bodies = st.one_of(requests.map(lambda r: json.dumps(r).encode()),
                   json_values.map(lambda v: json.dumps(v).encode()),
                   st.binary(max_size=200))


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


@st.composite
def raw_requests(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=300))
    body = draw(bodies)
    headers = draw(st.lists(st.tuples(header_names, header_values), max_size=6))
    if draw(st.booleans()):
        headers.append(("content-length", str(len(body))))
    if draw(st.booleans()):
        headers.append(("host", "helper"))
    version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2", "HTTP/1.1 x", ""]))
    line = f"{draw(methods)} {draw(paths)} {version}\r\n"
    head = line + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    return _encode(head) + body


def _send(port: int, data: bytes) -> int | None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            return None
        return read_answer(s)[0]


@pytest.fixture(scope="module")
def helper():
    measurer = partial(measure_request, settings=SETTINGS)
    with helper_in_thread(NOTHING, measurer,
                          limits=Limits(header_timeout=1.0, body_timeout=1.0)) as running:
        yield running


#: PROBE_FUZZ_EXAMPLES raises the bound for a longer hunt (the suite keeps ~200, a few seconds)
EXAMPLES = int(os.environ.get("PROBE_FUZZ_EXAMPLES", "200"))


@settings(max_examples=EXAMPLES, deadline=3000, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(raw=raw_requests())
def test_no_request_makes_the_helper_fail(helper, raw):
    server, port = helper
    status = _send(port, raw)
    assert status is None or status < 500, (status, raw[:200])
    assert server.stats["errors"] == 0


def test_after_the_fuzzing_the_helper_still_answers_and_logged_no_traceback(helper, caplog):
    caplog.set_level(logging.DEBUG)
    server, port = helper
    assert exchange(port, HEALTH)[0] == 200
    assert server.stats["errors"] == 0 and "Traceback" not in caplog.text
