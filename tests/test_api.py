"""The public API: ``probe.__all__`` is pinned, and the docs/api.md example runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import probe
from probe.lab.world.loopback import LoopbackWorld, demo_urls, demo_world

API = [
    "MeasureSettings", "Measurement", "ProbeError", "ReportOptions", "RunOutcome",
    "RunProgress", "RunRequest", "StorageError", "Store", "Target", "TargetListError",
    "UsageError", "Verdict", "VerdictKind", "WatchPlan", "build_report", "execute",
    "load_sources", "measure_input", "measure_target", "parse_input", "parse_url", "reanalyze",
    "write_report",
]
DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"


def test_all_is_pinned_and_every_name_resolves() -> None:
    assert sorted(probe.__all__) == sorted(API)
    for name in probe.__all__:
        assert getattr(probe, name) is not None, name


def test_import_is_light_and_help_shows_the_api() -> None:
    code = ("import sys, probe; print('probe.run.engine' in sys.modules, "
            "'httpx' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False"]
    shown = subprocess.run([sys.executable, "-c", "import probe; help(probe)"],
                           capture_output=True, text=True, check=True,
                           env={"PAGER": "cat", "PATH": "/usr/bin:/bin"}).stdout
    for name in ("RunRequest", "execute", "Store", "ProbeError", "reanalyze"):
        assert name in shown, name


def test_the_docs_example_runs(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert blocks, "docs/api.md has no python example"
    with LoopbackWorld(demo_world(tmp_path / "world")) as world:
        host, port = world.dns_address
        scope = {"urls": demo_urls(world), "dns": f"{host}:{port}",
                 "ca_pem": Path(world.ca_pem), "db_path": tmp_path / "api.db"}
        exec(compile(blocks[0], str(DOC), "exec"), scope)  # noqa: S102


def test_tool_errors_share_one_base() -> None:
    from probe.classify.fingerprints import FingerprintError
    from probe.control.protocol import BadRequest
    from probe.errors import InvalidValue
    from probe.run.watch import parse_duration

    for cls in (FingerprintError, BadRequest, InvalidValue):
        assert issubclass(cls, probe.ProbeError)
    with pytest.raises(probe.UsageError):
        parse_duration("soon")
    with pytest.raises(ValueError):  # still a ValueError for value-checking callers
        probe.parse_url("ftp://x.example/")


def test_measure_one_input_of_each_kind(tmp_path: Path) -> None:
    import asyncio

    from probe.measure.settings import Resolver

    with LoopbackWorld(demo_world(tmp_path / "world")) as world:
        host, port = world.dns_address
        settings = probe.MeasureSettings.with_timeout(
            3.0, use_system_resolver=False, resolvers=(Resolver(host, port),),
            ca_bundle=world.ca_pem)
        web = probe.parse_input(demo_urls(world)["ok"])
        m = asyncio.run(probe.measure_input(web, settings))
        assert m.test_name == "web_connectivity" and m.http and m.http[-1].status == 200
        address = m.tcp[0].ip
        tcp = probe.parse_input(f"tcp://{address}:{web.port}")
        m = asyncio.run(probe.measure_input(tcp, settings))
        assert m.test_name == "tcp_connect" and m.tcp and m.tcp[0].failure is None


def test_no_public_name_is_also_a_subpackage() -> None:
    """``probe.measure`` or ``probe.classify`` as functions would be shadowed by (or shadow)
    the packages of the same name once they are imported."""
    import importlib.util

    for name in probe.__all__:
        assert importlib.util.find_spec(f"probe.{name}") is None, name
