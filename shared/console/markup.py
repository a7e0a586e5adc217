"""HTML built from Python values with escaping by default: the one rule that keeps the console free of
injection. Every string that is not already `Html` is escaped when it is placed in a page (text and attribute
values alike), so a record's name, an error message from Dataverse or a mapping name from a pack can say
`<script>` and still show as text. `Html` is what this module (or `raw`, for the console's own constant
markup) produced; nothing built from request or record data should ever be passed to `raw`.

    el("a", "Retry <all>", href="errors?mapping=x&y")   # <a href="errors?mapping=x&amp;y">Retry &lt;all&gt;</a>
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any

# Elements without content or closing tag.
_VOID = frozenset({"br", "hr", "img", "input", "meta", "link"})


class Html(str):
    """Markup that is safe as is (built here); plain `str` values are text, escaped on use."""

    __slots__ = ()

    def __add__(self, other: object) -> Html:  # markup + text escapes the text, as markupsafe does
        return Html(str.__add__(self, esc(other)))


Child = Any  # str (text), Html, a number, None (nothing) or an iterable of these


def raw(markup: str) -> Html:
    """Trusted markup written in this codebase (constant CSS/SVG fragments), never data."""
    return Html(markup)


def esc(value: Any) -> Html:
    """`value` as safe markup: `Html` as is, None as nothing, anything else as escaped text."""
    if isinstance(value, Html):
        return value
    if value is None:
        return Html("")
    return Html(html.escape(str(value), quote=True))


def join(children: Iterable[Child]) -> Html:
    return Html("".join(_flatten(children)))


def _flatten(children: Iterable[Child]) -> Iterable[str]:
    for child in children:
        if isinstance(child, str | int | float) or child is None:
            yield esc(child)
        else:
            yield from _flatten(child)


def _attribute(name: str, value: Any) -> str:
    # Python spells reserved words with a trailing underscore (class_, for_) and dashes as underscores.
    name = name.rstrip("_").replace("_", "-")
    if value is True:
        return f" {name}"
    return f' {name}="{esc(value)}"'


def el(tag: str, *children: Child, **attributes: Any) -> Html:
    """`<tag attributes>children</tag>`; attributes set to None or False are left out, True stands alone."""
    attrs = "".join(_attribute(k, v) for k, v in attributes.items() if v is not None and v is not False)
    if tag in _VOID:
        return Html(f"<{tag}{attrs}>")
    return Html(f"<{tag}{attrs}>{join(children)}</{tag}>")
