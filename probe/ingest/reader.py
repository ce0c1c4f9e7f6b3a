"""Read measurement documents from files, directories and standard input, streamed, one at a time.

Responsibility: turn the paths given to ``probe import`` into a generator of
:class:`Document` (the parsed JSON object and its ``FILE:LINE`` origin) or :class:`BadInput`
(where and why a document could not be read), never holding more than one document in memory.
Formats: a single JSON document (pretty-printed or not), JSON Lines, either gzip-compressed
(``.gz``), a directory in the layout of OONI's public archive
(``raw/YYYYMMDD/HH/CC/TESTNAME/*.jsonl.gz``, https://docs.ooni.org/data/, walked in sorted
order so an import is reproducible), and ``-`` for standard input. This module knows nothing
about OONI's keys: mapping is :mod:`probe.ingest.mapper`'s job.

How a file is told JSON Lines from one document: its first non-blank line is parsed; when that
line is a whole JSON object, or looks like one (``{`` … ``}`` on one line, a corrupt first
record: it is one bad line and the rest is still read), the file is JSON Lines (a one-line JSON
document is the same thing), otherwise the whole file is one (pretty-printed) document.

Hostile files (docs/import.md "Hostile input"): no line is read into memory past
:data:`MAX_LINE_CHARS` (a gzip bomb of one endless line is skipped as one bad line, reading on
to the next), no document past :data:`MAX_DOCUMENT_BYTES`, and a document nested deeper than
the parser can follow is one bad line (never a crash).
"""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson
from isal import igzip

from probe.errors import UsageError

#: File names read inside a directory (anything else, e.g. README or .tar, is skipped).
SUFFIXES = (".json", ".jsonl", ".json.gz", ".jsonl.gz")
#: A single (pretty-printed) document larger than this is refused rather than loaded whole.
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024
#: Longest line read (characters). The biggest real OONI measurement in a JSON Lines file is a
#: few MB (web_connectivity with its bodies); past this a line is skipped unread, so a gzip
#: bomb of one endless line costs time but at most this much memory.
MAX_LINE_CHARS = MAX_DOCUMENT_BYTES
#: Where a line was too long (a marker in the stream of lines).
_TOO_LONG = "\0too long\0"


@dataclass(frozen=True, slots=True)
class Document:
    """One parsed JSON object and where it came from (``FILE:LINE``, ``-:LINE`` = stdin)."""

    origin: str
    doc: dict[str, Any]


@dataclass(frozen=True, slots=True)
class BadInput:
    """A document that could not be read: where (``FILE:LINE``) and why (one line)."""

    origin: str
    problem: str


def _open_text(path: Path) -> IO[str]:
    if path.name.endswith(".gz"):
        # isal's igzip: the same bytes as gzip (ISA-L's inflate), ~2.5x less CPU on OONI's
        # archive files; the reader runs in the one writing process, so this is the
        # import's serial part (docs/import.md "Performance").
        return io.TextIOWrapper(igzip.open(path, "rb"), encoding="utf-8", errors="replace")
    return path.open(encoding="utf-8", errors="replace")


