"""The shared builders of :mod:`tests.factories` build what the tests assume they do."""

from __future__ import annotations

from pathlib import Path

from probe.store import Store
from tests.factories import build_db, full_measurement


def test_built_database_round_trips_through_the_store(tmp_path: Path) -> None:
    built = build_db(tmp_path / "a.db")
    with Store.open(built.path) as store:
        got = dict(store.iter_measurements())
        assert {built.name_of(mid): m for mid, m in got.items()} == built.measurements
        assert store.current_verdict(built.ids["ok"]) == built.verdicts["ok"]
        assert len(store.verdict_history(built.ids["ok"])) == 2
        assert store.current_verdict(built.ids["unjudged"]) is None
        assert len(store.health_samples(built.runs["B"])) == 4


def test_fixture_covers_every_observation_kind() -> None:
    m = full_measurement()
    assert m.dns and m.tcp and m.tls and m.http and m.control
    assert any(d.response_index == 1 for d in m.dns)
    assert any(h.certificates for h in m.tls) and any(h.verified is False for h in m.tls)
    assert any(h.redirect_index == 1 for h in m.http)
