"""Read options and key-set paging shared by both emulators."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulators.common.query import QueryError, parse_query, project, run_query
from shared.odata import evaluate_filter

FIELDS = {"id", "n", "name"}


def _page_all(rows: list[dict], params: dict[str, str], page_size: int, mutate=None) -> list[str]:
    q = parse_query(params, FIELDS)
    token, seen = None, []
    while True:
        page = run_query(rows, q, key="id", page_size=page_size, token=token)
        seen += [r["id"] for r in page.rows]
        if mutate:
            mutate(rows)
        token = page.next_token
        if token is None:
            return seen


rows_strategy = st.lists(
    st.fixed_dictionaries({"n": st.integers(0, 3), "name": st.one_of(st.none(), st.sampled_from("abc"))}),
    max_size=40,
).map(lambda rs: [{"id": f"{i:04d}", **r} for i, r in enumerate(rs)])


@given(rows_strategy, st.integers(1, 7), st.sampled_from(["n", "n desc", "name desc,n", "name"]),
       st.one_of(st.none(), st.integers(0, 50)))
def test_paging_returns_every_matching_row_once_in_order(rows, page_size, orderby, top) -> None:
    params = {"$orderby": orderby, "$filter": "n ne 2"}
    if top is not None:
        params["$top"] = str(top)
    one_page = run_query(rows, parse_query(params, FIELDS), key="id", page_size=10**6).rows
    assert _page_all(rows, params, page_size) == [r["id"] for r in one_page]


def test_rows_inserted_while_paging_do_not_shift_later_pages() -> None:
    rows = [{"id": f"{i:04d}", "n": i, "name": "x"} for i in range(10)]

    def insert_early_row(rs: list[dict]) -> None:
        rs.append({"id": f"a{len(rs):03d}", "n": -1, "name": "x"})  # sorts before everything already read

    seen = _page_all(rows, {"$orderby": "n"}, 3, mutate=insert_early_row)
    assert seen == [f"{i:04d}" for i in range(10)]


def test_count_is_the_whole_match_not_the_page() -> None:
    rows = [{"id": f"{i:04d}", "n": i % 2, "name": None} for i in range(9)]
    page = run_query(rows, parse_query({"$count": "true", "$filter": "n eq 1"}, FIELDS), key="id", page_size=2)
    assert page.count == 4 and len(page.rows) == 2 and page.next_token


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"$filter": "nope eq 1"}, "nope"),
        ({"$filter": "n eq"}, "invalid"),
        ({"$select": "id,ghost"}, "ghost"),
        ({"$orderby": "n sideways"}, "Invalid \\$orderby"),
        ({"$orderby": "ghost"}, "ghost"),
        ({"$top": "-1"}, "\\$top"),
        ({"$count": "maybe"}, "\\$count"),
    ],
)
def test_bad_options_are_rejected_with_a_message(params: dict[str, str], message: str) -> None:
    with pytest.raises(QueryError, match=message):
        parse_query(params, FIELDS)


def test_a_forged_token_is_rejected() -> None:
    with pytest.raises(QueryError, match="skip token"):
        run_query([], parse_query({}, FIELDS), key="id", page_size=1, token="not-a-token")


def test_select_keeps_the_fields_every_response_carries() -> None:
    assert project({"id": 1, "n": 2, "name": 3, "@odata.etag": "x"}, ["n"], always=["@odata.etag"]) == {
        "n": 2, "@odata.etag": "x"}


key_rows = st.lists(st.fixed_dictionaries({"name": st.one_of(st.none(), st.sampled_from(["a", "A", "b", "c'd"])),
                                           "n": st.integers(0, 2)}), max_size=30)
eq_chains = st.lists(st.sampled_from(["a", "b", "B", "c'd", "zz"]), min_size=1, max_size=4)


@given(key_rows, eq_chains, st.booleans(), st.booleans())
def test_key_lookups_by_or_chain_or_in_find_exactly_what_a_full_scan_finds(rows, names, use_in, ci) -> None:
    """The emulators' stand-in for key indexes narrows rows first; it must never change the answer."""
    from shared.odata import evaluate_filter

    rows = [{"id": f"{i:04d}", **r} for i, r in enumerate(rows)]
    lits = ["'" + n.replace("'", "''") + "'" for n in names]
    if use_in and len(lits) == 1:
        lits *= 2  # odata-query reads a one-item `in ('a')` as a parenthesised value
    text = f"name in ({', '.join(lits)})" if use_in else " or ".join(f"(name eq {lit} and n ne 9)" for lit in lits)
    q = parse_query({"$filter": text}, FIELDS)
    found = [r["id"] for r in run_query(rows, q, key="id", page_size=1000, case_insensitive=ci).rows]
    assert found == [r["id"] for r in rows if evaluate_filter(text, r, case_insensitive=ci)]


_codes = st.sampled_from(["usmf", "demf", "USMF", "x'y"])
_numbers = st.sampled_from(["C-1", "c-1", "C-2", "D/3", ""])


@given(rows=st.lists(st.fixed_dictionaries({"company": _codes, "number": _numbers, "n": st.integers(0, 3)}),
                     max_size=30),
       wanted=st.lists(st.tuples(_codes, _numbers), min_size=1, max_size=4), extra=st.booleans())
def test_narrowing_by_key_conditions_never_drops_a_matching_row(rows, wanted, extra) -> None:
    # The shape of a match or natural-key query: (company and number) or (company and number) …, maybe with a
    # condition that is not an equality on text; narrowing must only ever skip rows the filter rejects.
    def lit(v: str) -> str:
        return "'" + v.replace("'", "''") + "'"

    text = " or ".join(f"(company eq {lit(c)} and number eq {lit(n)})" for c, n in wanted)
    if extra:
        text = f"({text}) and n ge 1"
    keyed = [{**r, "id": str(i)} for i, r in enumerate(rows)]
    q = parse_query({"$filter": text}, {"company", "number", "n", "id"})
    page = run_query(keyed, q, key="id", page_size=100)
    expected = [r for r in keyed if evaluate_filter(q.filter, r, case_insensitive=True)]
    assert sorted(r["id"] for r in page.rows) == sorted(r["id"] for r in expected)
