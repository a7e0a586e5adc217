"""The OData `$filter` evaluator: the semantics both services apply, and clear errors."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.odata import ODataFilterError, evaluate_filter, filter_fields, format_filter, parse_filter

RECORD = {
    "displayName": "Adatum Corporation",
    "lastModifiedDateTime": "2024-05-01T10:00:00.123Z",
    "statecode": 0,
    "creditLimit": 1500.5,
    "accountid": "6D81597F-0000-4000-8000-000000000001",
    "blocked": False,
    "parent": None,
    "address": {"city": "Oslo"},
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("statecode eq 0", True),
        ("statecode ne 0", False),
        ("creditLimit gt 1500", True),
        ("creditLimit ge 1500.5", True),
        ("creditLimit lt 1500.5", False),
        ("creditLimit le 1500.5", True),
        ("contains(displayName,'atum')", True),
        ("startswith(displayName,'Adatum')", True),
        ("endswith(displayName,'Corp')", False),
        ("lastModifiedDateTime gt 2024-05-01T10:00:00Z", True),
        ("lastModifiedDateTime gt 2024-05-01T10:00:00.124Z", False),
        ("accountid eq 6d81597f-0000-4000-8000-000000000001", True),
        ("blocked eq false and statecode eq 0", True),
        ("blocked eq true or statecode eq 0", True),
        ("not (statecode eq 0)", False),
        ("parent eq null", True),
        ("parent ne null", False),
        ("missing eq null", True),
        ("parent gt 3", False),
        ("contains(parent,'x')", False),
        ("statecode in (1, 0)", True),
        ("address/city eq 'Oslo'", True),
        ("tolower(displayName) eq 'adatum corporation'", True),
    ],
)
def test_operators(text: str, expected: bool) -> None:
    assert evaluate_filter(text, RECORD) is expected


def test_strings_compare_exactly_unless_the_service_is_case_insensitive() -> None:
    assert not evaluate_filter("displayName eq 'adatum corporation'", RECORD)
    assert evaluate_filter("displayName eq 'adatum corporation'", RECORD, case_insensitive=True)
    assert evaluate_filter("contains(displayName,'ATUM')", RECORD, case_insensitive=True)


def test_aware_and_naive_datetimes_compare_as_utc() -> None:
    record = {"at": dt.datetime(2024, 1, 1, 12, 0)}
    assert evaluate_filter("at eq 2024-01-01T12:00:00Z", record)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty $filter"),
        ("statecode eq", "invalid $filter"),
        ("statecode eq 'zero'", "cannot compare"),
        ("displayName gt 3", "cannot compare"),
        ("statecode gt 2024-01-01T00:00:00Z", "not a date/time"),
        ("accountid eq 2024-01-01T00:00:00Z", "not a date/time"),
        ("substringof('a', displayName)", "Unknown function"),
        ("length(displayName, 'x') eq 1", "takes 1 arguments"),
    ],
)
def test_errors_are_clear(text: str, message: str) -> None:
    with pytest.raises(ODataFilterError, match=message.replace("$", r"\$")):
        evaluate_filter(text, RECORD)


def test_fields_referenced() -> None:
    assert filter_fields("statecode eq 0 and (contains(name,'a') or not (x/y eq null))") == {"statecode", "name", "x"}


names = st.sampled_from(["statecode", "name", "creditlimit", "accountnumber"])
literals = st.one_of(st.integers(-10**6, 10**6), st.text(alphabet="abcXYZ 'é-", max_size=8))


@st.composite
def filters(draw: st.DrawFn, depth: int = 0) -> str:
    if depth > 2 or draw(st.booleans()):
        value = draw(literals)
        lit = str(value) if isinstance(value, int) else "'" + value.replace("'", "''") + "'"
        return f"{draw(names)} {draw(st.sampled_from(['eq', 'ne', 'gt', 'le']))} {lit}"
    op = draw(st.sampled_from(["and", "or"]))
    return f"({draw(filters(depth + 1))}) {op} ({draw(filters(depth + 1))})"


records = st.fixed_dictionaries({
    "statecode": st.integers(-10, 10), "creditlimit": st.one_of(st.none(), st.integers(-10**6, 10**6)),
    "name": st.text(alphabet="abcXYZ 'é-", max_size=8), "accountnumber": st.one_of(st.none(), st.text(max_size=3)),
})


@given(filters(), records)
def test_printing_a_parsed_filter_keeps_its_meaning(text: str, record: dict) -> None:
    """What the mapping engine sends to an API means exactly what it evaluates in-process."""
    printed = format_filter(parse_filter(text))
    try:
        expected = evaluate_filter(text, record)
    except ODataFilterError:
        with pytest.raises(ODataFilterError):
            evaluate_filter(printed, record)
        return
    assert evaluate_filter(printed, record) == expected


def test_dates_held_as_text_compare_with_date_literals() -> None:
    record = {"orderDate": "2025-03-01", "postedAt": "2025-03-01T23:59:00Z"}
    assert evaluate_filter("orderDate ge 2025-03-01 and orderDate lt 2025-03-02", record)
    assert not evaluate_filter("orderDate gt 2025-03-01", record)
    assert evaluate_filter("postedAt le 2025-03-01", record)  # a datetime's date part, as OData's date()
    with pytest.raises(ODataFilterError, match="not a date"):
        evaluate_filter("orderDate eq 2025-03-01", {"orderDate": "soon"})


def test_enum_literals_parse_evaluate_and_print_back() -> None:
    # Finance and Operations writes enum members with their type; records hold the member name.
    text = ("PartyType eq Microsoft.Dynamics.DataEntities.DirPartyBaseType'Person' and "
            "Name eq 'Microsoft.Dynamics.DataEntities.NoYes''Yes'''")
    node = parse_filter(text)
    assert format_filter(node) == text  # sent to the service as written
    assert evaluate_filter(node, {"PartyType": "Person", "Name": "Microsoft.Dynamics.DataEntities.NoYes'Yes'"})
    assert not evaluate_filter(node, {"PartyType": "Organization", "Name": "x"})
    assert filter_fields(node) == {"PartyType", "Name"}


def test_pin_field_decides_a_field_the_service_does_not_have() -> None:
    from shared.odata import pin_field

    a, b = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
    text = f"(companyId eq '{a}' or companyId eq '{b}') and number eq 'X'"
    assert format_filter(pin_field(parse_filter(text), "companyId", a)) == "number eq 'X'"
    assert pin_field(parse_filter(f"companyId eq '{a}'"), "companyId", b) is False
    assert pin_field(parse_filter(f"companyId eq '{a}' or number eq 'X'"), "companyId", a) is True
    # Key order across companies: `(companyId gt a) or (companyId eq a and id gt r)`.
    keyset = f"(companyId gt {a}) or (companyId eq {a} and id gt {b})"
    assert format_filter(pin_field(parse_filter(keyset), "companyId", a)) == f"id gt {b}"
    assert pin_field(parse_filter(keyset), "companyId", b) is True
    assert format_filter(pin_field(parse_filter("not (companyId eq 'x') and n eq 1"), "companyId", "y")) == "n eq 1"
    with pytest.raises(ODataFilterError):
        pin_field(parse_filter("companyId eq number"), "companyId", a)
