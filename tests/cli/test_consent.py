"""Informed consent: shown once at a terminal, recorded; unattended use needs --accept-risk."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from probe.cli import consent
from probe.cli.root import app
from tests.clirunner import CliRunner


@pytest.fixture()
def fresh(tmp_path, monkeypatch) -> Path:
    """No consent anywhere: an empty user config dir and no PROBE_ACCEPT_RISK."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("PROBE_ACCEPT_RISK", raising=False)
    return tmp_path / "config" / "probe" / "consent"


def test_the_notice_says_what_matters():
    text = consent.NOTICE.lower()
    for words in ("what it does", "stores", "sqlite", "ip address is never stored",
                  "illegal", "risk", "--no-bodies"):
        assert words in text


def test_the_flag_is_enough_and_writes_nothing(fresh):
    assert consent.ensure_consent(True, interactive=False) == "flag"
    assert not fresh.exists()


def test_unattended_use_without_consent_is_refused_in_one_line(fresh):
    with pytest.raises(consent.ConsentError) as info:
        consent.ensure_consent(False, interactive=False)
    message = str(info.value)
    assert "\n" not in message and "--accept-risk" in message and "accept_risk" in message


def test_accepting_at_a_terminal_is_recorded_once(fresh):
    out = io.StringIO()
    asked: list[str] = []

    def ask(prompt: str) -> str:
        asked.append(prompt)
        return "yes\n"

    how = consent.ensure_consent(False, interactive=True, out=out, ask=ask)
    assert how == "accepted" and len(asked) == 1
    assert consent.NOTICE in out.getvalue() and str(fresh) in out.getvalue()
    assert consent.consent_path() == fresh and consent.has_consented()
    # later, even unattended: nobody is asked again
    assert consent.ensure_consent(False, interactive=False) == "recorded"
    assert consent.ensure_consent(False, interactive=True,
                                  ask=lambda p: pytest.fail("asked twice")) == "recorded"


@pytest.mark.parametrize("answer", ["no\n", "\n", "maybe"])
def test_anything_but_yes_declines(fresh, answer):
    with pytest.raises(consent.ConsentError, match="declined"):
        consent.ensure_consent(False, interactive=True, out=io.StringIO(),
                               ask=lambda prompt: answer)
    assert not fresh.exists()


@pytest.mark.parametrize("error", [EOFError, KeyboardInterrupt])
def test_end_of_input_or_ctrl_c_declines(fresh, error):
    def ask(prompt: str) -> str:
        raise error

    with pytest.raises(consent.ConsentError):
        consent.ensure_consent(False, interactive=True, out=io.StringIO(), ask=ask)


def test_a_new_notice_version_asks_again(fresh):
    fresh.parent.mkdir(parents=True)
    fresh.write_text(f"notice_version = {consent.NOTICE_VERSION - 1}\naccepted_at = x\n")
    assert not consent.has_consented()
    fresh.write_text("garbage \xff")
    assert not consent.has_consented()


def test_an_unwritable_consent_file_only_warns(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    out = io.StringIO()
    how = consent.ensure_consent(False, path=blocker / "consent", interactive=True, out=out,
                                 ask=lambda prompt: "y")
    assert how == "accepted" and "could not record consent" in out.getvalue()


# --- the command line -------------------------------------------------------------------------


def _run(args: list[str], db: Path) -> list[str]:
    return ["run", "https://nothing.invalid/", "--db", str(db), "--timeout", "0.5",
            "--no-system-resolver", "--resolver", "127.0.0.1:9", "--quiet", *args]


def test_run_without_consent_exits_2_and_measures_nothing(fresh, tmp_path):
    db = tmp_path / "p.db"
    res = CliRunner().invoke(app, _run([], db))
    assert res.exit_code == 2
    assert res.output.count("\n") == 1 and "--accept-risk" in res.output
    assert not db.exists()


@pytest.mark.parametrize(
    ("args", "env", "config"),
    [
        (["--accept-risk"], {}, None),
        ([], {"PROBE_ACCEPT_RISK": "1"}, None),
        ([], {}, "accept_risk = true\n"),
        (["--accept-risk"], {"PROBE_ACCEPT_RISK": "0"}, "accept_risk = false\n"),
    ],
)
def test_run_with_consent_from_flag_env_or_config(fresh, tmp_path, monkeypatch, args, env,
                                                  config):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if config is not None:
        (tmp_path / "c.toml").write_text(config)
        args = [*args, "--config", str(tmp_path / "c.toml")]
    res = CliRunner().invoke(app, _run(args, tmp_path / "p.db"))
    assert res.exit_code == 0, res.output
    assert (tmp_path / "p.db").exists() and not fresh.exists()


def test_probe_run_with_no_terminal_never_waits(fresh, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PROBE_ACCEPT_RISK"}
    proc = subprocess.run(
        [sys.executable, "-m", "probe", *_run([], tmp_path / "p.db")],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, env=env,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("probe: error: consent needed") and "Traceback" not in proc.stderr
