"""Render a report or a comparison in one format and write it where the user asked.

Formats: ``html``, ``md``, ``csv``, ``json`` for reports; ``table``, ``md``, ``csv``, ``json``,
``html`` for comparisons. CSV reports are several tables, so they are written as a directory of
``<table>.csv`` files (or, on stdout, one stream with a ``# <table>`` line before each).
Default paths are under ``reports/``, named by the generation time. Whatever is written passes
through :func:`probe.report.safe_text.visible` last (no bidirectional or zero-width character
reaches a report, whichever renderer made it), and standard output through
:func:`probe.report.safe_text.terminal_stdout` (no escape sequence reaches a terminal).
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from probe.errors import ProbeError, UsageError
from probe.report.records import Comparison, Report
from probe.report.render_csv import concatenated, render_comparison_csv, render_csv
from probe.report.render_html import render_comparison_html, render_html
from probe.report.render_json import render_comparison_json, render_json
from probe.report.render_md import render_comparison_md, render_md
from probe.report.render_text import render_comparison_text
from probe.report.safe_text import terminal_stdout, visible

REPORT_FORMATS = ("html", "md", "csv", "json")
COMPARE_FORMATS = ("table", "md", "csv", "json", "html")
DEFAULT_DIR = Path("reports")
_EXT = {"html": "html", "md": "md", "json": "json", "csv": "csv"}


def check_format(fmt: str, allowed: tuple[str, ...]) -> str:
    fmt = fmt.lower()
    if fmt == "markdown":
        fmt = "md"
    if fmt not in allowed:
        raise UsageError(f"--format {fmt!r}: choose {', '.join(allowed)}")
    return fmt


def default_path(generated_at: dt.datetime, fmt: str, stem: str = "report") -> Path:
    stamp = generated_at.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    if fmt == "csv":
        return DEFAULT_DIR / f"{stem}-{stamp}-csv"
    return DEFAULT_DIR / f"{stem}-{stamp}.{_EXT[fmt]}"


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(visible(text), encoding="utf-8")
        tmp.replace(path)
    except OSError as e:
        raise ProbeError(f"cannot write {path}: {e.strerror or e}") from e


def _stdout(text: str) -> None:
    with terminal_stdout() as out:
        out.write(visible(text))


def write_report(report: Report, fmt: str, out: str | None) -> list[Path]:
    """Render ``report`` as ``fmt`` to ``out`` (None = default path, ``-`` = stdout).

    Returns the files written (empty for stdout). Raises ProbeError when a file cannot be
    written.
    """
    fmt = check_format(fmt, REPORT_FORMATS)
    if fmt == "csv":
        tables = render_csv(report)
        if out == "-":
            _stdout(concatenated(tables))
            return []
        folder = Path(out) if out else default_path(report.meta.generated_at, "csv")
        if folder.suffix == ".csv":  # a file name was given: use it as a prefix
            paths = [folder.with_name(f"{folder.stem}-{name}.csv") for name in tables]
        else:
            paths = [folder / f"{name}.csv" for name in tables]
        for path, text in zip(paths, tables.values(), strict=True):
            _write(path, visible(text))
        return paths
    text = {"html": render_html, "md": render_md, "json": render_json}[fmt](report)
    if out == "-":
        _stdout(text)
        return []
    path = Path(out) if out else default_path(report.meta.generated_at, fmt)
    _write(path, text)
    return [path]


def render_comparison(comparison: Comparison, fmt: str) -> str:
    fmt = check_format(fmt, COMPARE_FORMATS)
    renderers = {
        "table": render_comparison_text,
        "md": render_comparison_md,
        "csv": render_comparison_csv,
        "json": render_comparison_json,
        "html": render_comparison_html,
    }
    return renderers[fmt](comparison)


def write_comparison(comparison: Comparison, fmt: str, out: str | None) -> list[Path]:
    """Render a comparison; ``out`` None or ``-`` = stdout. Returns the files written."""
    return write_text(render_comparison(comparison, fmt), out)


def write_text(text: str, out: str | None) -> list[Path]:
    """Write rendered text to ``out`` (None or ``-`` = stdout). Returns the files written."""
    if out in (None, "-"):
        _stdout(text)
        return []
    path = Path(out)
    _write(path, text)
    return [path]
