"""Tor target lists: read and validate the files naming the authorities and bridges to test.

Responsibility: one TOML file per list (``targets/apps/tor.toml``; docs/kinds.md "tor") into a
frozen :class:`TorList` of :class:`TorTarget` records, each with its provenance (``source``,
``date``). The Tor network's authorities change rarely and bridges often, and a volunteer may
hold private bridges: the lists are data the user can replace (a file of the same name in the
run's list directory), never code. A bad file is reported as ``FILE:LINE: reason`` lines, like
target lists, and nothing of it is used.

Format (protocols are OONI's, spec ts-023-tor)::

    app = "tor"

    [[targets]]
    name = "moria1"                       # optional label
    protocol = "or_port_dirauth"          # or_port_dirauth | dir_port | or_port | obfs4
    address = "128.31.0.39:9101"          # IP:port ([v6]:port)
    fingerprint = "9695DFC3..."           # optional, 40 hex digits
    source = "tor src/app/config/auth_dirs.inc"
    date = "2026-12-07"

    [[targets]]
    bridge = "obfs4 192.0.2.1:443 FINGERPRINT cert=... iat-mode=0"   # a bridge line instead
    source = "Tor Browser default bridges"
    date = "2026-12-07"

A bridge line without a transport (``IP:PORT FINGERPRINT``) is a vanilla bridge (``or_port``).
``obfs4`` targets need ``cert`` and ``iat-mode``. A target's ``id`` is OONI's: the address for
authorities, SHA-256 of address + fingerprint for bridges. No IO besides reading the file.

The pieces every list format shares come from :mod:`probe.applists` (reading with the line of
a TOML error, entry lines, the ``source``/``date`` provenance check, where a named list lives,
the error class); :data:`FORMATS` lets the list-wide functions there (``declared_ports``,
``validate_app_list``) read Tor lists too.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from probe.applists import BadAppList, PortReader, entry_lines, list_path, provenance, read_list

#: The protocols a target may be measured with (OONI ts-023-tor).
PROTOCOLS: tuple[str, ...] = ("or_port_dirauth", "dir_port", "or_port", "obfs4")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
_FPR = re.compile(r"^[0-9A-F]{40}$")
_CERT = re.compile(r"^[A-Za-z0-9+/]{60,80}$")
_KEYS = {"name", "protocol", "address", "fingerprint", "cert", "iat_mode", "bridge",
         "source", "date"}
_TOP = {"app", "notes", "targets"}


class BadTorList(BadAppList):
    """A Tor list that cannot be used; ``problems`` are ``FILE:LINE: reason`` lines."""


@dataclass(frozen=True, slots=True)
class TorTarget:
    """One Tor target: ``ip:port`` measured with ``protocol``.

    ``params`` are the bridge's transport arguments (``cert``, ``iat-mode`` for obfs4; empty
    otherwise). ``origin`` is ``FILE:LINE`` of its entry; ``source``/``date`` its provenance.
    """

    protocol: str
    ip: str
    port: int
    source: str
    date: str
    origin: str
    name: str = ""
    fingerprint: str = ""
    params: tuple[tuple[str, str], ...] = field(default=())

    @property
    def address(self) -> str:
        """``ip:port`` (``[v6]:port``), as OONI writes ``target_address``."""
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"

    @property
    def id(self) -> str:
        """OONI's target id: the address for authorities, SHA-256 of the address and the
        fingerprint for bridges (ts-023-tor "Expected inputs")."""
        if self.protocol in ("or_port", "obfs4"):
            return hashlib.sha256((self.address + self.fingerprint).encode()).hexdigest()
        return self.address

    @property
    def label(self) -> str:
        """``name protocol address``: how verdicts and reports name it (bridges keep their
        address out of the label: it is the secret that makes a bridge work)."""
        if self.protocol in ("or_port", "obfs4"):
            return f"{self.name or 'bridge'} {self.protocol} {self.id[:12]}"
        return f"{self.name or self.address} {self.protocol} {self.address}"


@dataclass(frozen=True, slots=True)
class TorList:
    """A validated Tor list; ``name`` is the file's stem (``tor``)."""

    name: str
    path: str
    targets: tuple[TorTarget, ...]

    @property
    def ports(self) -> tuple[int, ...]:
        return tuple(sorted({t.port for t in self.targets}))


def parse_address(text: str) -> tuple[str, int] | None:
    """``IP:PORT`` or ``[IPv6]:PORT`` → (ip, port); None when it is not one."""
    m = re.match(r"^\[([0-9A-Fa-f:.]+)\]:(\d{1,5})$", text) or re.match(
        r"^([0-9.]+):(\d{1,5})$", text)
    if not m:
        return None
    try:
        ip = str(ipaddress.ip_address(m.group(1)))
    except ValueError:
        return None
    port = int(m.group(2))
    return (ip, port) if 0 < port < 65536 else None


