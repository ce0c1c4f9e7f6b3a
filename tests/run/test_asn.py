"""ASN table: parsing iptoasn TSV and range lookups."""

import pytest

from probe.errors import ProbeError
from probe.run import asn

TSV = (
    "2.72.0.0\t2.79.255.255\t9198\tKZ\tKAZTELECOM-AS\n"
    "31.13.24.0\t31.13.127.255\t32934\tUS\tFACEBOOK\n"
    "2a03:2880::\t2a03:2880:ffff:ffff:ffff:ffff:ffff:ffff\t32934\tUS\tFACEBOOK\n"
    "100.0.0.0\t100.0.0.255\t0\tNone\tNot routed\n"
)


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("2.72.0.0", 9198),
        ("2.79.255.255", 9198),
        ("2.80.0.0", None),
        ("31.13.64.35", 32934),
        ("2a03:2880:f10e::1", 32934),
        ("100.0.0.7", None),  # AS 0 = not routed
        ("1.1.1.1", None),
        ("not-an-ip", None),
    ],
)
def test_lookup(tmp_path, ip, expected):
    p = tmp_path / "ip2asn.tsv"
    p.write_text(TSV)
    assert asn.load(p).asn(ip) == expected


@pytest.mark.parametrize(
    ("content", "message"),
    [("1.2.3.4\n", ":1: expected 5"), ("1.2.3.4\tx\t5\tKZ\tX\n", ":1: ")],
)
def test_bad_lines_name_file_and_line(tmp_path, content, message):
    p = tmp_path / "bad.tsv"
    p.write_text(content)
    with pytest.raises(ProbeError, match=message):
        asn.load(p)


def test_missing_file(tmp_path):
    with pytest.raises(ProbeError, match="cannot read"):
        asn.load(tmp_path / "nope.tsv")
