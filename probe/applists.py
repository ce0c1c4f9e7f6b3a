"""Endpoint lists: read and validate the data files that say which endpoints an app uses.

Responsibility: one TOML file per app or service list (``targets/apps/whatsapp.toml``,
``targets/apps/vpn.toml``; docs/kinds.md "Endpoint lists") into a frozen :class:`AppList` of
:class:`AppEndpoint` records, each with its provenance (``source``, ``date``). Apps change
their infrastructure, so the lists are data the user can replace (``probe run --app-lists
DIR``), never code. A bad file is reported as ``FILE:LINE: reason`` lines, like target lists
(:mod:`probe.targets`), and nothing of it is used.

Format::

    app = "whatsapp"                 # the test name (whatsapp, telegram, signal,
                                     # facebook_messenger) or "endpoint" for a service list
    ca_file = "signal-ca.pem"        # optional: the app's own root, relative to the file
    asns = [32934]                   # optional: the operator's AS numbers (DNS consistency)

    [[endpoints]]
    role = "chat"                    # what the app uses it for; the verdict names roles
    host = "e1.whatsapp.net"         # a name or an IP address
    ports = [443, 5222]              # or port = 443
    protocol = "tcp"                 # tcp | tls | https | http_post | udp
    path = "/"                       # https/http_post only (default "/")
    payload_hex = "..."              # udp only: the request datagram (default: empty)
    source = "OONI spec ts-018"      # where the entry comes from
    date = "2026-12-07"              # when it was taken from there (YYYY-MM-DD)

Each ``(role, host, port)`` becomes one :class:`AppEndpoint`. The pieces every list format
shares — :class:`BadAppList` with its ``FILE:LINE`` problems, :func:`read_list` (TOML with the
line of a syntax error), :func:`entry_lines`, :func:`provenance` (``source``/``date``),
:func:`list_path` — are used by the Tor list reader too (:mod:`probe.measure.torlist`, OONI's
own target format), and :func:`declared_ports`/:func:`validate_app_list` take the other
formats' readers by ``app`` name. Kernel module: standard library and :mod:`probe.errors` only.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from probe.errors import ProbeError

#: The protocols an endpoint may be measured with.
PROTOCOLS: tuple[str, ...] = ("tcp", "tls", "https", "http_post", "udp")
#: The names a list's ``app`` may take (the test names of :data:`probe.model.APP_TESTS`).
APPS: tuple[str, ...] = ("whatsapp", "telegram", "signal", "facebook_messenger", "endpoint")
#: The packaged lists: ``targets/apps`` of the source tree (None when not shipped).
DEFAULT_DIR = Path(__file__).resolve().parent.parent / "targets" / "apps"

_ROLE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,39}$")
_HOST = re.compile(r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)*"
                   r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.?$")
_KEYS = {"role", "host", "port", "ports", "protocol", "path", "payload_hex", "source", "date"}
_TOP = {"app", "ca_file", "asns", "endpoints", "notes"}


class BadAppList(ProbeError, ValueError):
    """An endpoint list that cannot be used; ``problems`` are ``FILE:LINE: reason`` lines."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(problems[0] if len(problems) == 1
                         else f"{problems[0]} (and {len(problems) - 1} more problems)")
        self.problems = problems


@dataclass(frozen=True, slots=True)
class AppEndpoint:
    """One endpoint of an app: ``host:port`` measured with ``protocol`` for ``role``.

    ``origin`` is ``FILE:LINE`` of its ``[[endpoints]]`` entry; ``source``/``date`` its
    provenance. ``payload`` is the UDP request (empty for other protocols).
    """

    role: str
    host: str
    port: int
    protocol: str
    source: str
    date: str
    origin: str
    path: str = "/"
    payload: bytes = b""

    @property
    def url(self) -> str:
        """The endpoint as an input URL: ``https://host[:port]/path`` for https,
        ``http://host:port/path`` for http_post, ``PROTOCOL://host:port`` otherwise."""
        shown = f"[{self.host}]" if ":" in self.host else self.host
        if self.protocol == "https":
            return f"https://{shown}{'' if self.port == 443 else f':{self.port}'}{self.path}"
        if self.protocol == "http_post":
            return f"http://{shown}{'' if self.port == 80 else f':{self.port}'}{self.path}"
        return f"{self.protocol}://{shown}:{self.port}"

    @property
    def label(self) -> str:
        """``role host:port/protocol``: how verdicts and reports name it."""
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.role} {shown}:{self.port}/{self.protocol}"


