"""Effective settings of `probe run`: command line > environment > config file > default.

Everything that decides where a run option may come from, how it is spelled there and what
values it accepts lives here. Rules for this module:

* Every `probe run` option is one :class:`Setting` in :data:`RUN_SETTINGS`: its name is the
  option's parameter name (``health_interval``), its config key is the same name, its
  environment variable is ``PROBE_`` + the name in upper case (``PROBE_HEALTH_INTERVAL``) and
  its command-line option is ``--`` + the name with dashes (``--health-interval``).
* :func:`resolve` is pure: given the command-line values actually passed, an environment
  mapping and a parsed :class:`ConfigFile`, it returns the :class:`Effective` settings and where
  each came from (``cli``, ``env PROBE_X``, ``config FILE``, ``default``).
* Every value from every source is validated, even when a higher source overrides it, so a
  bad config file or environment variable is always reported. Each problem is one line naming
  its origin: ``FILE:LINE: key 'concurrency': expected an integer ≥ 1, got 0`` or
  ``env PROBE_TIMEOUT: expected a number ≥ 0.1, got 'soon'``. They are raised together as one
  :class:`ConfigError` (a usage error: exit status 2).
* The config file is TOML with top-level keys only (``concurrency = 4``). Relative paths in it
  are relative to the file's directory; ``~`` is expanded everywhere. Lists may also be given
  as one string; in the environment they are comma-separated (``PROBE_RESOLVER=1.1.1.1,9.9.9.9``).
  An empty environment variable counts as unset.
* The config file is ``--config PATH``, else ``$PROBE_CONFIG``, else
  ``<user config dir>/config.toml``; only the last may be missing.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from probe.errors import UsageError

__all__ = [
    "CONFIG_ENV",
    "RUN_SETTINGS",
    "ConfigError",
    "ConfigFile",
    "Effective",
    "Setting",
    "cli_values",
    "default_config_path",
    "load",
    "load_config_file",
    "render",
    "resolve",
]

CONFIG_ENV = "PROBE_CONFIG"
#: Config files larger than this are refused (a config file is a few lines).
MAX_CONFIG_BYTES = 256 * 1024
_SECRET_MASK = "********"


class ConfigError(UsageError):
    """Raised when a config file, an environment variable or an option value is bad.

    ``problems`` holds every problem as one line naming its origin (``FILE:LINE: …``,
    ``env PROBE_X: …`` or ``--option: …``); ``str()`` is the first one.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__((problems[0] if problems else "bad configuration") + more)


class _Bad(ValueError):
    """A value's problem, without its origin (added by the caller)."""


# --- the settings --------------------------------------------------------------------------

#: Checks one item of a setting's value; returns a reason or None.
Check = Callable[[str], str | None]


@dataclass(frozen=True, slots=True)
class Setting:
    """One `probe run` option as it may appear on the command line, in the environment and in
    the config file.

    ``kind``: ``path``, ``str``, ``secret`` (a str never printed), ``strs`` (a list of str),
    ``int``, ``float`` or ``bool``. ``default``: the built-in value (None = not set).
    ``minimum``/``maximum``: bounds of a number; None = unbounded. ``check``: extra validation
    of each str (or each list item); None = any non-empty text.
    """

    name: str
    kind: str
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None
    check: Check | None = None

    @property
    def env(self) -> str:
        return "PROBE_" + self.name.upper()

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")

    def expected(self) -> str:
        """What a valid value looks like, for error messages."""
        lo, hi = self.minimum, self.maximum
        if self.kind in ("int", "float"):
            what = "expected an integer" if self.kind == "int" else "expected a number"
            if lo is not None and hi is not None:
                return f"{what} between {_num(lo)} and {_num(hi)}"
            if lo is not None:
                return f"{what} ≥ {_num(lo)}"
            return what
        return {
            "bool": "expected true or false",
            "path": "expected a file path",
            "strs": "expected a list of strings",
            "str": "expected a string",
            "secret": "expected a string",
        }[self.kind]


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _check_resolver(text: str) -> str | None:
    """``IP``, ``IP:PORT`` or ``[IPv6]:PORT`` (the syntax of ``--resolver``)."""
    host, port = text, "53"
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return f"{text!r} is not IP[:PORT]"
        port = rest[1:] or "53"
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return f"{text!r} is not an IP address"
    if not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        return f"{text!r}: bad port"
    return None


def _check_category(text: str) -> str | None:
    from probe.targets import CATEGORIES

    if text.strip().upper() not in CATEGORIES:
        return f"unknown category code {text!r}"
    return None


