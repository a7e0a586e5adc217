"""Concurrency limiter and the OData nextLink pager."""

from __future__ import annotations

import asyncio

import pytest

from shared.http import BUSINESS_CENTRAL, DATAVERSE, ConcurrencyLimiter, NextLinkPager, PagingError, iterate_pages
from shared.http.paging import page_items


async def test_at_most_the_limit_runs_at_once_per_target() -> None:
    limiter = ConcurrencyLimiter({BUSINESS_CENTRAL: 5, DATAVERSE: 3})

    async def work(target: str) -> None:
        async with limiter.slot(target):
            await asyncio.sleep(0.001)

    await asyncio.gather(*(work(BUSINESS_CENTRAL) for _ in range(40)), *(work(DATAVERSE) for _ in range(40)))

    assert limiter.peak(BUSINESS_CENTRAL) == 5 and limiter.peak(DATAVERSE) == 3
    assert limiter.in_use(BUSINESS_CENTRAL) == 0


async def test_slot_is_released_on_error() -> None:
    limiter = ConcurrencyLimiter({"x": 1})
    with pytest.raises(RuntimeError):
        async with limiter.slot("x"):
            raise RuntimeError("boom")
    async with asyncio.timeout(1):
        async with limiter.slot("x"):
            assert limiter.in_use("x") == 1


def test_unknown_target_and_bad_limits() -> None:
    assert ConcurrencyLimiter().limit(BUSINESS_CENTRAL) == 5
    with pytest.raises(KeyError, match="no concurrency limit"):
        ConcurrencyLimiter().limit("busines_central")
    assert ConcurrencyLimiter(default=2).limit("anything") == 2
    with pytest.raises(ValueError, match="at least 1"):
        ConcurrencyLimiter({DATAVERSE: 0})


def test_pager_follows_links_until_the_last_page() -> None:
    pager = NextLinkPager("https://org/api/data/v9.2/accounts")
    assert pager.advance({"value": [], "@odata.nextLink": "https://org/api/data/v9.2/accounts?$skiptoken=1"}) \
        == "https://org/api/data/v9.2/accounts?$skiptoken=1"
    assert pager.advance({"value": [], "@odata.deltaLink": "https://org/d?$deltatoken=9"}) is None
    assert pager.pages == 2 and pager.delta_link == "https://org/d?$deltatoken=9"


def test_pager_resolves_relative_links() -> None:
    pager = NextLinkPager()
    nxt = pager.advance({"@odata.nextLink": "customers?$skiptoken=5"}, "https://bc/api/v2.0/companies(1)/customers")
    assert nxt == "https://bc/api/v2.0/companies(1)/customers?$skiptoken=5"


def test_repeated_link_is_an_error() -> None:
    pager = NextLinkPager("https://s/a")
    pager.advance({"@odata.nextLink": "https://s/a?p=2"})
    with pytest.raises(PagingError, match="repeated"):
        pager.advance({"@odata.nextLink": "https://s/a?p=2"})
    with pytest.raises(PagingError, match="repeated"):
        NextLinkPager("https://s/a").advance({"@odata.nextLink": "https://s/a"})  # points at itself


@pytest.mark.parametrize("body", [{"@odata.nextLink": 5}, {"@odata.nextLink": ""}, {"@odata.deltaLink": 1}, [1]])
def test_malformed_pages_are_errors(body: object) -> None:
    with pytest.raises(PagingError):
        NextLinkPager().advance(body)  # type: ignore[arg-type]


def test_page_items_checks_the_collection() -> None:
    assert page_items({"value": [{"id": 1}]}) == [{"id": 1}]
    for bad in ({"value": None}, {}, {"value": [1]}):
        with pytest.raises(PagingError, match="not an OData collection"):
            page_items(bad)


def test_max_pages_guard_and_reset() -> None:
    pager = NextLinkPager(max_pages=2)
    pager.advance({"@odata.nextLink": "https://s/1"})
    with pytest.raises(PagingError, match="more than 2 pages"):
        pager.advance({"@odata.nextLink": "https://s/2"})
    pager.reset("https://s/0")
    assert pager.pages == 0 and pager.advance({"@odata.nextLink": "https://s/1"}) == "https://s/1"


async def test_iterate_pages_fetches_lazily() -> None:
    pages = {"https://s/p1": {"value": [1], "@odata.nextLink": "https://s/p2"}, "https://s/p2": {"value": [2]}}
    fetched: list[str] = []

    async def fetch(url: str) -> dict:
        fetched.append(url)
        return pages[url]

    stream = iterate_pages(fetch, "https://s/p1")
    first = await anext(stream)
    assert first["value"] == [1] and fetched == ["https://s/p1"]
    assert [p["value"] async for p in stream] == [[2]]