@dataclass(frozen=True, slots=True)
class AppList:
    """A validated endpoint list. ``name`` is the file's stem (``whatsapp``, ``vpn``);
    ``ca_file`` the absolute path of the app's own root (None = the run's trust anchors);
    ``asns`` the operator's AS numbers (empty = no AS check)."""

    app: str
    name: str
    path: str
    endpoints: tuple[AppEndpoint, ...]
    ca_file: str | None = None
    asns: tuple[int, ...] = ()

    @property
    def ports(self) -> tuple[int, ...]:
        return tuple(sorted({e.port for e in self.endpoints}))


#: Another list format (``tor``): a reader from the file to the ports its entries declare,
#: raising :class:`BadAppList` (or a subclass) when the file does not validate.
PortReader = Callable[[Path], Iterable[int]]


def entry_lines(text: str, table: str = "endpoints") -> list[int]:
    """The line number of each ``[[TABLE]]`` header, in order."""
    header = f"[[{table}]]"
    return [i for i, line in enumerate(text.splitlines(), 1)
            if line.strip().replace(" ", "").startswith(header)]


def read_list(path: str | os.PathLike[str],
              error: type[BadAppList] = BadAppList) -> tuple[str, dict[str, Any]]:
    """A list file's text and its TOML document; ``error`` with ``FILE:LINE: reason`` when
    it cannot be read or is not TOML (the line of the syntax error)."""
    shown = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise error([f"{shown}:0: cannot read ({e.__class__.__name__})"]) from None
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"line (\d+)", str(e))
        raise error([f"{shown}:{m.group(1) if m else 0}: not TOML ({e})"]) from None


def provenance(raw: Mapping[str, Any], where: str,
               problems: list[str]) -> tuple[str, str] | None:
    """An entry's ``(source, date)``: where it comes from and when it was taken (YYYY-MM-DD);
    None after appending ``WHERE: reason`` to ``problems`` when either is missing or bad."""
    before = len(problems)
    source = raw.get("source")
    if not isinstance(source, str) or not source.strip():
        problems.append(f"{where}: 'source' (where the entry comes from) is required")
    date = raw.get("date")
    if isinstance(date, dt.date):
        date = date.isoformat()
    try:
        dt.date.fromisoformat(str(date))
    except ValueError:
        problems.append(f"{where}: 'date' must be YYYY-MM-DD (when the entry was taken)")
    if len(problems) > before:
        return None
    assert isinstance(source, str)
    return source.strip(), str(date)