_URL = re.compile(r"https?://[^\s/?#]+[^\s]*\Z", re.IGNORECASE)


def _check_url(text: str) -> str | None:
    if not _URL.match(text):
        return f"{text!r} is not an http:// or https:// URL"
    return None


RUN_SETTINGS: tuple[Setting, ...] = (
    Setting("db", "path", None, "SQLite database (default: <user data dir>/probe.db)"),
    Setting("resolver", "strs", [], "extra UDP resolvers IP[:PORT]", check=_check_resolver),
    Setting("no_system_resolver", "bool", False, "do not use the system resolver"),
    Setting("ca_bundle", "path", None, "extra trust anchors (PEM)"),
    Setting("category", "strs", [], "only these category codes", check=_check_category),
    Setting("concurrency", "int", 8, "targets measured at once", minimum=1, maximum=1000),
    Setting("per_host", "int", 2, "most targets of one host, and connections to one IP, at once",
            minimum=1, maximum=64),
    Setting("rate", "float", 0.0, "most targets started per second (0 = no limit)",
            minimum=0.0),
    Setting("timeout", "float", 10.0, "deadline of each network step (s)", minimum=0.1),
    Setting("control", "strs", [], "control helper base URLs", check=_check_url),
    Setting("control_token", "secret", None, "control helper token"),
    Setting("canaries", "path", None, "canaries CSV (network health)"),
    Setting("health_interval", "float", 60.0, "seconds between health rounds", minimum=0.5),
    Setting("residual_cooldown", "float", 90.0,
            "seconds to wait before re-measuring targets failed by residual censorship "
            "(0 = never re-measure)", minimum=0.0),
    Setting("asn_db", "path", None, "iptoasn TSV for ASN comparisons"),
    Setting("app_lists", "path", None, "directory of endpoint lists replacing targets/apps"),
    Setting("quiet", "bool", False, "no progress output"),
    Setting("accept_risk", "bool", False, "accept the informed-consent notice (unattended use)"),
    Setting("no_bodies", "bool", False, "store body hashes and lengths only"),
    Setting("trace_blocked", "bool", False,
            "then locate the censor of every blocked target (root or CAP_NET_RAW)"),
)

_BY_NAME = {s.name: s for s in RUN_SETTINGS}


# --- converting one value -----------------------------------------------------------------

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _got(value: Any) -> str:
    text = ("true" if value else "false") if isinstance(value, bool) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _text(s: Setting, value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        raise _Bad(s.expected())
    return value


def _convert(s: Setting, value: Any, origin: str, base: Path | None = None) -> Any:
    """``value`` from ``origin`` (``cli``, ``env`` or ``config``) as the setting's type.

    Environment values are strings; config values are TOML values; command-line values are
    already typed by the option parser. ``base``: directory relative paths are relative to.
    Raises _Bad with the reason.
    """
    got = "" if s.kind == "secret" else f", got {_got(value)}"
    try:
        if s.kind == "bool":
            if isinstance(value, bool):
                return value
            if origin == "env" and isinstance(value, str):
                word = value.strip().lower()
                if word in _TRUE or word in _FALSE:
                    return word in _TRUE
            raise _Bad(s.expected())
        if s.kind in ("int", "float"):
            return _number(s, value, origin)
        if s.kind == "path":
            if isinstance(value, Path):
                value = str(value)
            path = _expand(_text(s, value))
            if base is not None and not path.is_absolute():
                path = base / path
            return path
        if s.kind == "strs":
            if isinstance(value, str):
                items = value.split(",") if origin == "env" else [value]
                items = [i.strip() for i in items if i.strip()]
            elif isinstance(value, list | tuple):
                items = [_text(s, i).strip() for i in value]
            else:
                raise _Bad(s.expected())
            for item in items:
                if "\x00" in item:
                    raise _Bad(s.expected())
                if s.check is not None and (reason := s.check(item)):
                    raise _Bad(reason)
            return items
        text = _text(s, value)
        if s.check is not None and (reason := s.check(text)):
            raise _Bad(reason)
        return text
    except _Bad as e:
        reason = str(e)
        raise _Bad(reason + got if reason == s.expected() else reason) from None


def _expand(text: str) -> Path:
    """``text`` as a path with ``~`` / ``~user`` expanded; _Bad when that user is unknown."""
    try:
        return Path(text).expanduser()
    except RuntimeError:  # "Could not determine home directory"
        raise _Bad(f"cannot expand {_got(text)}: no such user") from None


def _number(s: Setting, value: Any, origin: str) -> int | float:
    if isinstance(value, bool):
        raise _Bad(s.expected())
    number: int | float
    if origin == "env" and isinstance(value, str):
        text = value.strip()
        try:
            number = int(text) if s.kind == "int" else float(text)
        except ValueError:
            raise _Bad(s.expected()) from None
    elif s.kind == "int" and isinstance(value, int):
        number = value
    elif s.kind == "float" and isinstance(value, int | float):
        number = float(value)
    else:
        raise _Bad(s.expected())
    if isinstance(number, float) and not math.isfinite(number):
        raise _Bad(s.expected())
    if (s.minimum is not None and number < s.minimum) or (
        s.maximum is not None and number > s.maximum
    ):
        raise _Bad(s.expected())
    return number


# --- the config file ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConfigFile:
    """A parsed config file: its top-level ``values`` and the line each key is on."""

    path: str
    values: dict[str, Any] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)

    def line(self, key: str) -> int:
        return self.lines.get(key, 1)


