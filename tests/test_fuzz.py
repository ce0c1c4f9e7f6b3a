"""Property-based tests: any target list, config file or environment value either loads or gets
one-line errors naming ``FILE:LINE`` (or the variable); never a traceback.

Inputs are arbitrary: unicode text and raw bytes, quotes, commas, NULs, CR/LF/CRLF line ends,
BOMs, headers right and wrong; TOML documents with arbitrary keys and values (nested, non-finite
floats, huge integers), and arbitrary text. Kept to a few seconds with bounded example counts.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probe import targets as T
from probe.cli import config as C
from probe.cli.root import app
from probe.errors import TargetListError
from tests.clirunner import CliRunner

FUZZ = settings(max_examples=120, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])
_counter = itertools.count()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _write(workdir: Path, data: bytes, suffix: str) -> str:
    path = workdir / f"f{next(_counter)}{suffix}"
    path.write_bytes(data)
    return str(path)


def _one_line(problem: str) -> None:
    assert problem and "\n" not in problem and "\r" not in problem, repr(problem)


def _names_file_and_line(problem: str, path: str) -> None:
    """``FILE:LINE: reason`` (line ≥ 1), or ``FILE: cannot read …`` (no line to name)."""
    _one_line(problem)
    if re.match(re.escape(path) + r":[1-9]\d*: \S", problem):
        return
    assert problem.startswith(f"{path}: cannot read"), problem


# --- target lists -----------------------------------------------------------------------------

_field = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["https://ok.example/", "http://a.example:8080/p?q=1", "NEWS", "news",
                     "GRP", "", " ", "\"", ",", "\n", "\r\n", "#", "ftp://x/", "https://",
                     "https://[::1]/", "https://[zz]/", "https://xn--/", "https://a..b/",
                     "gateway", "auto", "10.0.0.1", "international", "https://例え.jp/"]),
    st.binary(max_size=20).map(lambda b: b.decode("latin-1")),
)
_row = st.lists(_field, min_size=0, max_size=8)
_header = st.sampled_from([
    ",".join(T.CSV_HEADER), ",".join(T.CANARY_HEADER), "URL,Category_Code,x,y,z,w", "",
    "# a plain list", "\ufeff" + ",".join(T.CSV_HEADER), "url,category_code",
])


@st.composite
def target_files(draw: st.DrawFn) -> tuple[bytes, str]:
    """A file's bytes and its suffix: CSV rows written properly or joined by hand, plain text,
    or raw bytes, with a header or none and any line ends."""
    header = draw(_header)
    rows = draw(st.lists(_row, max_size=8))
    style = draw(st.sampled_from(["csv", "naive", "plain", "bytes"]))
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    if style == "csv":
        buf = io.StringIO()
        csv.writer(buf, lineterminator=newline).writerows(rows)
        text = header + newline + buf.getvalue()
    elif style == "naive":
        text = newline.join([header, *(",".join(r) for r in rows)])
    elif style == "plain":
        text = newline.join(f for r in rows for f in r)
    else:
        return draw(st.binary(max_size=300)), draw(st.sampled_from([".csv", ".txt", ""]))
    data = text.encode("utf-8", errors="surrogateescape")
    if draw(st.booleans()):  # splice raw bytes somewhere
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
    return data, draw(st.sampled_from([".csv", ".txt", ".lst"]))


@FUZZ
@given(target_files())
def test_any_target_list_loads_or_names_file_and_line(workdir, case):
    data, suffix = case
    path = _write(workdir, data, suffix)
    for problem in T.validate_file(path):
        _names_file_and_line(problem, path)
    for load in (T.load_file, T.load_canaries, lambda p: T.load_sources([p])):
        try:
            loaded = load(path)
        except TargetListError as e:
            assert e.problems
            for problem in e.problems:
                _names_file_and_line(problem, path)
        else:
            assert isinstance(loaded, list)


@settings(max_examples=25, deadline=None, database=None)
@given(target_files())
def test_targets_validate_command_never_crashes(workdir, case):
    data, suffix = case
    path = _write(workdir, data, suffix)
    res = CliRunner().invoke(app, ["targets", "validate", path])
    assert res.exit_code in (0, 1), res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    for line in res.stdout.splitlines():
        if not line.startswith("ok: "):
            _names_file_and_line(line, path)


# --- config files -----------------------------------------------------------------------------

_KNOWN = [s.name for s in C.RUN_SETTINGS]


def _toml_string(text: str) -> str:
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{_toml_string(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"


_scalar = st.one_of(
    st.booleans(), st.integers(), st.floats(), st.text(max_size=30),
    st.sampled_from(["1.1.1.1", "[::1]:53", "8.8.8.8:99999", "NEWS", "nope", "~/x.db", "",
                     "https://helper.example/", "http://", "true", "5"]),
    st.integers(-5, 2000),
)
_value = st.recursive(
    _scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8,
)
_key = st.one_of(st.sampled_from(_KNOWN), st.text(min_size=0, max_size=15))


@st.composite
def toml_documents(draw: st.DrawFn) -> tuple[str, dict[str, int]]:
    """A TOML document with one key per line (comments and blank lines between) and the line
    each key is on."""
    entries = draw(st.dictionaries(_key, _value, max_size=6))
    lines: list[str] = []
    where: dict[str, int] = {}
    for key, value in entries.items():
        lines += draw(st.lists(st.sampled_from(["", "# comment", "   "]), max_size=2))
        spelled = key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_string(key)
        lines.append(f"{spelled} = {_toml_value(value)}")
        where[key] = len(lines)
    return "\n".join(lines) + "\n", where


@FUZZ
@given(toml_documents())
def test_any_toml_config_loads_or_names_file_line_and_key(workdir, doc):
    text, where = doc
    path = _write(workdir, text.encode("utf-8"), ".toml")
    try:
        eff = C.resolve({}, {}, C.load_config_file(path))
    except C.ConfigError as e:
        assert e.problems
        for problem in e.problems:
            _names_file_and_line(problem, path)
            line = int(problem[len(path) + 1:].split(":", 1)[0])
            keys = [key for key in where
                    if problem.startswith(f"{path}:{line}: unknown key {key!r}")
                    or problem.startswith(f"{path}:{line}: key {key!r}: ")]
            assert keys and any(where[key] == line for key in keys), (problem, where)
    else:
        assert set(eff.values) == set(_KNOWN)
        assert set(where) <= set(_KNOWN)


@FUZZ
@given(st.one_of(st.binary(max_size=200),
                 st.text(max_size=200).map(lambda t: t.encode("utf-8")),
                 toml_documents().map(lambda d: d[0].encode())
                 .flatmap(lambda b: st.binary(max_size=6).map(lambda junk: junk + b))))
def test_any_file_as_config_loads_or_names_file_and_line(workdir, data):
    path = _write(workdir, data, ".toml")
    try:
        C.resolve({}, {}, C.load_config_file(path))
    except C.ConfigError as e:
        assert e.problems
        for problem in e.problems:
            _names_file_and_line(problem, path)


_env_text = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["1", "0", "yes", "off", "-1", "1e3", "nan", "inf", " 4 ", "1_000", "0x10",
                     "1.1.1.1,,8.8.8.8", "[::1]:53", "news,GRP", "https://h.example/", "~"]),
)


@FUZZ
@given(st.dictionaries(st.sampled_from([s.env for s in C.RUN_SETTINGS] + ["PROBE_OTHER"]),
                       _env_text, max_size=6))
def test_any_environment_loads_or_names_the_variable(env):
    try:
        eff = C.resolve({}, env, None)
    except C.ConfigError as e:
        assert e.problems
        for problem in e.problems:
            _one_line(problem)
            var = problem.split(":", 1)[0]
            assert var.startswith("env PROBE_") and var[4:] in env, problem
    else:
        for name, source in eff.sources.items():
            assert source == "default" or source == f"env PROBE_{name.upper()}"


@settings(max_examples=25, deadline=None, database=None)
@given(st.one_of(st.binary(max_size=120), toml_documents().map(lambda d: d[0].encode())))
def test_config_show_never_crashes(workdir, data):
    path = _write(workdir, data, ".toml")
    res = CliRunner().invoke(app, ["config", "show", "--config", path])
    assert res.exit_code in (0, 2), res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    if res.exit_code == 2:
        for line in res.output.splitlines():
            assert line.startswith(f"probe: error: {path}:"), line
