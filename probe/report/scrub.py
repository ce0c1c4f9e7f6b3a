"""Make network-supplied text fit for a report: one line, bounded length, no stray IP addresses.

Text that came from the network (page titles, header values, evidence built from them) can
carry the probe's own address — block pages and echo services love ``Your IP: …``. A report
keeps only the addresses the measurement itself contacted or was given (DNS answers, the
endpoints it connected to, the resolvers it asked); every other IP literal becomes ``[ip]``.
Escaping for a particular output format is the renderers' job, not this module's; making
controls and invisible characters harmless is :mod:`probe.report.safe_text`'s.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from probe.report.safe_text import visible

MAX_TEXT = 300
_V4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
# Candidate IPv6 literals (validated by ipaddress): hex groups with at least two colons.
_V6 = re.compile(
    r"(?<![0-9A-Za-z:.])\[?((?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{0,4}|(?:\d{1,3}\.){3}"
    r"\d{1,3}))(?:%[0-9A-Za-z]+)?\]?(?![0-9A-Za-z:])"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
REPLACEMENT = "[ip]"


def _canonical(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text.strip("[]").split("%", 1)[0]))
    except ValueError:
        return None


def normalise_addresses(values: Iterable[str | None]) -> frozenset[str]:
    """Canonical forms of the addresses in ``values`` (``ip``, ``ip:port``, ``[v6]:port``)."""
    out: set[str] = set()
    for value in values:
        if not value:
            continue
        for candidate in (value, value.rsplit(":", 1)[0]):
            canon = _canonical(candidate)
            if canon:
                out.add(canon)
                break
    return frozenset(out)


def scrub_ips(text: str, allowed: frozenset[str] = frozenset()) -> str:
    """Replace every IP literal in ``text`` that is not in ``allowed`` by ``[ip]``."""

    def v4(m: re.Match[str]) -> str:
        canon = _canonical(m.group(0))
        if canon is None or canon in allowed:
            return m.group(0)
        return REPLACEMENT

    def v6(m: re.Match[str]) -> str:
        canon = _canonical(m.group(1))
        if canon is None or canon in allowed:
            return m.group(0)
        return REPLACEMENT

    return _V6.sub(v6, _V4.sub(v4, text))


def clean_text(
    text: str | None, allowed: frozenset[str] = frozenset(), limit: int = MAX_TEXT
) -> str:
    """One line, at most ``limit`` characters, foreign IP literals scrubbed, controls (C0 and
    C1) as spaces and bidirectional / zero-width characters visible
    (:func:`probe.report.safe_text.visible`); '' for None."""
    if not text:
        return ""
    one = " ".join(_CONTROL.sub(" ", text).split())
    one = scrub_ips(one, allowed)
    if len(one) > limit:
        one = one[: limit - 1] + "…"
    return visible(one)