def _host(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    v = value.strip().lower().rstrip(".")
    try:
        return str(ipaddress.ip_address(v.strip("[]")))
    except ValueError:
        pass
    try:
        v = v.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    return v if _HOST.match(v) else None


def _entry(raw: Any, where: str, problems: list[str]) -> list[AppEndpoint]:
    if not isinstance(raw, dict):
        problems.append(f"{where}: an [[endpoints]] entry must be a table")
        return []
    bad = sorted(set(raw) - _KEYS)
    if bad:
        problems.append(f"{where}: unknown key {bad[0]!r}")
    role = raw.get("role")
    if not isinstance(role, str) or not _ROLE.match(role):
        problems.append(f"{where}: 'role' must be a short lower-case name")
    host = _host(raw.get("host"))
    if host is None:
        problems.append(f"{where}: 'host' must be a hostname or an IP address")
    protocol = raw.get("protocol", "tcp")
    if protocol not in PROTOCOLS:
        problems.append(f"{where}: 'protocol' must be one of {', '.join(PROTOCOLS)}")
    ports = raw.get("ports", [raw["port"]] if "port" in raw else [])
    if "port" in raw and "ports" in raw:
        problems.append(f"{where}: give 'port' or 'ports', not both")
    if (not isinstance(ports, list) or not ports or not all(
            isinstance(p, int) and not isinstance(p, bool) and 0 < p < 65536 for p in ports)):
        problems.append(f"{where}: 'port'/'ports' must be port numbers 1-65535")
        ports = []
    path = raw.get("path", "/")
    if not isinstance(path, str) or not path.startswith("/") or any(
            c.isspace() or c in "#" for c in path):
        problems.append(f"{where}: 'path' must start with / and hold no spaces")
    elif path != "/" and protocol not in ("https", "http_post"):
        problems.append(f"{where}: 'path' only applies to https and http_post")
    payload = b""
    if "payload_hex" in raw:
        if protocol != "udp":
            problems.append(f"{where}: 'payload_hex' only applies to udp")
        try:
            payload = bytes.fromhex(str(raw["payload_hex"]))
        except ValueError:
            problems.append(f"{where}: 'payload_hex' is not hexadecimal")
        if len(payload) > 1200:
            problems.append(f"{where}: 'payload_hex' longer than 1200 bytes")
    origin = provenance(raw, where, problems)
    if origin is None or (problems and problems[-1].startswith(where)):
        return []
    assert isinstance(role, str) and host is not None
    return [AppEndpoint(role, host, p, str(protocol), origin[0], origin[1], where,
                        str(path), payload) for p in ports]


def load_app_list(path: str | os.PathLike[str]) -> AppList:
    """Read and validate one endpoint list; :class:`BadAppList` lists every problem."""
    p = Path(path)
    shown = str(path)
    text, doc = read_list(p)
    problems: list[str] = []
    bad = sorted(set(doc) - _TOP)
    if bad:
        problems.append(f"{shown}:1: unknown key {bad[0]!r}")
    app = doc.get("app")
    if app not in APPS:
        problems.append(f"{shown}:1: 'app' must be one of {', '.join(APPS)}")
    ca_file = None
    if "ca_file" in doc:
        ca = p.parent / str(doc["ca_file"])
        if not ca.is_file():
            problems.append(f"{shown}:1: 'ca_file' {doc['ca_file']!r} does not exist")
        ca_file = str(ca.resolve())
    asns = doc.get("asns", [])
    if not isinstance(asns, list) or not all(
            isinstance(a, int) and not isinstance(a, bool) and 0 < a < 2**32 for a in asns):
        problems.append(f"{shown}:1: 'asns' must be a list of AS numbers")
        asns = []
    raw = doc.get("endpoints", [])
    lines = entry_lines(text)
    endpoints: list[AppEndpoint] = []
    if not isinstance(raw, list) or not raw:
        problems.append(f"{shown}:1: no [[endpoints]]")
        raw = []
    for i, entry in enumerate(raw):
        endpoints += _entry(entry, f"{shown}:{lines[i] if i < len(lines) else 0}", problems)
    seen: dict[tuple[str, str, int, str], str] = {}
    for ep in endpoints:
        key = (ep.role, ep.host, ep.port, ep.protocol)
        if key in seen:
            problems.append(f"{ep.origin}: duplicate of the entry at {seen[key]}")
        seen.setdefault(key, ep.origin)
    if problems:
        raise BadAppList(problems)
    return AppList(str(app), p.stem, shown, tuple(endpoints), ca_file, tuple(asns))


def _app_of(path: Path) -> str | None:
    """The ``app`` a list file names (None when it cannot be read as TOML)."""
    try:
        app = read_list(path)[1].get("app")
    except BadAppList:
        return None
    return app if isinstance(app, str) else None


def validate_app_list(path: str | os.PathLike[str],
                      others: Mapping[str, PortReader] | None = None) -> list[str]:
    """Every problem of one list as ``FILE:LINE: reason``; empty = valid. A list whose
    ``app`` names one of ``others`` (``tor``: :data:`probe.measure.torlist.FORMATS`) is
    validated by that format's reader."""
    reader = (others or {}).get(_app_of(Path(path)) or "")
    try:
        if reader is not None:
            reader(Path(path))
        else:
            load_app_list(path)
    except BadAppList as e:
        return e.problems
    return []


def list_path(name: str, directory: str | os.PathLike[str] | None = None) -> Path:
    """Where the list ``name`` lives: ``DIRECTORY/NAME.toml``, else the packaged one."""
    if directory is not None:
        mine = Path(directory) / f"{name}.toml"
        if mine.is_file():
            return mine
    return DEFAULT_DIR / f"{name}.toml"


def find_app_list(name: str, directory: str | os.PathLike[str] | None = None) -> AppList:
    """Load the list ``name`` (``whatsapp``, ``vpn``) from ``directory`` (the user's
    replacement lists), falling back to the packaged ``targets/apps``."""
    if not _ROLE.match(name):
        raise BadAppList([f"{name}:0: not a list name"])
    path = list_path(name, directory)
    if not path.is_file():
        raise BadAppList([f"{path}:0: no such endpoint list"])
    return load_app_list(path)


def declared_ports(directory: str | os.PathLike[str] | None = None,
                   others: Mapping[str, PortReader] | None = None) -> frozenset[int]:
    """Every port the lists of ``directory`` (default: the packaged ``targets/apps``) declare:
    the control helper allows exactly these besides its own (``probe helper serve``). The
    endpoint lists are read here; a list whose ``app`` names one of ``others`` (``tor``:
    :data:`probe.measure.torlist.FORMATS`) by that format's reader. A list that does not
    validate declares nothing."""
    where = Path(directory) if directory is not None else DEFAULT_DIR
    ports: set[int] = set()
    for path in sorted(where.glob("*.toml")) if where.is_dir() else ():
        reader = (others or {}).get(_app_of(path) or "")
        try:
            ports.update(reader(path) if reader is not None else load_app_list(path).ports)
        except BadAppList:
            continue
    return frozenset(ports)
