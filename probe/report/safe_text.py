"""Text that cannot attack its reader: control characters escaped for terminals, bidirectional
and zero-width characters made visible in reports, spreadsheet formulas defused.

Everything the probe prints or renders may hold text a hostile server chose (page titles,
header values, failure strings, evidence built from them). This module owns how such text is
made harmless; every writer to a terminal and every report renderer goes through it:

* :func:`for_terminal` — what reaches a terminal: every C0 control but newline and tab, DEL,
  every C1 control (U+0080–U+009F, which terminals may read as ``ESC`` + a letter: U+009B is a
  CSI) and the characters of :func:`visible` are written as a visible escape (``\\x1b``,
  ``\\u009b``, ``\\u202e``), so no escape sequence (ECMA-48 §5) from stored text reaches the
  terminal and nothing can rewrite or hide what was printed. :class:`TerminalStream` applies
  it to a whole stream; :func:`terminal_stdout` puts one in front of standard output when it
  is a terminal.
* :func:`visible` — what reports show (HTML, Markdown, CSV, JSON): bidirectional overrides,
  embeddings, isolates and marks (U+202A–U+202E, U+2066–U+2069, U+200E/F, U+061C; Unicode
  TR #9, and the "Trojan Source" attack, CVE-2021-42574) and zero-width characters (U+200B–
  U+200D, U+2060, U+FEFF) become the visible text ``\\u202e``, so a title cannot reorder or
  hide the text around it.
* :func:`csv_cell` — a CSV cell a spreadsheet would run as a formula (starting with ``=``,
  ``+``, ``-``, ``@``, tab or carriage return; OWASP "CSV Injection") is prefixed with ``'``.
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Iterator
from typing import Any, TextIO

__all__ = [
    "FORMULA_START",
    "TerminalStream",
    "csv_cell",
    "for_terminal",
    "terminal_stdout",
    "visible",
]

#: Bidirectional formatting characters (Unicode TR #9 §2) and zero-width characters.
INVISIBLE = (
    [*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C]
    + [0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF]
)
#: What a spreadsheet reads as the start of a formula (OWASP CSV Injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _escape(code: int) -> str:
    return f"\\x{code:02x}" if code < 0x80 else f"\\u{code:04x}"


_VISIBLE = {c: _escape(c) for c in INVISIBLE}
_TERMINAL = {
    **{c: _escape(c) for c in range(0x20) if chr(c) not in "\n\t"},
    0x7F: _escape(0x7F),
    **{c: _escape(c) for c in range(0x80, 0xA0)},
    0x2028: _escape(0x2028),  # line and paragraph separators: a second line in one cell
    0x2029: _escape(0x2029),
    **_VISIBLE,
}


def visible(text: str) -> str:
    """``text`` with every bidirectional and zero-width character written as ``\\uXXXX``."""
    return text.translate(_VISIBLE)


def for_terminal(text: str) -> str:
    """``text`` safe to print on a terminal: controls (C0 but newline and tab, DEL, C1) and
    the characters :func:`visible` escapes, written as visible escapes."""
    return text.translate(_TERMINAL)


def csv_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet will not run: text starting like a formula gets a ``'``."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


class TerminalStream(io.TextIOBase):
    """A text stream that writes everything through :func:`for_terminal` to ``inner``."""

    def __init__(self, inner: TextIO) -> None:
        self.inner = inner

    def write(self, text: str) -> int:
        self.inner.write(for_terminal(text))
        return len(text)

    def flush(self) -> None:
        self.inner.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self.inner.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.inner, "encoding", "utf-8")


@contextlib.contextmanager
def terminal_stdout() -> Iterator[TextIO]:
    """Standard output, guarded by :class:`TerminalStream` while it is a terminal (text
    written to a file or a pipe is left as it is: data, not display)."""
    out = sys.stdout
    if not _is_terminal(out):
        yield out
        return
    guarded = TerminalStream(out)
    with contextlib.redirect_stdout(guarded):  # type: ignore[type-var]
        try:
            yield guarded  # type: ignore[misc]
        finally:
            guarded.flush()


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False