_AT_LINE = re.compile(r"\s*\(at line (\d+), column \d+\)\s*$")
_AT_EOF = re.compile(r"\s*\(at end of document\)\s*$")


def parse_config_text(path: str, text: str) -> ConfigFile:
    """Parse TOML ``text`` read from ``path``; ConfigError ``FILE:LINE: …`` when it is bad."""
    lines = [line.rstrip("\r") for line in text.split("\n")]  # TOML's lines: not splitlines()
    if lines and not lines[-1]:
        lines.pop()
    try:
        values = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        message = str(e)
        line = 1
        if m := _AT_LINE.search(message):
            line, message = int(m.group(1)), message[: m.start()]
        elif m := _AT_EOF.search(message):
            line, message = max(len(lines), 1), message[: m.start()]
        message = " ".join(message.split()) or "syntax error"
        raise ConfigError([f"{path}:{line}: invalid TOML: {message}"]) from None
    return ConfigFile(path, values, {key: _key_line(lines, key) for key in values})


def load_config_file(path: str | os.PathLike[str]) -> ConfigFile:
    """Read and parse one config file; ConfigError (one line per problem) when it is bad."""
    p = os.fspath(path)
    try:
        with open(p, "rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise ConfigError([f"{p}: cannot read config file: {e.strerror or e}"]) from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError([f"{p}: config file larger than {MAX_CONFIG_BYTES // 1024} KiB"])
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ConfigError([f"{p}:{line}: not UTF-8 text (byte 0x{data[e.start]:02x})"]) from None
    return parse_config_text(p, text)


def _key_line(lines: list[str], key: str) -> int:
    """The line (1-based) a top-level key or table is defined on; 1 when it cannot be told."""
    quoted = "|".join(
        re.escape(form) for form in (key, f'"{key}"', f"'{key}'") if form
    )
    pattern = re.compile(rf"\s*(?:\[\[?\s*)?(?:{quoted})\s*[=.\]]")
    for i, line in enumerate(lines, 1):
        if pattern.match(line):
            return i
    # keys spelled with escapes: the first prefix of the file that defines the key
    if len(lines) <= 400:
        for n in range(1, len(lines) + 1):
            try:
                if key in tomllib.loads("\n".join(lines[:n])):
                    return n
            except tomllib.TOMLDecodeError:
                continue
    return 1


def default_config_path() -> Path:
    """``<user config dir>/config.toml`` (e.g. ``~/.config/probe/config.toml``)."""
    return Path(platformdirs.user_config_dir("probe")) / "config.toml"


# --- resolving ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Effective:
    """The effective settings: ``values[name]`` and where each came from (``sources[name]``:
    ``cli``, ``env PROBE_X``, ``config FILE`` or ``default``). ``config_path``: the config file
    read; None = none. ``config_origin``: how that file was chosen (``--config``,
    ``env PROBE_CONFIG``, ``default``)."""

    values: dict[str, Any]
    sources: dict[str, str]
    config_path: str | None = None
    config_origin: str = "default"

    def __getitem__(self, name: str) -> Any:
        return self.values[name]


def resolve(
    cli: Mapping[str, Any],
    env: Mapping[str, str],
    file: ConfigFile | None,
    settings: tuple[Setting, ...] = RUN_SETTINGS,
) -> Effective:
    """The effective settings from the command-line values actually passed (``cli``, by
    setting name), the environment and a parsed config file (None = none). Pure.

    Raises ConfigError listing every bad value of every source.
    """
    known = {s.name: s for s in settings}
    problems: list[str] = []
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    from_file: dict[str, Any] = {}
    if file is not None:
        base = Path(file.path).parent
        for key, raw in file.values.items():
            where = f"{file.path}:{file.line(key)}"
            setting = known.get(key)
            if setting is None:
                hint = difflib.get_close_matches(key, list(known), n=1)
                also = f" (did you mean '{hint[0]}'?)" if hint else ""
                problems.append(f"{where}: unknown key {key!r}{also}")
                continue
            try:
                from_file[key] = _convert(setting, raw, "config", base)
            except _Bad as e:
                problems.append(f"{where}: key {key!r}: {e}")
    for s in settings:
        value, source = s.default, "default"
        if s.name in from_file:
            value, source = from_file[s.name], f"config {file.path if file else ''}"
        raw_env = env.get(s.env)
        if raw_env is not None and raw_env != "":
            try:
                value, source = _convert(s, raw_env, "env"), f"env {s.env}"
            except _Bad as e:
                problems.append(f"env {s.env}: {e}")
        if s.name in cli and cli[s.name] is not None:
            try:
                value, source = _convert(s, cli[s.name], "cli"), "cli"
            except _Bad as e:
                problems.append(f"{s.option}: {e}")
        values[s.name], sources[s.name] = value, source
    if problems:
        raise ConfigError(problems)
    return Effective(values, sources, file.path if file else None)


def load(
    cli: Mapping[str, Any],
    config_path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    settings: tuple[Setting, ...] = RUN_SETTINGS,
) -> Effective:
    """:func:`resolve` with the config file read from disk: ``config_path`` (``--config``),
    else ``$PROBE_CONFIG``, else the default path (which may be missing)."""
    env = os.environ if env is None else env
    origin = "default"
    try:
        if config_path is not None:
            origin = "--config"
            path = _expand(os.fspath(config_path))
        elif env.get(CONFIG_ENV):
            origin = f"env {CONFIG_ENV}"
            path = _expand(env[CONFIG_ENV])
        else:
            path = default_config_path()
    except _Bad as e:
        raise ConfigError([f"{origin}: {e}"]) from None
    file: ConfigFile | None = None
    if origin != "default" and not path.is_file():
        where = "--config" if origin == "--config" else f"env {CONFIG_ENV}"
        raise ConfigError([f"{where}: {path}: no such config file"])
    if path.is_file():
        file = load_config_file(path)
    effective = resolve(cli, env, file, settings)
    return Effective(effective.values, effective.sources, effective.config_path, origin)


def cli_values(ctx: Any) -> dict[str, Any]:
    """The parameters of a click/typer context that were given on the command line.

    Compared by name: typer may bring its own copy of click's ``ParameterSource``."""
    return {
        name: value
        for name, value in ctx.params.items()
        if name in _BY_NAME
        and getattr(ctx.get_parameter_source(name), "name", None) == "COMMANDLINE"
    }


# --- showing ------------------------------------------------------------------------------


def _display(s: Setting, value: Any) -> Any:
    """A setting's value as shown by `probe config show` (JSON-able; secrets masked)."""
    if value is None:
        if s.name == "db":
            return str(Path(platformdirs.user_data_dir("probe")) / "probe.db")
        return None
    if s.kind == "secret":
        return _SECRET_MASK
    if isinstance(value, Path):
        return str(value)
    return value


def render(effective: Effective, fmt: str = "table",
           settings: tuple[Setting, ...] = RUN_SETTINGS) -> str:
    """Every effective setting and its source, as a ``table`` or ``json``."""
    shown = {s.name: _display(s, effective.values.get(s.name)) for s in settings}
    if fmt == "json":
        return json.dumps(
            {
                "config_file": effective.config_path,
                "config_origin": effective.config_origin,
                "settings": {
                    name: {"value": value, "source": effective.sources.get(name, "default"),
                           "env": _BY_NAME[name].env if name in _BY_NAME else None}
                    for name, value in shown.items()
                },
            },
            indent=2,
            ensure_ascii=False,
        ) + "\n"

    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, list):
            return ",".join(value) if value else "-"
        return str(value)

    rows = [(name, cell(value), effective.sources.get(name, "default"))
            for name, value in shown.items()]
    widths = [max(len(r[i]) for r in [("setting", "value", "source"), *rows]) for i in range(2)]
    lines = [f"{'setting':<{widths[0]}}  {'value':<{widths[1]}}  source"]
    lines += [f"{n:<{widths[0]}}  {v:<{widths[1]}}  {src}" for n, v, src in rows]
    file_line = (f"config file: {effective.config_path} ({effective.config_origin})"
                 if effective.config_path else f"config file: none (looked for "
                 f"{default_config_path() if effective.config_origin == 'default' else '?'})")
    return "\n".join([file_line, *lines]) + "\n"
