"""The body memos of probe.classify.fingerprints (one fold and one scan per distinct body,
remembered by its SHA-256) give exactly what matching without them gives, whether the body
was seen before, the memo is full, or the same bytes come as a new object."""

from __future__ import annotations

import pytest

from probe.classify import default_fingerprints
from probe.classify import fingerprints as F

BODIES = [
    b"<html><title>AGCOM Stop Page</title></html>",
    b'<iframe src="http://10.10.34.34?type=Invalid Site" style="width: 100%">',
    b"<p>This URLBlocked by policy</p>",
    b"<html><body>an ordinary page</body></html>",
    "<p>Доступ к ресурсу ограничен</p>".encode(),
    b"",
]


def _fresh() -> F.Fingerprints:
    fp = default_fingerprints()
    # the same fingerprints with empty memos (init=False fields start empty)
    return F.Fingerprints(fp.interception_cas, fp.blockpages, fp.blockpage_ips,
                          fp.false_positives, fp.field)


def _results(fp: F.Fingerprints, body: bytes) -> tuple[object, ...]:
    return (fp.blockpage(200, (), body, None), fp.false_positive(200, (), body, None),
            fp.field.blockpage((), body) if fp.field is not None else None)


@pytest.mark.parametrize("memo", [1, 2, F.BODY_MEMO])
def test_memoised_matching_is_matching(monkeypatch: pytest.MonkeyPatch, memo: int) -> None:
    expected = {b: _results(_fresh(), b) for b in BODIES}  # each on empty memos
    assert any(r[0] is not None for r in expected.values())  # the table has block pages
    monkeypatch.setattr(F, "BODY_MEMO", memo)
    fp = _fresh()
    for _ in range(3):
        for body in BODIES:
            copy = bytes(bytearray(body))  # equal bytes, another object
            assert _results(fp, body) == expected[body]
            assert _results(fp, copy) == expected[body]
    assert len(fp._bodies) <= memo
