"""Tests for ``probe export`` and ``probe db`` as registered by
:func:`probe.cli.export_cmd.register` on a fresh typer app: options, stdout, default paths,
exit codes, one-line errors."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import typer

from probe.cli.export_cmd import ExportFormat, register
from probe.export import FORMATS
from tests.clirunner import CliRunner
from tests.factories import Built, build_db


@pytest.fixture
def app() -> typer.Typer:
    root = typer.Typer()
    register(root)
    return root


@pytest.fixture
def built(tmp_path: Path) -> Built:
    return build_db(tmp_path / "probe.db")


def test_commands_have_help(app: typer.Typer) -> None:
    assert tuple(f.value for f in ExportFormat) == FORMATS
    for args in (["export", "--help"], ["db", "--help"], ["db", "merge", "--help"]):
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 0 and "Usage" in res.output
    assert "--since" in CliRunner().invoke(app, ["export", "--help"]).output


@pytest.mark.parametrize("fmt", ["jsonl", "ooni", "csv"])
def test_export_to_stdout(app: typer.Typer, built: Built, fmt: str) -> None:
    res = CliRunner().invoke(app, ["export", "--db", str(built.path), "--format", fmt,
                                   "--out", "-", "--run", built.runs["B"]])
    assert res.exit_code == 0, res.stderr
    assert res.stderr.strip() == "exported 2 measurements to <stdout>"
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(res.stdout)))
        assert {r["measurement_id"] for r in rows} == {built.ids["down"], built.ids["shutdown"]}
    else:
        objects = [json.loads(line) for line in res.stdout.splitlines()]
        key = "measurement_uid" if fmt == "ooni" else "measurement_id"
        assert {o[key] for o in objects} == {built.ids["down"], built.ids["shutdown"]}


def test_default_output_goes_under_reports(app: typer.Typer, built: Built, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["export", "--format", "ooni", "--since", "2026-11-22",
                                   "--until", "2026-11-22"],
                             env={"PROBE_DB": str(built.path)})
    assert res.exit_code == 0, res.stderr
    [out] = list((tmp_path / "reports").iterdir())
    assert out.name.startswith("probe-export-") and out.name.endswith(".ooni.jsonl")
    assert len(out.read_text().splitlines()) == 3
    assert res.stderr.strip() == f"exported 3 measurements to {Path('reports') / out.name}"
    res = CliRunner().invoke(app, ["export", "-f", "parquet", "--db", str(built.path)])
    assert res.exit_code == 0, res.stderr
    [dataset] = [p for p in (tmp_path / "reports").iterdir() if p.is_dir()]
    assert dataset.name.endswith("-parquet") and (dataset / "verdicts").is_dir()
    assert "7 measurements" in res.stderr and "7 health_samples" in res.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--format", "xml"], 2, "xml"),
        (["--format", "parquet", "--out", "-"], 2, "a Parquet dataset is a directory"),
        (["--format", "csv", "--since", "last tuesday"], 2, "bad time 'last tuesday'"),
        (["--format", "csv", "--run", "nope"], 1, "no run 'nope'"),
        (["--format", "csv", "--db", "{tmp}/missing.db"], 1, "missing.db: no such file"),
        (["--format", "csv", "--out", "{tmp}"], 1, "is a directory"),
    ],
)
def test_usage_and_runtime_errors(app: typer.Typer, built: Built, tmp_path: Path,
                                  args: list[str], code: int, message: str) -> None:
    argv = ["export", "--db", str(built.path), *[a.format(tmp=tmp_path) for a in args]]
    res = CliRunner().invoke(app, argv)
    assert res.exit_code == code, res.output
    assert message in res.stderr
    if code == 1:
        [line] = res.stderr.strip().splitlines()
        assert line.startswith("probe: error: ")


def test_foreign_database_is_one_line(app: typer.Typer, tmp_path: Path) -> None:
    bad = tmp_path / "photos.db"
    bad.write_bytes(b"\x89PNG not a database" * 50)
    res = CliRunner().invoke(app, ["export", "--db", str(bad), "--format", "jsonl",
                                   "--out", str(tmp_path / "x.jsonl")])
    assert res.exit_code == 1
    assert res.stderr.strip().splitlines() == [
        f"probe: error: cannot read database {bad}: file is not a database"]
    assert not (tmp_path / "x.jsonl").exists()


def test_parquet_without_pyarrow_is_one_line(app: typer.Typer, built: Built, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.delitem(sys.modules, "probe.export.parquet", raising=False)
    res = CliRunner().invoke(app, ["export", "--db", str(built.path), "--format", "parquet",
                                   "--out", str(tmp_path / "ds")])
    assert res.exit_code == 1
    [line] = res.stderr.strip().splitlines()
    assert line.startswith("probe: error: --format parquet needs pyarrow")
    assert not (tmp_path / "ds").exists()
