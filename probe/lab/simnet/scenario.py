"""Scenarios as data: read, validate and describe one TOML file per scenario.

Everything about the *format* of a scenario file lives here (the simulator's world, techniques
and runner read the frozen records this module returns). A scenario names the sites of its world,
the censor techniques on the ISP router (with parameters), timed events, and the targets with the
FINAL correct verdict and method for each (DESIGN.md vocabulary). Where the current classifier
cannot give that verdict yet, a target carries ``xfail = "issue N: why"``.

File format (``probe/lab/simnet/scenarios/NAME.toml``; files starting with ``_`` are not
scenarios)::

    description = "one line"            # required
    notes = "longer text"               # optional
    tags = ["dns", "ooni-qa"]           # optional
    transit = 2                         # transit routers between the ISP and the world
    ipv6 = false                        # dual stack: every address, site and route gets an
                                        # IPv6 twin, DNS answers AAAA, an IPv6 canary (issue 15)
    timeout = 3.0                       # probe --timeout
    concurrency = 8                     # probe --concurrency
    probe_args = ["--residual-cooldown", "15"]  # more probe run options
    resolvers = ["public"]              # extra --resolver: "public", "isp" or "ip[:port]";
                                        # "doh" = --doh with the public resolver's DoH URL,
                                        # "dot" = --dot with its name (port 853)
    require = ["shutdown/shutdown.full"]  # outcomes that must appear among the targets

    [[sites]]                            # see SITE_KEYS
    host = "meduza.io"
    net = "eu-host"                     # a network of probe.lab.simnet.addressing
    behaviour = "ok"                    # + any probe.lab.world SiteConfig key

    [[censor]]                           # see probe.lab.simnet.techniques
    technique = "sni_reset"
    hosts = ["meduza.io"]

    clock = "first_target"              # event offsets count from the probe's first SYN to a
                                        # target (default; robust to start-up time) or "start"
    [[events]]                           # timed: apply/remove a censor entry during the run
    at = 4.0
    apply = "cut"                       # or remove = "cut"; the entry has id = "cut"

    [[targets]]
    url = "https://meduza.io/"          # or a dnscheck input: doh://NAME/PATH, dot://NAME:853
    expect = "blocked/tls.reset"        # "verdict" or "verdict/method"; a list = any of them
    families = { ipv4 = "ok", ipv6 = "tcp.timeout" }  # optional: details["families"] (ipv6)
    xfail = "issue 4: needs the control vantage"
    quic = "quic.blocked"               # optional: the verdict's details.quic.method (issue 15)

    [tor]                                # a private Tor network (probe/lab/world/tor_net.py)
    authorities = 3                     # directory authorities (2-5); relays = 1 (0-3)
    [[targets]]
    url = "tor://tor-dirauths"          # tor://LIST: tor, tor-dirauths, tor-vanilla, tor-obfs4
    expect = "blocked/tcp.timeout"
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from probe.applists import validate_app_list
from probe.lab.simnet.scenario_records import (
    CLOCKS,
    METHODS,
    REGION_ALIASES,
    SCENARIO_DIR,
    SIM_SITE_KEYS,
    SITE_DNS,
    SITE_DOWN,
    TOP_KEYS,
    TOR_KEYS,
    TOR_LISTS,
    VERDICTS,
    WORLD_SITE_KEYS,
    CensorSpec,
    EventSpec,
    Expect,
    Scenario,
    ScenarioError,
    SiteSpec,
    TargetSpec,
    check_keys,
    host_name,
    parse_site,
    str_list,
)
from probe.lab.simnet.site_plan import base_sites
from probe.lab.simnet.techniques import TECHNIQUES
from probe.measure.torlist import FORMATS as TOR_FORMATS
from probe.model import APP_TESTS, TOR

__all__ = [
    "CLOCKS", "METHODS", "REGION_ALIASES", "SCENARIO_DIR", "SIM_SITE_KEYS", "SITE_DNS",
    "SITE_DOWN", "TOP_KEYS", "VERDICTS", "WORLD_SITE_KEYS", "CensorSpec", "EventSpec", "Expect",
    "Scenario", "ScenarioError", "SiteSpec", "TargetSpec", "find", "load", "load_all", "names",
    "parse", "parse_expect", "replace", "scenario_paths",
]


def parse_expect(value: Any, where: str) -> tuple[Expect, ...]:
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, str) for v in values):
        raise ScenarioError(f"{where}: expected 'verdict[/method]' or a list of them")
    out = []
    for text in values:
        verdict, _, method = text.strip().partition("/")
        if verdict not in VERDICTS:
            raise ScenarioError(
                f"{where}: unknown verdict {verdict!r} (one of {', '.join(VERDICTS)})"
            )
        if method:
            allowed = METHODS[verdict]
            if verdict == "ok":
                raise ScenarioError(f"{where}: 'ok' takes no method")
            if allowed and method not in allowed:
                raise ScenarioError(
                    f"{where}: unknown method {method!r} for {verdict!r} "
                    f"(one of {', '.join(sorted(allowed))})"
                )
            if not re.fullmatch(r"[a-z][a-z0-9_.]*", method):
                raise ScenarioError(f"{where}: bad method {method!r}")
        out.append(Expect(verdict, method or None))
    return tuple(out)


def _censor(data: Any, where: str, index: int) -> CensorSpec:
    if not isinstance(data, dict) or "technique" not in data:
        raise ScenarioError(f"{where}: missing 'technique'")
    name = data["technique"]
    cls = TECHNIQUES.get(name)
    if cls is None:
        raise ScenarioError(f"{where}.technique: unknown {name!r}; known: {', '.join(TECHNIQUES)}")
    common = ("technique", "id", "active", "router")
    params = {k: v for k, v in data.items() if k not in common}
    try:
        params = cls.validate(params)
    except ValueError as exc:
        raise ScenarioError(f"{where} ({name}): {exc}") from None
    cid = data.get("id", f"{name}{index}")
    if not isinstance(cid, str) or not re.fullmatch(r"[a-z][a-z0-9_]{0,20}", cid):
        raise ScenarioError(f"{where}.id: {cid!r} must match [a-z][a-z0-9_]{{0,20}}")
    active = data.get("active", True)
    if not isinstance(active, bool):
        raise ScenarioError(f"{where}.active: expected true/false")
    router = data.get("router", "isp")
    if not isinstance(router, str) or not re.fullmatch(r"isp|t[1-8]", router):
        raise ScenarioError(f"{where}.router: expected 'isp' or 't1'..'t8'")
    if router != "isp" and not cls.movable:
        raise ScenarioError(f"{where}.router: {name} only runs on the ISP router")
    return CensorSpec(id=cid, technique=name, params=params, active=active, router=router)


def _event(data: Any, where: str) -> EventSpec:
    d = check_keys(data, ("at", "apply", "remove"), where, required=("at",))
    at = d["at"]
    if not isinstance(at, int | float) or isinstance(at, bool) or not 0 <= at <= 600:
        raise ScenarioError(f"{where}.at: expected seconds 0..600")
    actions = [k for k in ("apply", "remove") if k in d]
    if len(actions) != 1 or not isinstance(d[actions[0]], str):
        raise ScenarioError(f"{where}: exactly one of apply = ID / remove = ID")
    return EventSpec(at=float(at), action=actions[0], censor=d[actions[0]])


def _target(data: Any, where: str) -> TargetSpec:
    d = check_keys(data, ("url", "expect", "xfail", "note", "families", "quic"), where,
                   required=("url", "expect"))
    url = d["url"]
    if not isinstance(url, str):
        raise ScenarioError(f"{where}.url: expected a string")
    kind, _, name = url.partition("://")
    if kind in APP_TESTS:  # an app, a service or a Tor list (issue 14): KIND://LIST
        if not re.match(r"^[a-z0-9][a-z0-9_.-]{0,39}$", name):
            raise ScenarioError(f"{where}.url: {url!r} is not KIND://LIST")
        if kind == TOR and name not in TOR_LISTS:
            raise ScenarioError(f"{where}.url: {url!r}: a tor target is tor://LIST, LIST one of "
                                f"{', '.join(TOR_LISTS)} (the world's [tor] network)")
        return TargetSpec(url=url, hostname=name,
                          expect=parse_expect(d["expect"], f"{where}.expect"),
                          xfail=d.get("xfail"), note=str(d.get("note", "")))
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "doh", "dot") or not parts.hostname:
        raise ScenarioError(f"{where}.url: {url!r} is not an http(s), doh or dot URL "
                            "(or KIND://LIST)")
    xfail = d.get("xfail")
    if xfail is not None and (not isinstance(xfail, str) or not re.match(r"issue \d+: \S", xfail)):
        raise ScenarioError(f"{where}.xfail: expected 'issue N: why'")
    families = d.get("families")
    if families is not None and (
            not isinstance(families, dict) or not families
            or not set(families) <= {"ipv4", "ipv6"}
            or not all(isinstance(v, str) for v in families.values())):
        raise ScenarioError(f"{where}.families: expected {{ ipv4 = \"ok\", ipv6 = \"...\" }}")
    quic = d.get("quic")
    if quic is not None and (not isinstance(quic, str)
                             or not re.fullmatch(r"quic\.[a-z_]+", quic)):
        raise ScenarioError(f"{where}.quic: expected a QUIC method like 'quic.blocked'")
    return TargetSpec(url=url, hostname=host_name(parts.hostname, f"{where}.url"),
                      expect=parse_expect(d["expect"], f"{where}.expect"), xfail=xfail,
                      note=str(d.get("note", "")),
                      families=tuple(sorted(families.items())) if families else None,
                      quic=quic)


def parse(data: dict[str, Any], name: str, path: str = "<memory>") -> Scenario:
    """Validate a parsed TOML document into a :class:`Scenario` (raises ScenarioError)."""
    where = path
    d = check_keys(data, TOP_KEYS, where, required=("description", "targets"))
    if not isinstance(d["description"], str) or not d["description"].strip():
        raise ScenarioError(f"{where}.description: expected text")
    sites = tuple(parse_site(s, f"{where}: sites[{i}]") for i, s in enumerate(d.get("sites", [])))
    hosts = [s.host for s in sites]
    dup = {h for h in hosts if hosts.count(h) > 1}
    if dup:
        raise ScenarioError(f"{where}: sites declared twice: {', '.join(sorted(dup))}")
    censors = tuple(
        _censor(c, f"{where}: censor[{i}]", i) for i, c in enumerate(d.get("censor", []))
    )
    ids = [c.id for c in censors]
    if len(set(ids)) != len(ids):
        raise ScenarioError(f"{where}: censor ids must be unique")
    events = tuple(_event(e, f"{where}: events[{i}]") for i, e in enumerate(d.get("events", [])))
    for i, ev in enumerate(events):
        if ev.censor not in ids:
            raise ScenarioError(f"{where}: events[{i}]: no censor with id {ev.censor!r}")
        tech = TECHNIQUES[next(c.technique for c in censors if c.id == ev.censor)]
        if not tech.removable:
            raise ScenarioError(f"{where}: events[{i}]: {tech.name} cannot be toggled during a run")
    targets = tuple(_target(t, f"{where}: targets[{i}]") for i, t in enumerate(d["targets"]))
    if not targets:
        raise ScenarioError(f"{where}: at least one target")
    known = set(hosts) | {s.host for s in base_sites()}
    aliases = {a for s in sites for a in s.site.get("aliases", [])}
    tor = _tor(d.get("tor"), f"{where}.tor")
    for i, t in enumerate(targets):
        kind = t.url.partition("://")[0]
        if kind == TOR and tor is None:
            raise ScenarioError(f"{where}: targets[{i}]: {t.url} needs a [tor] network")
        if kind in APP_TESTS:
            continue  # its endpoints are the list's (app_lists, else targets/apps; [tor])
        if t.hostname not in known | aliases:
            raise ScenarioError(f"{where}: targets[{i}]: {t.hostname} is not a site of the world")
    for c in censors:
        for h in c.params.get("hosts", []):
            if h not in known | aliases:
                raise ScenarioError(f"{where}: censor {c.id}: host {h} is not a site of the world")
    transit = d.get("transit", 2)
    if not isinstance(transit, int) or not 1 <= transit <= 8:
        raise ScenarioError(f"{where}.transit: expected 1..8")
    ipv6 = d.get("ipv6", False)
    if not isinstance(ipv6, bool):
        raise ScenarioError(f"{where}.ipv6: expected true or false")
    timeout = d.get("timeout", 3.0)
    if not isinstance(timeout, int | float) or not 0.5 <= timeout <= 30:
        raise ScenarioError(f"{where}.timeout: expected seconds 0.5..30")
    concurrency = d.get("concurrency", 8)
    if not isinstance(concurrency, int) or not 1 <= concurrency <= 64:
        raise ScenarioError(f"{where}.concurrency: expected 1..64")
    resolvers = str_list(d.get("resolvers", []), f"{where}.resolvers")
    require = tuple(e for r in str_list(d.get("require", []), f"{where}.require")
                    for e in parse_expect(r, f"{where}.require"))
    clock = d.get("clock", "first_target")
    if clock not in CLOCKS:
        raise ScenarioError(f"{where}.clock: one of {', '.join(CLOCKS)}")
    selfchecks = d.get("selfchecks", [])
    if not isinstance(selfchecks, list) or not all(isinstance(c, dict) for c in selfchecks):
        raise ScenarioError(f"{where}.selfchecks: expected an array of tables")
    return Scenario(
        name=name,
        path=path,
        description=d["description"].strip(),
        notes=str(d.get("notes", "")).strip(),
        tags=str_list(d.get("tags", []), f"{where}.tags"),
        transit=transit,
        ipv6=ipv6,
        timeout=float(timeout),
        concurrency=concurrency,
        resolvers=resolvers,
        probe_args=str_list(d.get("probe_args", []), f"{where}.probe_args"),
        require=require,
        sites=sites,
        censors=censors,
        events=events,
        clock=clock,
        targets=targets,
        selfchecks=tuple(selfchecks),
        demo=bool(d.get("demo", False)),
        app_lists=_app_lists(d.get("app_lists"), where),
        tor=tor,
    )


def _app_lists(value: Any, where: str) -> str | None:
    """``app_lists``: a directory beside the scenarios whose lists (endpoint lists, Tor lists)
    replace the packaged ones (``--app-lists``); every list in it must validate."""
    if value is None:
        return None
    if not isinstance(value, str) or not (SCENARIO_DIR / value).is_dir():
        raise ScenarioError(f"{where}.app_lists: {value!r} is not a directory in {SCENARIO_DIR}")
    for path in sorted((SCENARIO_DIR / value).glob("*.toml")):
        problems = validate_app_list(path, TOR_FORMATS)
        if problems and not (len(problems) == 1 and "'ca_file'" in problems[0]):
            raise ScenarioError(f"{where}.app_lists: {problems[0]}")
    return value


def _tor(data: Any, where: str) -> dict[str, int] | None:
    """``[tor]``: how many directory authorities (2-5, default 3) and relays (0-3, default 1)
    the private Tor network has; its bridges are always one vanilla and one obfs4."""
    if data is None:
        return None
    d = check_keys(data, TOR_KEYS, where)
    out = {"authorities": d.get("authorities", 3), "relays": d.get("relays", 1)}
    for key, (lo, hi) in (("authorities", (2, 5)), ("relays", (0, 3))):
        v = out[key]
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            raise ScenarioError(f"{where}.{key}: expected {lo}..{hi}")
    return out


def load(path: str | Path) -> Scenario:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not TOML: {exc}") from None
    return parse(data, path.stem, str(path))


def scenario_paths(directory: Path = SCENARIO_DIR) -> list[Path]:
    return sorted(p for p in directory.glob("*.toml") if not p.name.startswith("_"))


def names(directory: Path = SCENARIO_DIR) -> list[str]:
    return [p.stem for p in scenario_paths(directory)]


def find(name_or_path: str) -> Path:
    """A scenario by name (``sni_reset``) or by path to a .toml file."""
    p = Path(name_or_path)
    if p.suffix == ".toml" and p.exists():
        return p
    candidate = SCENARIO_DIR / f"{name_or_path}.toml"
    if candidate.exists():
        return candidate
    close = [n for n in names() if name_or_path in n]
    hint = f"; did you mean {', '.join(close[:5])}?" if close else ""
    raise ScenarioError(f"no scenario {name_or_path!r}{hint} (see `probe sim list`)")


def load_all(directory: Path = SCENARIO_DIR) -> list[Scenario]:
    return [load(p) for p in scenario_paths(directory)]


def replace(s: Scenario, **changes: Any) -> Scenario:
    return dataclasses.replace(s, **changes)
