"""Builders shared by the collector's tests: a valid upload batch from a real probe database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from probe.collector.upload import batch_body
from probe.lab.bench.collector_case import fill_probe_db
from probe.store import Store
from probe.store.outbox import Outbox


def valid_batch(tmp_path: Path, n: int = 3, seed: int = 0, name: str = "src.db") -> dict[str, Any]:
    """A ``probe.upload/1`` batch of ``n`` measurements, as ``probe upload`` would send it."""
    db = tmp_path / name
    fill_probe_db(db, n, seed=seed)
    with Store.open(db) as store:
        outbox = Outbox(store)
        batch = outbox.claim(n)
        assert batch is not None
        body, gone = batch_body(store, outbox, batch)
    assert not gone
    return json.loads(body)
