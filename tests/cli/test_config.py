"""Configuration: precedence, sources, one-line errors naming FILE:LINE or the variable, and the
`probe config show` / `probe run` wiring."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from probe.cli import config as C
from probe.cli.root import app
from tests.clirunner import CliRunner


def _file(tmp_path: Path, text: str, name: str = "config.toml") -> C.ConfigFile:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return C.load_config_file(path)


def _problems(fn) -> list[str]:
    with pytest.raises(C.ConfigError) as info:
        fn()
    return info.value.problems


# --- resolve (pure) --------------------------------------------------------------------------


def test_defaults_when_nothing_is_set():
    eff = C.resolve({}, {}, None)
    assert eff["concurrency"] == 8 and eff["timeout"] == 10.0 and eff["resolver"] == []
    assert eff["accept_risk"] is False and eff["db"] is None
    assert set(eff.sources.values()) == {"default"}
    assert set(eff.values) == {s.name for s in C.RUN_SETTINGS}


def test_precedence_cli_over_env_over_config_over_default(tmp_path):
    f = _file(tmp_path, "concurrency = 2\ntimeout = 3\nquiet = true\nhealth_interval = 5\n")
    env = {"PROBE_CONCURRENCY": "4", "PROBE_TIMEOUT": "6.5"}
    eff = C.resolve({"concurrency": 16}, env, f)
    assert eff["concurrency"] == 16 and eff.sources["concurrency"] == "cli"
    assert eff["timeout"] == 6.5 and eff.sources["timeout"] == "env PROBE_TIMEOUT"
    assert eff["quiet"] is True and eff.sources["quiet"] == f"config {f.path}"
    assert eff["health_interval"] == 5.0 and isinstance(eff["health_interval"], float)
    assert eff["control"] == [] and eff.sources["control"] == "default"


def test_cli_none_means_not_given():
    eff = C.resolve({"db": None, "resolver": None}, {"PROBE_DB": "/x.db"}, None)
    assert eff["db"] == Path("/x.db") and eff.sources["db"] == "env PROBE_DB"
    assert eff.sources["resolver"] == "default"


def test_lists_from_env_are_comma_separated_and_from_config_lists_or_strings(tmp_path):
    env = {"PROBE_RESOLVER": " 1.1.1.1, [2001:db8::1]:53 ,,9.9.9.9:5353",
           "PROBE_CATEGORY": "news,GRP"}
    eff = C.resolve({}, env, _file(tmp_path, 'control = "https://helper.example/"\n'))
    assert eff["resolver"] == ["1.1.1.1", "[2001:db8::1]:53", "9.9.9.9:5353"]
    assert eff["category"] == ["news", "GRP"]
    assert eff["control"] == ["https://helper.example/"]


@pytest.mark.parametrize(("word", "value"), [("1", True), ("YES", True), ("on", True),
                                             ("true", True), ("0", False), ("No", False),
                                             ("off", False), ("false", False)])
def test_env_booleans(word, value):
    assert C.resolve({}, {"PROBE_ACCEPT_RISK": word}, None)["accept_risk"] is value


def test_empty_env_counts_as_unset():
    eff = C.resolve({}, {"PROBE_CONCURRENCY": "", "PROBE_QUIET": ""}, None)
    assert eff.sources["concurrency"] == "default" and eff.sources["quiet"] == "default"


def test_paths_in_config_are_relative_to_its_directory_and_expand_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    sub = tmp_path / "etc"
    sub.mkdir()
    f = _file(sub, 'db = "data/p.db"\nca_bundle = "~/ca.pem"\nasn_db = "/abs/asn.tsv"\n')
    eff = C.resolve({}, {"PROBE_CANARIES": "rel.csv"}, f)
    assert eff["db"] == sub / "data" / "p.db"
    assert eff["ca_bundle"] == tmp_path / "home" / "ca.pem"
    assert eff["asn_db"] == Path("/abs/asn.tsv")
    assert eff["canaries"] == Path("rel.csv")  # the environment: relative to the cwd


def test_config_errors_name_file_line_and_key(tmp_path):
    f = _file(tmp_path, "# probe\nquiet = true\n\nconcurrency = 0\ntimeout = 'soon'\n"
                        "resolver = ['1.1.1.1', 'dns.example']\nconcurency = 3\n[extra]\nx = 1\n")
    problems = _problems(lambda: C.resolve({}, {}, f))
    path = f.path
    assert problems == [
        f"{path}:4: key 'concurrency': expected an integer between 1 and 1000, got 0",
        f"{path}:5: key 'timeout': expected a number ≥ 0.1, got 'soon'",
        f"{path}:6: key 'resolver': 'dns.example' is not an IP address",
        f"{path}:7: unknown key 'concurency' (did you mean 'concurrency'?)",
        f"{path}:8: unknown key 'extra'",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("concurrency = true\n",
         "key 'concurrency': expected an integer between 1 and 1000, got true"),
        ("timeout = nan\n", "key 'timeout': expected a number ≥ 0.1, got nan"),
        ("quiet = 'yes'\n", "key 'quiet': expected true or false, got 'yes'"),
        ("db = ''\n", "key 'db': expected a file path, got ''"),
        ("db = 3\n", "key 'db': expected a file path, got 3"),
        ("category = ['NEWS', 'NOPE']\n", "key 'category': unknown category code 'NOPE'"),
        ("control = ['ftp://x']\n", "key 'control': 'ftp://x' is not an http:// or https:// URL"),
        ("resolver = ['1.1.1.1:99999']\n", "key 'resolver': '1.1.1.1:99999': bad port"),
        ("control_token = 5\n", "key 'control_token': expected a string"),
    ],
)
def test_config_value_errors(tmp_path, text, message):
    f = _file(tmp_path, text)
    assert _problems(lambda: C.resolve({}, {}, f)) == [f"{f.path}:1: {message}"]


def test_secrets_are_never_echoed(tmp_path):
    (problem,) = _problems(lambda: C.resolve({}, {}, _file(tmp_path, "control_token = 12345\n")))
    assert "12345" not in problem


@pytest.mark.parametrize(
    ("text", "line", "start"),
    [
        ("quiet = true\nconcurrency = \n", 2, "invalid TOML: Invalid value"),
        ("a = 1\na = 2\n", 2, "invalid TOML: Cannot overwrite a value"),
        ('x = "\x01"\n', 1, "invalid TOML: Illegal character"),
        ("x = [1,\n2,\n", 2, "invalid TOML"),
    ],
)
def test_syntax_errors_name_the_line(tmp_path, text, line, start):
    path = tmp_path / "c.toml"
    path.write_text(text)
    (problem,) = _problems(lambda: C.load_config_file(path))
    assert problem.startswith(f"{path}:{line}: {start}")
    assert "\n" not in problem and "(at line" not in problem


def test_non_utf8_config_names_the_line(tmp_path):
    path = tmp_path / "c.toml"
    path.write_bytes(b"quiet = true\nx = '\xff'\n")
    assert _problems(lambda: C.load_config_file(path)) == [
        f"{path}:2: not UTF-8 text (byte 0xff)"]


def test_quoted_and_escaped_keys_still_get_their_line(tmp_path):
    f = _file(tmp_path, '\n\n"bo\\u0067us" = 1\n')
    assert _problems(lambda: C.resolve({}, {}, f)) == [f"{f.path}:3: unknown key 'bogus'"]


def test_env_errors_name_the_variable():
    env = {"PROBE_CONCURRENCY": "many", "PROBE_NO_BODIES": "perhaps",
           "PROBE_CONTROL": "http://ok.example/,nope"}
    assert _problems(lambda: C.resolve({}, env, None)) == [
        "env PROBE_CONCURRENCY: expected an integer between 1 and 1000, got 'many'",
        "env PROBE_CONTROL: 'nope' is not an http:// or https:// URL",
        "env PROBE_NO_BODIES: expected true or false, got 'perhaps'",
    ]


def test_bad_values_are_reported_even_when_overridden(tmp_path):
    f = _file(tmp_path, "concurrency = -1\n")
    problems = _problems(lambda: C.resolve({"concurrency": 3}, {"PROBE_CONCURRENCY": "x"}, f))
    assert len(problems) == 2


def test_unknown_probe_variables_are_ignored():
    C.resolve({}, {"PROBE_SIM_PROBE_PATH": "/x", "PROBE_WHATEVER": "?"}, None)


# --- load: which file -------------------------------------------------------------------------


def test_load_uses_the_default_path_when_present(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert C.default_config_path() == tmp_path / "probe" / "config.toml"
    eff = C.load({}, env={})
    assert eff.config_path is None and eff.config_origin == "default"
    (tmp_path / "probe").mkdir()
    (tmp_path / "probe" / "config.toml").write_text("concurrency = 3\n")
    eff = C.load({}, env={})
    assert eff["concurrency"] == 3 and eff.config_path == str(C.default_config_path())


def test_load_prefers_option_then_env(tmp_path):
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    a.write_text("concurrency = 1\n")
    b.write_text("concurrency = 2\n")
    assert C.load({}, a, env={C.CONFIG_ENV: str(b)})["concurrency"] == 1
    eff = C.load({}, env={C.CONFIG_ENV: str(b)})
    assert eff["concurrency"] == 2 and eff.config_origin == "env PROBE_CONFIG"


def test_a_named_config_file_must_exist(tmp_path):
    missing = tmp_path / "nope.toml"
    assert _problems(lambda: C.load({}, missing, env={})) == [
        f"--config: {missing}: no such config file"]
    assert _problems(lambda: C.load({}, env={C.CONFIG_ENV: str(missing)})) == [
        f"env PROBE_CONFIG: {missing}: no such config file"]


def test_huge_config_files_are_refused(tmp_path):
    path = tmp_path / "big.toml"
    path.write_text("# x\n" * (C.MAX_CONFIG_BYTES // 4 + 1))
    (problem,) = _problems(lambda: C.load_config_file(path))
    assert problem.startswith(f"{path}: config file larger than")


# --- the command line -----------------------------------------------------------------------


def test_config_show_table_and_json(tmp_path, monkeypatch):
    cfg = tmp_path / "c.toml"
    cfg.write_text("concurrency = 3\ncontrol_token = 'hunter2'\n")
    monkeypatch.setenv("PROBE_TIMEOUT", "2.5")
    res = CliRunner().invoke(app, ["config", "show", "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    lines = {line.split()[0]: line for line in res.stdout.splitlines()[2:]}
    assert lines["concurrency"].split()[1:] == ["3", "config", str(cfg)]
    assert lines["timeout"].split()[1:] == ["2.5", "env", "PROBE_TIMEOUT"]
    assert lines["quiet"].split()[1:] == ["false", "default"]
    assert "hunter2" not in res.stdout
    res = CliRunner().invoke(app, ["config", "show", "--config", str(cfg), "--format", "json"])
    data = json.loads(res.stdout)
    assert data["config_file"] == str(cfg) and data["config_origin"] == "--config"
    assert data["settings"]["concurrency"] == {"value": 3, "source": f"config {cfg}",
                                               "env": "PROBE_CONCURRENCY"}
    assert data["settings"]["accept_risk"]["value"] is True  # the test suite's PROBE_ACCEPT_RISK
    assert data["settings"]["control_token"]["value"] == "********"


def test_config_show_reports_every_problem_and_exits_2(tmp_path, monkeypatch):
    cfg = tmp_path / "c.toml"
    cfg.write_text("concurrency = 0\nbogus = 1\n")
    monkeypatch.setenv("PROBE_TIMEOUT", "x")
    res = CliRunner().invoke(app, ["config", "show", "--config", str(cfg)])
    assert res.exit_code == 2
    assert f"{cfg}:1: key 'concurrency'" in res.output and f"{cfg}:2: unknown key" in res.output
    assert "env PROBE_TIMEOUT: expected a number" in res.output
    assert "Traceback" not in res.output


def _settings_of_last_run(db: Path) -> dict:
    con = sqlite3.connect(db)
    try:
        return json.loads(con.execute("select settings from runs").fetchone()[0])
    finally:
        con.close()


def test_run_takes_unset_options_from_env_and_config(tmp_path, monkeypatch):
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        'db = "from-config.db"\nconcurrency = 3\ntimeout = 0.5\nno_system_resolver = true\n'
        'resolver = ["127.0.0.1:9"]\nno_bodies = true\nquiet = true\n'
    )
    monkeypatch.setenv("PROBE_CONCURRENCY", "5")
    res = CliRunner().invoke(app, ["run", "https://nothing.invalid/", "--config", str(cfg),
                                   "--timeout", "0.7"])
    assert res.exit_code == 0, res.output
    settings = _settings_of_last_run(tmp_path / "from-config.db")
    assert settings["concurrency"] == 5  # env over config
    assert settings["connect_timeout"] == 0.7  # command line over config
    assert settings["use_system_resolver"] is False and settings["resolvers"] == ["127.0.0.1:9"]
    assert settings["store_bodies"] is False
    assert "measuring" not in res.output  # quiet from the config


def test_run_with_a_bad_config_exits_2_before_measuring(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('db = "x.db"\ntimeout = -1\n')
    res = CliRunner().invoke(app, ["run", "https://nothing.invalid/", "--config", str(cfg)])
    assert res.exit_code == 2
    assert res.output.strip() == (
        f"probe: error: {cfg}:2: key 'timeout': expected a number ≥ 0.1, got -1")
    assert not (tmp_path / "x.db").exists()


def test_run_with_a_bad_env_value_exits_2(tmp_path, monkeypatch):
    monkeypatch.setenv("PROBE_RESOLVER", "not-an-ip")
    res = CliRunner().invoke(app, ["run", "https://nothing.invalid/", "--db",
                                   str(tmp_path / "x.db")])
    assert res.exit_code == 2
    assert "env PROBE_RESOLVER: 'not-an-ip' is not an IP address" in res.output


def test_lines_are_counted_as_toml_does(tmp_path):
    # U+0085 and U+2028 end lines for str.splitlines(), not for TOML
    f = _file(tmp_path, 'quiet = {"\x85" = []}\nx = "\u2028"\nresolver = {}\n')
    problems = _problems(lambda: C.resolve({}, {}, f))
    assert problems[-1].startswith(f"{f.path}:3: key 'resolver'")


def test_an_unknown_home_directory_is_an_error_not_a_crash(tmp_path):
    assert _problems(lambda: C.resolve({}, {"PROBE_DB": "~no-such-user-x/p.db"}, None)) == [
        "env PROBE_DB: cannot expand '~no-such-user-x/p.db': no such user"]
    assert _problems(lambda: C.load({}, "~no-such-user-x/c.toml", env={})) == [
        "--config: cannot expand '~no-such-user-x/c.toml': no such user"]
