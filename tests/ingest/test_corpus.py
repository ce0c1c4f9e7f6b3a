"""The real OONI corpus (tests/data/ooni): every committed file is the manifest's document and
imports into the verdict the manifest expects (verdict + method)."""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path

import pytest

from probe.ingest import import_ooni
from probe.store import Store

CORPUS = Path(__file__).parent.parent / "data" / "ooni"
MANIFEST = tomllib.loads((CORPUS / "MANIFEST.toml").read_text())["measurement"]
PRESENT = [m for m in MANIFEST if (CORPUS / m["file"]).exists()]


def test_every_file_in_the_folder_is_in_the_manifest() -> None:
    named = {m["file"] for m in MANIFEST}
    files = {p.name for p in CORPUS.glob("*.json")}
    assert files <= named, sorted(files - named)
    assert len({m["file"] for m in MANIFEST}) == len(MANIFEST)


@pytest.mark.parametrize("entry", PRESENT, ids=lambda m: m["file"])
def test_the_file_is_the_published_document(entry: dict) -> None:
    text = (CORPUS / entry["file"]).read_text()
    assert hashlib.sha256(text.encode()).hexdigest() == entry["sha256"]
    doc = json.loads(text)
    assert doc["test_name"] == entry["test_name"]
    assert doc.get("report_id") == entry.get("report_id", doc.get("report_id"))


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """The whole corpus imported into one database: results by file name."""
    db = tmp_path_factory.mktemp("corpus") / "corpus.db"
    with Store.open(db) as store:
        result = import_ooni(store, [str(CORPUS / m["file"]) for m in PRESENT])
        assert result.skipped == 0
        by_origin = {}
        for run in store.run_ids():
            for row in store.results(run):
                p = store.provenance(row["measurement_id"])
                assert p is not None
                by_origin[Path(p.origin.rsplit(":", 1)[0]).name] = row
    return by_origin


@pytest.mark.parametrize("entry", PRESENT, ids=lambda m: m["file"])
def test_the_expected_verdict(entry: dict, imported: dict[str, dict]) -> None:
    row = imported[entry["file"]]
    got = f"{row['verdict']} {row['method']}" if row["method"] else row["verdict"]
    assert got == entry["expected"], (entry["why"], row["evidence"])
