"""OData `@odata.nextLink` paging as a pure strategy: given a page body, what is the next URL?

Both Dataverse and Business Central page with an opaque next link that must be followed verbatim.
The pager never does I/O; a connector loops `fetch(url)` → `pager.advance(body, url)` until it returns
None. A server that hands back a link it already gave (a paging bug, or a proxy rewriting it) would loop
forever, so a repeated link is an error rather than a silent endless read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urljoin

NEXT_LINK = "@odata.nextLink"
DELTA_LINK = "@odata.deltaLink"


class PagingError(Exception):
    """The paged response broke the OData contract (repeated link, missing `value`, wrong types)."""


class NextLinkPager:
    """Tracks the links followed in one paged read; make a new pager (or `reset`) for each read."""

    def __init__(self, first_url: str | None = None, *, max_pages: int | None = None) -> None:
        self.max_pages = max_pages
        self.pages = 0
        self.delta_link: str | None = None
        self._seen: set[str] = set()
        if first_url is not None:
            self._seen.add(first_url)

    def reset(self, first_url: str | None = None) -> None:
        self.pages = 0
        self.delta_link = None
        self._seen = {first_url} if first_url is not None else set()

    def advance(self, body: Mapping[str, Any], current_url: str | None = None) -> str | None:
        """The next page's absolute URL, or None on the last page (which may carry a delta link).

        A relative next link is resolved against `current_url`, as OData allows.
        """
        if not isinstance(body, Mapping):
            raise PagingError(f"page body must be a JSON object, got {type(body).__name__}")
        self.pages += 1
        link = body.get(NEXT_LINK)
        delta = body.get(DELTA_LINK)
        if delta is not None:
            if not isinstance(delta, str):
                raise PagingError(f"{DELTA_LINK} must be a string, got {type(delta).__name__}")
            self.delta_link = delta
        if link is None:
            return None
        if not isinstance(link, str) or not link:
            raise PagingError(f"{NEXT_LINK} must be a non-empty string, got {link!r}")
        url = urljoin(current_url, link) if current_url else link
        if url in self._seen:
            raise PagingError(f"server repeated a next link after {self.pages} page(s): {url}")
        if self.max_pages is not None and self.pages >= self.max_pages:
            raise PagingError(f"more than {self.max_pages} pages; stopping")
        self._seen.add(url)
        return url


def page_items(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The records of a collection page (`value`), checked to be a list of objects."""
    value = body.get("value") if isinstance(body, Mapping) else None
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise PagingError("page is not an OData collection: `value` must be a list of objects")
    return value


async def iterate_pages(fetch: Callable[[str], Awaitable[Mapping[str, Any]]], first_url: str, *,
                        pager: NextLinkPager | None = None) -> AsyncIterator[Mapping[str, Any]]:
    """Yield each page body, fetching the next only when the previous one was consumed (memory bounded)."""
    pager = pager or NextLinkPager(first_url)
    url: str | None = first_url
    while url is not None:
        body = await fetch(url)
        next_url = pager.advance(body, url)
        yield body
        url = next_url