def parse_bridge_line(line: str) -> dict[str, Any]:
    """A ``Bridge`` line (``[TRANSPORT] IP:PORT [FINGERPRINT] [k=v ...]``, tor(1) "Bridge")
    → the entry keys it stands for. ValueError says what is wrong."""
    words = line.split()
    if words and words[0].lower() == "bridge":
        words = words[1:]
    if not words:
        raise ValueError("empty bridge line")
    transport = "or_port"
    if parse_address(words[0]) is None:
        transport = words.pop(0).lower()
        if transport != "obfs4":
            raise ValueError(f"transport {transport!r} is not supported (obfs4 or none)")
    if not words or parse_address(words[0]) is None:
        raise ValueError("bridge line without IP:PORT")
    out: dict[str, Any] = {"protocol": transport, "address": words.pop(0)}
    if words and "=" not in words[0]:
        out["fingerprint"] = words.pop(0)
    for w in words:
        k, eq, v = w.partition("=")
        if not eq:
            raise ValueError(f"bad bridge argument {w!r}")
        if k == "cert":
            out["cert"] = v
        elif k == "iat-mode":
            out["iat_mode"] = int(v) if v.isdigit() else v
        else:
            raise ValueError(f"unknown bridge argument {k!r}")
    return out


def _entry(raw: Any, where: str, problems: list[str]) -> TorTarget | None:
    before = len(problems)
    if not isinstance(raw, dict):
        problems.append(f"{where}: a [[targets]] entry must be a table")
        return None
    bad = sorted(set(raw) - _KEYS)
    if bad:
        problems.append(f"{where}: unknown key {bad[0]!r}")
    entry = dict(raw)
    if "bridge" in raw:
        clash = sorted({"protocol", "address", "fingerprint", "cert", "iat_mode"} & set(raw))
        if clash:
            problems.append(f"{where}: give 'bridge' or {clash[0]!r}, not both")
        try:
            entry.update(parse_bridge_line(str(raw["bridge"])))
        except ValueError as e:
            problems.append(f"{where}: bad bridge line: {e}")
            return None
    protocol = entry.get("protocol")
    if protocol not in PROTOCOLS:
        problems.append(f"{where}: 'protocol' must be one of {', '.join(PROTOCOLS)}")
    addr = parse_address(str(entry.get("address", "")))
    if addr is None:
        problems.append(f"{where}: 'address' must be IP:PORT (or [IPv6]:PORT)")
    fpr = str(entry.get("fingerprint", "")).replace(" ", "").upper()
    if fpr and not _FPR.match(fpr):
        problems.append(f"{where}: 'fingerprint' must be 40 hexadecimal digits")
    params: tuple[tuple[str, str], ...] = ()
    if protocol == "obfs4":
        cert = entry.get("cert")
        iat = entry.get("iat_mode")
        if not isinstance(cert, str) or not _CERT.match(cert):
            problems.append(f"{where}: an obfs4 bridge needs its 'cert' (base64, no padding)")
        if iat not in (0, 1, 2):
            problems.append(f"{where}: an obfs4 bridge needs 'iat_mode' 0, 1 or 2")
        params = (("cert", str(cert)), ("iat-mode", str(iat)))
    elif "cert" in entry or "iat_mode" in entry:
        problems.append(f"{where}: 'cert'/'iat_mode' only apply to obfs4 bridges")
    name = entry.get("name", "")
    if name and (not isinstance(name, str) or not _NAME.match(name)):
        problems.append(f"{where}: 'name' must be a short name (letters, digits, _.-)")
    origin = provenance(entry, where, problems)
    if len(problems) > before or addr is None or origin is None:
        return None
    return TorTarget(str(protocol), addr[0], addr[1], origin[0], origin[1], where,
                     str(name), fpr, params)


def load_tor_list(path: str | os.PathLike[str]) -> TorList:
    """Read and validate one Tor list; :class:`BadTorList` lists every problem."""
    p = Path(path)
    shown = str(path)
    text, doc = read_list(p, BadTorList)
    problems: list[str] = []
    bad = sorted(set(doc) - _TOP)
    if bad:
        problems.append(f"{shown}:1: unknown key {bad[0]!r}")
    if doc.get("app") != "tor":
        problems.append(f"{shown}:1: 'app' must be \"tor\"")
    raw = doc.get("targets", [])
    if not isinstance(raw, list) or not raw:
        problems.append(f"{shown}:1: no [[targets]]")
        raw = []
    lines = entry_lines(text, "targets")
    targets: list[TorTarget] = []
    for i, entry in enumerate(raw):
        t = _entry(entry, f"{shown}:{lines[i] if i < len(lines) else 0}", problems)
        if t is not None:
            targets.append(t)
    seen: dict[tuple[str, str], str] = {}
    for t in targets:
        key = (t.protocol, t.id)
        if key in seen:
            problems.append(f"{t.origin}: duplicate of the entry at {seen[key]}")
        seen.setdefault(key, t.origin)
    if problems:
        raise BadTorList(problems)
    return TorList(p.stem, shown, tuple(targets))


def find_tor_list(name: str, directory: str | os.PathLike[str] | None = None) -> TorList:
    """Load the list ``name`` from ``directory`` (the user's own lists) if it holds
    ``NAME.toml``, else the packaged ``targets/apps/NAME.toml``."""
    if not _NAME.match(name):
        raise BadTorList([f"{name}:0: not a list name"])
    path = list_path(name, directory)
    if not path.is_file():
        raise BadTorList([f"{path}:0: no such Tor list"])
    return load_tor_list(path)


def tor_ports(path: Path) -> tuple[int, ...]:
    """The ports a Tor list declares (:class:`BadTorList` when it does not validate)."""
    return load_tor_list(path).ports


#: The Tor list format by its ``app``, for :func:`probe.applists.declared_ports` and
#: :func:`probe.applists.validate_app_list`.
FORMATS: dict[str, PortReader] = {"tor": tor_ports}
