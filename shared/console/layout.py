"""The frame every console page shares: head, navigation, who is signed in, the notice area, and the response
headers that keep the page to itself.

The page carries its stylesheet and its one script inline, allowed by their SHA-256 in the
Content-Security-Policy (nothing else may run or load: no third-party code, no inline event handlers, no
`style` attributes). Links are absolute paths under the console's root as the request reached it (`/api/console`
with the host's default route prefix), so a page works wherever the Function App is served.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from shared.admin.identity import Access, Caller
from shared.console.markup import Child, Html, el, raw

STATIC = Path(__file__).resolve().parent / "static"
SECTIONS = (("overview", "Overview", ""), ("jobs", "Jobs", "jobs"), ("errors", "Errors", "errors"),
            ("records", "Record", "records"), ("reconcile", "Reconcile", "reconcile"))


@cache
def asset(name: str) -> str:
    return (STATIC / name).read_text(encoding="utf-8")


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


@cache
def security_headers() -> dict[str, str]:
    """No framing, no sniffing, no caching (pages show live state, and a key-only door puts the key in the
    address), no Referer (ditto), and only our own inline style and script."""
    policy = ("default-src 'none'; "
              f"style-src {_sha256(asset('console.css'))}; script-src {_sha256(asset('console.js'))}; "
              "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
    return {"Content-Security-Policy": policy, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store", "X-Frame-Options": "DENY"}


@dataclass(frozen=True)
class Context:
    """What a page needs from its request: where the console lives, who asks, what the app runs."""

    root: str                       # the console's path, e.g. /api/console
    caller: Caller
    pack: str = ""                  # "bc-sales 1.0.0"
    query: Mapping[str, str] = field(default_factory=dict)
    route: Mapping[str, str] = field(default_factory=dict)

    @property
    def can_operate(self) -> bool:
        """Whether to offer buttons that change something (the action itself checks again)."""
        return self.caller.may(Access.OPERATE)

    def url(self, path: str = "", **params: Any) -> str:
        """The console page `path` (segments already quoted with `segment`), with query `params` (None: left out)."""
        base = f"{self.root}/{path}" if path else self.root
        given = {k: v for k, v in params.items() if v is not None and v != ""}
        return f"{base}?{urlencode(given)}" if given else base


def segment(value: str) -> str:
    """One path segment (a mapping name, an id) quoted for a URL."""
    return quote(value, safe="")


@dataclass
class Page:
    title: str
    body: Html
    section: str = ""
    status: int = 200


def action(ctx: Context, name: str, label: str, *, fields: Mapping[str, Any] | None = None,
           kind: str = "", busy: str | None = None, extra: Child = None) -> Html:
    """A button that POSTs `fields` to the action `name` (nothing for a caller who may only read)."""
    if not ctx.can_operate:
        return Html("")
    hidden = [el("input", type="hidden", name=k, value=v) for k, v in (fields or {}).items() if v is not None]
    return el("form", *hidden, extra, el("button", label, type="submit", class_=kind or None, data_busy=busy),
              method="post", action=ctx.url(f"actions/{name}"), class_="inline")


def document(page: Page, ctx: Context) -> str:
    """The whole HTML document of `page`."""
    nav = [el("a", label, href=ctx.url(path), class_="here" if key == page.section else None)
           for key, label, path in SECTIONS]
    role = "operator" if ctx.can_operate else "viewer"
    header = el("header", el("span", "dualsync", class_="brand"), el("span", ctx.pack, class_="muted"),
                el("nav", nav), el("span", f"{ctx.caller.name} · {role}", class_="who"))
    body = el("body", header,
              el("main", el("div", id="notice", role="status", aria_live="polite", hidden=True),
                 el("h1", page.title), page.body),
              el("script", raw(asset("console.js"))))
    head = el("head", el("meta", charset="utf-8"), el("meta", name="viewport", content="width=device-width"),
              el("meta", name="robots", content="noindex"),
              el("title", f"{page.title} · dualsync"), el("style", raw(asset("console.css"))))
    return "<!doctype html>\n" + str(el("html", head, body, lang="en"))


def error_page(status: int, code: str, message: str) -> Page:
    return Page(f"{status} · {code}", el("p", message, class_="notice error"), status=status)


def table(headers: list[Child], rows: list[list[Child]], *, numeric: frozenset[int] = frozenset(),
          empty: str = "Nothing to show.", **attributes: Any) -> Html:
    """A table; `numeric` column indexes are right-aligned."""
    if not rows:
        return el("p", empty, class_="muted")
    head = el("tr", [el("th", h, class_="num" if i in numeric else None) for i, h in enumerate(headers)])
    body = [el("tr", [el("td", c, class_="num" if i in numeric else None) for i, c in enumerate(row)])
            for row in rows]
    return el("table", el("thead", head), el("tbody", body), **attributes)


def facts(items: list[tuple[str, Child]]) -> Html:
    return el("dl", [(el("dt", k), el("dd", v)) for k, v in items], class_="facts")