def _problem(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text[:200] or type(exc).__name__


def _lines(stream: Iterable[str]) -> Iterator[str]:
    """The lines of ``stream``, each at most :data:`MAX_LINE_CHARS` long: a longer line is
    read past in bounded pieces and given as :data:`_TOO_LONG`."""
    readline = getattr(stream, "readline", None)
    if readline is None:  # a list of lines (tests, callers): already in memory
        for line in stream:
            yield _TOO_LONG if len(line) > MAX_LINE_CHARS else line
        return
    while True:
        line = readline(MAX_LINE_CHARS + 1)
        if not line:
            return
        if len(line) <= MAX_LINE_CHARS:
            yield line
            continue
        while line and not line.endswith("\n"):  # the rest of the line, never held whole
            line = readline(1024 * 1024)
        yield _TOO_LONG


def _too_long(name: str, lineno: int) -> BadInput:
    return BadInput(f"{name}:{lineno}",
                    f"line longer than {MAX_LINE_CHARS // (1024 * 1024)} MiB, not read")


def _looks_like_jsonl(first: str) -> bool:
    """A whole JSON object on the first line, or a line shaped like one (a corrupt record)."""
    try:
        json.loads(first)
        return True
    except ValueError:
        text = first.strip()
        return len(text) > 1 and text[0] == "{" and text[-1] == "}"
    except RecursionError:  # nested past the parser: one line, a (bad) record
        return True


def raw_stream(stream: Iterable[str], name: str) -> Iterator[tuple[int, str] | BadInput]:
    """The documents of one text stream as ``(line number, JSON text)``, not yet parsed (the
    parallel importer parses in its workers); an oversized document or line is a
    :class:`BadInput`. A JSON Lines stream gives one item per non-blank line; one
    pretty-printed document one item, at the line it starts."""
    lines = _lines(stream)
    lineno = 0
    first = ""
    for line in lines:
        lineno += 1
        if line is _TOO_LONG:
            yield _too_long(name, lineno)  # a record nobody can read; the rest may be fine
            continue
        if line.strip():
            first = line
            break
    else:
        return
    if not _looks_like_jsonl(first):
        # One pretty-printed document: the rest of the stream belongs to it.
        start = lineno
        parts = [first]
        size = len(first)
        for line in lines:
            parts.append(line)
            size += len(line)
            if line is _TOO_LONG or size > MAX_DOCUMENT_BYTES:
                yield BadInput(f"{name}:{start}", "document larger than "
                               f"{MAX_DOCUMENT_BYTES // (1024 * 1024)} MiB, not read")
                return
        yield start, "".join(parts)
        return
    yield lineno, first
    for line in lines:
        lineno += 1
        if line is _TOO_LONG:
            yield _too_long(name, lineno)
        elif line.strip():
            yield lineno, line


def parse(text: str, origin: str) -> Document | BadInput:
    """One document's JSON text parsed (a JSON value that is not an object is a BadInput)."""
    # orjson: ~2.5x faster than json on OONI documents. It refuses a few things json takes
    # (NaN, Infinity, lone surrogates): then json decides. One difference is kept: an integer
    # beyond 64 bits becomes a float (json keeps it exact; no OONI field holds one, and
    # SQLite could not store it anyway).
    try:
        value = orjson.loads(text)
    except ValueError:
        try:
            value = json.loads(text)
        except ValueError as exc:
            return BadInput(origin, f"not JSON: {_problem(exc)}")
        except RecursionError:  # orjson stops at 1024 levels, json at the recursion limit
            return BadInput(origin, "not JSON: nested too deeply")
    return _one(value, origin)


def read_stream(stream: Iterable[str], name: str) -> Iterator[Document | BadInput]:
    """Documents of one text stream (a file's lines or stdin), named ``name`` in origins."""
    for item in raw_stream(stream, name):
        yield item if isinstance(item, BadInput) else parse(item[1], f"{name}:{item[0]}")


def _one(value: Any, origin: str) -> Document | BadInput:
    if not isinstance(value, dict):
        return BadInput(origin, f"a JSON {type(value).__name__}, not a measurement object")
    return Document(origin, value)


def read_file(path: Path) -> Iterator[Document | BadInput]:
    """Documents of one file (plain or gzip); an unreadable file is one :class:`BadInput`."""
    for item in raw_file(path):
        yield item if isinstance(item, BadInput) else parse(item[1], f"{path}:{item[0]}")


def raw_file(path: Path) -> Iterator[tuple[int, str] | BadInput]:
    """:func:`raw_stream` of one file (plain or gzip); unreadable = one :class:`BadInput`."""
    try:
        with _open_text(path) as stream:
            yield from raw_stream(stream, str(path))
    except (OSError, EOFError, UnicodeError) as exc:  # gzip.BadGzipFile is an OSError
        yield BadInput(f"{path}:0", f"cannot read: {_problem(exc)}")


def walk(directory: Path) -> Iterator[Path]:
    """The measurement files under ``directory`` in sorted order (OONI's archive layout sorts
    by day, hour, country and test name), without following symbolic links to directories."""
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for name in sorted(files):
            if name.endswith(SUFFIXES):
                yield Path(root) / name


def read_paths(paths: Iterable[str], stdin: IO[str] | None = None
               ) -> Iterator[Document | BadInput]:
    """Every document of ``paths`` in order (``-`` = standard input, a directory = its files
    in sorted order). A path that does not exist is a usage error, raised before anything is
    read."""
    for item in raw_paths(paths, stdin):
        yield item if isinstance(item, BadInput) else parse(item[2], f"{item[0]}:{item[1]}")


def raw_paths(paths: Iterable[str], stdin: IO[str] | None = None
              ) -> Iterator[tuple[str, int, str] | BadInput]:
    """:func:`read_paths` unparsed: ``(name, line number, JSON text)`` per document."""
    given = list(paths)
    if not given:
        raise UsageError("nothing to import: give files, directories or - (standard input)")
    missing = [p for p in given if p != "-" and not Path(p).exists()]
    if missing:
        raise UsageError(f"no such file or directory: {missing[0]}")
    for p in given:
        if p == "-":
            yield from _named(raw_stream(stdin if stdin is not None else sys.stdin, "-"), "-")
        elif Path(p).is_dir():
            for f in walk(Path(p)):
                yield from _named(raw_file(f), str(f))
        else:
            yield from _named(raw_file(Path(p)), str(Path(p)))


def _named(items: Iterable[tuple[int, str] | BadInput], name: str
           ) -> Iterator[tuple[str, int, str] | BadInput]:
    for item in items:
        yield item if isinstance(item, BadInput) else (name, item[0], item[1])


__all__ = ["BadInput", "Document", "parse", "raw_file", "raw_paths", "raw_stream", "read_file",
           "read_paths", "read_stream", "walk"]
