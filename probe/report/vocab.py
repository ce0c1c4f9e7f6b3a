"""The report's fixed vocabulary: verdict and network-state codes, their order, labels, colours.

Everything that decides how a verdict or a network state *looks* (name, one-letter symbol for
text timelines, colour) lives here, so every renderer agrees. Colours are the Okabe–Ito
palette (safe for the common colour-vision deficiencies) and are never the only cue: every
coloured mark also carries a text label, a symbol or a tooltip.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Verdicts in the order they are listed (DESIGN.md contract).
VERDICTS: tuple[str, ...] = (
    "ok",
    "blocked",
    "intercepted",
    "throttled",
    "down",
    "shutdown",
    "inconclusive",
)
#: Integer codes stored in the report workspace (index into VERDICTS).
VERDICT_CODE: dict[str, int] = {v: i for i, v in enumerate(VERDICTS)}

#: Verdicts that mean deliberate interference with a site ("seen blocked" counts these).
INTERFERENCE: tuple[str, ...] = ("blocked", "intercepted", "throttled")
#: Verdicts that say nothing about the site itself (ignored when a period's status is chosen).
NOT_CONCLUSIVE: tuple[str, ...] = ("shutdown", "inconclusive")

#: Tie-break when two verdicts are equally frequent in a timeline cell: the more alarming wins.
SEVERITY: dict[str, int] = {
    "ok": 0,
    "inconclusive": 1,
    "down": 2,
    "throttled": 3,
    "intercepted": 4,
    "blocked": 5,
    "shutdown": 6,
}


@dataclass(frozen=True, slots=True)
class Look:
    """How one code is drawn: ``symbol`` for text timelines, ``fg`` for text on ``colour``."""

    label: str
    symbol: str
    colour: str
    fg: str


VERDICT_LOOK: dict[str, Look] = {
    "ok": Look("ok", ".", "#56B4E9", "#000000"),
    "blocked": Look("blocked", "B", "#D55E00", "#000000"),
    "intercepted": Look("intercepted", "I", "#CC79A7", "#000000"),
    "throttled": Look("throttled", "T", "#E69F00", "#000000"),
    "down": Look("site down", "D", "#8C8C8C", "#000000"),
    "shutdown": Look("network shutdown", "S", "#000000", "#FFFFFF"),
    "inconclusive": Look("inconclusive", "?", "#E3E3E3", "#000000"),
}
NO_DATA = Look("no data", " ", "#FFFFFF", "#000000")

#: Network states of probe.classify.health.NetworkState, in display order.
STATES: tuple[str, ...] = (
    "whole",
    "captive_portal",
    "shutdown.full",
    "shutdown.international",
    "shutdown.allowlist",
    "local_outage",
    "unknown",
)
CUT_STATES: tuple[str, ...] = (
    "shutdown.full",
    "shutdown.international",
    "shutdown.allowlist",
    "local_outage",
)
STATE_LOOK: dict[str, Look] = {
    "whole": Look("connected", "=", "#56B4E9", "#000000"),
    "captive_portal": Look("captive portal (the volunteer's network)", "P", "#F0E442",
                           "#000000"),
    "shutdown.full": Look("full shutdown", "X", "#000000", "#FFFFFF"),
    "shutdown.international": Look("international cut", "N", "#D55E00", "#000000"),
    "shutdown.allowlist": Look("allow-list only", "A", "#E69F00", "#000000"),
    "local_outage": Look("local outage (volunteer's link)", "L", "#CC79A7", "#000000"),
    "unknown": Look("unknown", "?", "#E3E3E3", "#000000"),
}

#: Kinds of change between two periods or runs (compare), in display order.
CHANGES: tuple[str, ...] = (
    "newly_blocked",
    "unblocked",
    "method_changed",
    "still_blocked",
    "unclear",
)
CHANGE_LABEL: dict[str, str] = {
    "newly_blocked": "newly blocked",
    "unblocked": "unblocked",
    "method_changed": "method changed",
    "still_blocked": "still blocked",
    "unclear": "unclear (site down, network cut or inconclusive)",
}


def verdict_look(verdict: str | None) -> Look:
    return VERDICT_LOOK.get(verdict or "", NO_DATA)


def state_look(state: str | None) -> Look:
    return STATE_LOOK.get(state or "", NO_DATA)
