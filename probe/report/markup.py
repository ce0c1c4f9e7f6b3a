"""A minimal HTML/SVG element builder on markupsafe, which escapes by construction.

Responsibility: turning element names, attributes and children into markup. Escaping itself
is markupsafe's (the library Jinja2 is built on): :class:`~markupsafe.Markup` marks text that
is already safe (``Markup + str`` escapes the plain operand) and :func:`esc` escapes everything
else. :func:`el` builds an element, escaping every attribute value and every child that is not
Markup. Renderers never paste untrusted text into markup with f-strings: everything from the
network goes through :func:`esc` or :func:`el`. Attribute *names* and element names are always
literals in our code.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from markupsafe import Markup, escape

__all__ = ["Markup", "el", "esc", "join"]

_VOID = frozenset({"br", "hr", "img", "input", "link", "meta", "col"})


def esc(value: object) -> Markup:
    """Escape text for element content or a quoted attribute (Markup passes through; None is
    the empty string)."""
    return escape("" if value is None else value)


def _children(children: Iterable[object]) -> Iterable[str]:
    for child in children:
        if child is None or child is False:
            continue
        if isinstance(child, str):  # Markup is a str: escaped only when plain
            yield esc(child)
        elif isinstance(child, Iterable):
            yield from _children(child)
        else:
            yield esc(child)


def el(name: str, attrs: Mapping[str, object] | None = None, *children: object) -> Markup:
    """``<name attrs>children</name>``; None/False attributes are left out, True is bare."""
    parts = ["<", name]
    for key, value in (attrs or {}).items():
        if value is None or value is False:
            continue
        if value is True:
            parts.append(f" {key}")
        else:
            text = f"{value:.1f}" if isinstance(value, float) else str(value)
            parts.append(f' {key}="{escape(text)}"')
    parts.append(">")
    if name in _VOID:
        return Markup("".join(parts))
    parts.extend(_children(children))
    parts.append(f"</{name}>")
    return Markup("".join(parts))


def join(items: Iterable[object]) -> Markup:
    """The items one after the other, each escaped unless it is Markup."""
    return Markup("".join(_children(items)))
