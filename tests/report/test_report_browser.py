"""The HTML report in a real browser: Debian's headless Chromium driven by Playwright (no
browser download, no network). The page must load from a file with no console error and no
request leaving it, keep every XSS probe of the hostile fixture site inert, and its table
controls must work. A full-page screenshot is saved as reports/screenshot-test.png.

Skipped (with the reason) only when /usr/bin/chromium or the playwright package is missing;
`make install` installs both.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import pytest

from probe.lab.synth import generate, january_2022_spec
from probe.report import ReportOptions, build_report
from probe.report.render_html import render_html
from probe.report.times import resolve_tz

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = Path(__file__).resolve().parents[2] / "reports" / "screenshot-test.png"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
)
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() or shutil.which(str(CHROMIUM)) is None,
    reason="Debian chromium is not installed (apt-get install chromium chromium-driver)",
)


@pytest.fixture(scope="module")
def report_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("browser")
    db = folder / "kz-january-2022.db"
    generate(january_2022_spec(), db)
    report = build_report(
        ReportOptions((db,), resolve_tz("Asia/Almaty"), now=dt.datetime(2022, 1, 12, tzinfo=dt.UTC))
    )
    path = folder / "report.html"
    path.write_text(render_html(report), encoding="utf-8")
    return path


def test_report_in_headless_chromium(report_file: Path, tmp_path: Path) -> None:
    console: list[str] = []
    leaving: list[str] = []

    def route(r: Any) -> None:
        url = r.request.url
        if url.startswith(("file:", "data:")):
            r.continue_()
        else:
            leaving.append(url)
            r.abort()

    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=ARGS,
            viewport={"width": 1400, "height": 1000},
            offline=True,
        )
        try:
            context.route("**/*", route)
            page = context.new_page()
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
            page.on("request", lambda r: None if r.url.startswith(("file:", "data:"))
                    else leaving.append(r.url))
            page.goto(report_file.as_uri(), wait_until="load")

            # The XSS probes of the hostile site stayed text.
            assert page.evaluate("typeof window.__xss") == "undefined"
            assert page.evaluate("document.querySelectorAll('img').length") == 0
            assert page.evaluate("document.scripts.length") == 1
            hostile = page.locator("#targets-table tbody tr", has_text="hostile.example").first
            assert "<script>window.__xss=1</script>" in hostile.inner_text()

            # Summary, per-target table and the health timeline with the shutdown windows.
            assert page.locator("#summary .card").count() >= 5
            assert page.locator("#targets-table tbody tr").count() == 10
            health = page.locator("#health svg.chart").first
            assert health.locator("rect").count() > 20
            assert "full shutdown" in (health.text_content() or "")
            assert page.locator("#cuts tbody tr").count() == 16

            # Sorting and filtering work.
            first_url = "#targets-table tbody tr:not([hidden]) td:first-child"
            page.locator("#targets-table thead th button", has_text="target").click()
            assert page.locator(first_url).first.inner_text().startswith("https://down.example")
            page.locator("#targets-table thead th button", has_text="target").click()
            assert page.locator(first_url).first.inner_text().startswith("https://www.wikipedia")
            page.fill("[data-filter=targets-table] input", "meduza")
            assert page.locator("#targets-table tbody tr:not([hidden])").count() == 1
            page.fill("[data-filter=targets-table] input", "")
            page.select_option("[data-filter=targets-table] select", "ok")
            assert page.locator("#targets-table tbody tr:not([hidden])").count() == 3
            page.select_option("[data-filter=targets-table] select", "")

            SCREENSHOT.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
            print(f"screenshot: {SCREENSHOT}")
        finally:
            context.close()
    assert console == []
    assert leaving == []
    assert SCREENSHOT.stat().st_size > 50_000
