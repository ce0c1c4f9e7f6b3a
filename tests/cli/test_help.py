"""Every command, argument and option of ``probe`` has help and is documented.

The tests walk the click tree typer builds from :data:`probe.cli.root.app` (as sqlite-utils'
tests do), one case per command path (``probe sim run``): the command and each of its arguments
and options must have a help text; the path must appear in README.md or a file under docs/, and
each option spelling (``--trace-blocked``, ``-q``, ``--no-check``) in one of those files that
names the command, so a rare option is documented where its command is. A failure lists
exactly what is missing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.main import get_command

from probe.cli.root import app

ROOT = Path(__file__).resolve().parents[2]
DOC_FILES = (ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md")))
#: The documentation by file name, whitespace folded (a command path may wrap across lines).
DOCS = {str(path.relative_to(ROOT)): " ".join(path.read_text(encoding="utf-8").split())
        for path in DOC_FILES}


@dataclass(frozen=True)
class Command:
    """One command of the tree: its path (``probe db merge``) and its click command."""

    path: str
    command: Any


def _walk(command: Any, path: str) -> Iterator[Command]:
    """``command`` and, for a group, its visible sub-commands, depth first."""
    yield Command(path, command)
    for name in sorted(getattr(command, "commands", {})):
        sub = command.commands[name]
        if not sub.hidden:
            yield from _walk(sub, f"{path} {name}")


COMMANDS = list(_walk(get_command(app), "probe"))


def _params(command: Command) -> list[Any]:
    """The arguments and options of ``command`` a user sees (``--help`` is click's own)."""
    return [p for p in command.command.params if not getattr(p, "hidden", False)]


def _spellings(param: Any) -> list[str]:
    """Every way to write an option (``--check``, ``--no-check``, ``-j``); none for an argument."""
    return [*param.opts, *param.secondary_opts] if param.param_type_name == "option" else []


def _label(param: Any) -> str:
    return "/".join(_spellings(param)) or f"argument {param.name.upper()}"


def _mentions(text: str, token: str) -> bool:
    """Whether ``token`` (a command path or an option) is in ``text`` as a whole word:
    ``--db`` is not found in ``--db-path``, nor ``probe run`` in ``probe runs``."""
    return re.search(rf"(?<![\w-]){re.escape(token)}(?![\w-])", text) is not None


def test_the_walk_reaches_every_level():
    paths = {command.path for command in COMMANDS}
    assert {"probe run", "probe watch", "probe sim run", "probe db merge",
            "probe config show", "probe helper serve"} <= paths
    run = next(c for c in COMMANDS if c.path == "probe run")
    assert {"--trace-blocked", "-q", "--quiet"} <= {s for p in _params(run) for s in _spellings(p)}
    up = next(c for c in COMMANDS if c.path == "probe sim up")
    assert "--no-check" in {s for p in _params(up) for s in _spellings(p)}


def test_the_checks_see_what_is_missing():
    assert _mentions("use `probe sim run --all`", "probe sim run")
    assert _mentions("probe sim run --all", "--all")
    assert not _mentions("probe runs", "probe run")
    assert not _mentions("--db-path", "--db")
    assert not _mentions("--no-check", "--check")


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.path)
def test_command_and_its_parameters_have_help(command):
    missing = []
    if not (command.command.help or command.command.short_help or "").strip():
        missing.append("the command itself")
    missing += [_label(p) for p in _params(command) if not (getattr(p, "help", "") or "").strip()]
    assert not missing, f"`{command.path}`: no help text for " + ", ".join(missing)


@pytest.mark.parametrize("command", COMMANDS[1:], ids=lambda c: c.path)
def test_command_and_its_options_are_documented(command):
    where = [name for name, text in DOCS.items() if _mentions(text, command.path)]
    assert where, f"`{command.path}` is in neither README.md nor docs/*.md"
    missing = [spelling for param in _params(command) for spelling in _spellings(param)
               if not any(_mentions(DOCS[name], spelling) for name in where)]
    assert not missing, (f"`{command.path}`: options in none of the files that name the command "
                         f"({', '.join(where)}): " + ", ".join(missing))
