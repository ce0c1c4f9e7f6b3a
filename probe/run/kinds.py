"""The registry of kinds of test (OONI's "nettests"): which test measures an input, and how.

Responsibility: one table, :data:`KINDS`, from a test name to its :class:`TestKind` — the
input schemes it declares, the function that measures one input into a
:class:`~probe.model.Measurement`, and the IO-level fact the run engine needs to ask the
canaries early ("did the input answer?"). The classifier rules that judge a kind are looked
up by the same test name inside :mod:`probe.classify` (:data:`probe.classify.TEST_NAMES`).

The run engine, the store and the reports know nothing of any kind: they schedule, write and
show :class:`~probe.model.Target`/:class:`~probe.model.Measurement` values whose
``test_name`` says which kind they are. Adding a kind = a measure module, a classify module,
one entry here and one in :data:`probe.model.INPUT_SCHEMES` (docs/kinds.md).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from probe.errors import ProbeError
from probe.measure.apps import control_requests, measure_app
from probe.measure.dnscheck import measure_dnscheck
from probe.measure.settings import MeasureSettings
from probe.measure.tcp_connect import measure_tcp_connect
from probe.measure.tor import measure_tor
from probe.measure.web import Gate, measure_target
from probe.model import (
    DNSCHECK,
    ENDPOINT,
    ENDPOINT_LIST_TESTS,
    FACEBOOK_MESSENGER,
    INPUT_SCHEMES,
    SIGNAL,
    TCP_CONNECT,
    TELEGRAM,
    TOR,
    WEB_CONNECTIVITY,
    WHATSAPP,
    Measurement,
    Target,
)

#: Measures one input: ``(target, settings, on_addresses, gate) -> Measurement``. Never
#: raises for network trouble; ``on_addresses`` is called once with the addresses about to
#: be dialled (the control helper is asked about the same ones); ``gate(ip)`` is held around
#: every use of an address (the run's per-address limit).
Measurer = Callable[
    [Target, MeasureSettings, Callable[[list[str]], None] | None, Gate | None],
    Coroutine[Any, Any, Measurement],
]


@dataclass(frozen=True, slots=True)
class TestKind:
    """One kind of test.

    ``name``: the test name (OONI's where it exists), stored with every measurement and used
    to look up the classifier rules. ``schemes``: the input schemes it declares
    (``https://…``, ``tcp://…``). ``measure``: see :data:`Measurer`. ``reached``: did the
    input answer (an IO fact, no judgement)? False asks the canaries for a health round soon.
    """

    __test__ = False  # not a pytest test class, whatever its name says

    name: str
    schemes: tuple[str, ...]
    measure: Measurer
    reached: Callable[[Measurement], bool]
    #: Kinds that measure many endpoints (the apps): the control requests ``(url, probe's
    #: addresses)`` to send once the probe's measurement is done, instead of one request
    #: about the input while it runs. None = one request about ``target.url``.
    control_requests: Callable[[Measurement], list[tuple[str, list[str]]]] | None = None


def _web_reached(m: Measurement) -> bool:
    """Did the last HTTP exchange get a response?"""
    return bool(m.http) and m.http[-1].status is not None and m.http[-1].failure is None


def _tcp_reached(m: Measurement) -> bool:
    """Did a TCP connect succeed (or the host refuse: it answered)?"""
    return any(c.failure is None for c in m.tcp)


def _app_reached(m: Measurement) -> bool:
    """Did any endpoint of the app answer (a connect, or a UDP answer)?"""
    return _tcp_reached(m) or any(
        x.get("failure") is None for e in m.extra.get("endpoints", [])
        for x in (e.get("extra") or {}).get("udp", []) if isinstance(x, dict))


def _dnscheck_reached(m: Measurement) -> bool:
    """Did the resolver's address answer (a connect succeeded, or it refused)?"""
    return any(c.failure is None for c in m.tcp)


def _tor_reached(m: Measurement) -> bool:
    """Did any Tor target answer (a connect succeeded or was refused)?"""
    return any(c.failure in (None, "connection_refused") for c in m.tcp)


#: Every kind of test, by test name.
KINDS: dict[str, TestKind] = {
    WEB_CONNECTIVITY: TestKind(WEB_CONNECTIVITY, INPUT_SCHEMES[WEB_CONNECTIVITY],
                               measure_target, _web_reached),
    TCP_CONNECT: TestKind(TCP_CONNECT, INPUT_SCHEMES[TCP_CONNECT],
                          measure_tcp_connect, _tcp_reached),
    DNSCHECK: TestKind(DNSCHECK, INPUT_SCHEMES[DNSCHECK], measure_dnscheck, _dnscheck_reached),
    **{name: TestKind(name, INPUT_SCHEMES[name], measure_app, _app_reached, control_requests)
       for name in ENDPOINT_LIST_TESTS},
    TOR: TestKind(TOR, INPUT_SCHEMES[TOR], measure_tor, _tor_reached),
}
#: Test groups for ``probe run --tests`` (OONI's groups): each group's inputs. ``web`` is the
#: URL list given; ``im`` the four messengers; ``circumvention`` the endpoint lists of VPNs
#: and Tor's authorities and bridges (the ``tor`` list).
TEST_GROUPS: dict[str, tuple[str, ...]] = {
    "im": (f"{WHATSAPP}://{WHATSAPP}", f"{TELEGRAM}://{TELEGRAM}", f"{SIGNAL}://{SIGNAL}",
           f"{FACEBOOK_MESSENGER}://{FACEBOOK_MESSENGER}"),
    "circumvention": (f"{ENDPOINT}://vpn", f"{TOR}://tor"),
}


def kind_of(test_name: str) -> TestKind:
    """The kind named ``test_name``; ProbeError for a name this probe does not know."""
    try:
        return KINDS[test_name]
    except KeyError:
        raise ProbeError(f"unknown kind of test {test_name!r} (known: "
                         f"{', '.join(sorted(KINDS))})") from None


async def measure_input(target: Target, settings: MeasureSettings | None = None) -> Measurement:
    """Measure one input of any kind (its ``test_name`` picks the kind): no control, no
    storage, no verdict. Never raises for network trouble; ProbeError for an unknown kind."""
    kind = kind_of(target.test_name)
    return await kind.measure(target, settings or MeasureSettings(), None, None)
