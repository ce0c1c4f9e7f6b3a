"""Privacy, fuzzed: any global IPv4 address, written in any spelling the scrubber knows,
anywhere in arbitrary text (or bytes in any of the wide encodings), is gone after scrubbing;
and scrubbing never raises, whatever the text (issue 13)."""

from __future__ import annotations

import base64
import ipaddress

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probe.store.privacy import PLACEHOLDER, Scrubber

FUZZ = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])

addresses = st.integers(min_value=0x01000000, max_value=0xDFFFFFFF).map(
    ipaddress.IPv4Address).filter(lambda ip: ip.is_global)
# text around it that cannot itself extend a number or a hex run
filler = st.text(alphabet=st.sampled_from(list("abc xyz<>/=;\"'()!?\n\t éЖ漢")), max_size=40)


def _spell(ip: ipaddress.IPv4Address, how: int) -> str:
    o = list(ip.packed)
    fw = str.maketrans("0123456789.", "０１２３４５６７８９．")
    return [
        str(ip),
        ".".join(map(str, reversed(o))) + ".in-addr.arpa",
        "-".join(map(str, o)) + ".dyn.isp.example",
        "-".join(map(str, reversed(o))),
        ".".join(f"{n:03d}" for n in o),
        f"0x{int(ip):08x}",
        f"{int(ip):08X}",
        str(int(ip)),
        "%2e".join(map(str, o)),
        "&#46;".join(map(str, o)),
        str(ip).translate(fw),
        f"::ffff:{int(ip) >> 16:x}:{int(ip) & 0xFFFF:x}",
        f"2002:{int(ip) >> 16:x}:{int(ip) & 0xFFFF:x}::1",
        f"64:ff9b::{int(ip) >> 16:X}:{int(ip) & 0xFFFF:X}",
        base64.b64encode(f"ip={ip};".encode()).decode(),
    ][how]


@FUZZ
@given(addresses, st.integers(0, 14), filler, filler)
def test_any_spelling_anywhere_is_scrubbed(ip, how, before, after):
    spelled = _spell(ip, how)
    text = f"{before} {spelled} {after}"
    out = Scrubber([str(ip)]).scrub_text(text)
    assert spelled not in out and PLACEHOLDER in out


@FUZZ
@given(addresses, st.integers(0, 10), filler, st.sampled_from(
    ["utf-8", "utf-16", "utf-16-le", "utf-16-be", "utf-32"]))
def test_in_bytes_of_any_wide_encoding(ip, how, around, codec):
    spelled = _spell(ip, how)
    data = f"{around} {spelled} {around}".encode(codec)
    out = Scrubber([str(ip)]).scrub_bytes(data)
    assert spelled.encode(codec)[4:] not in out


@FUZZ
@given(st.text(max_size=300), st.binary(max_size=300))
def test_never_raises_and_changes_nothing_without_the_address(text, data):
    s = Scrubber(["85.113.40.17", "2a02:8108:1940:1a00::17"])
    assert isinstance(s.scrub_text(text), str) and isinstance(s.scrub_bytes(data), bytes)
    if "85" not in text and "2a02" not in text.lower() and not any(
            c.isdigit() for c in text):
        assert s.scrub_text(text) == text
