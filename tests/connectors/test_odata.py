"""Pure OData pieces: literals and key segments (quoting, percent-encoding), query strings, datetimes, records."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.connectors.base import PermanentError
from shared.connectors.odata import (
    and_filters,
    check_guid,
    format_datetime,
    format_literal,
    key_segment,
    parse_datetime,
    query_string,
    to_record,
    with_fields,
)

# Characters that may appear raw in a key segment of a URL path; anything else must be percent-encoded.
_RAW_OK = re.compile(r"^[A-Za-z0-9_.~\-'(),=%]*$")


def test_string_literal_doubles_quotes() -> None:
    assert format_literal("O'Brien's") == "'O''Brien''s'"
    assert format_literal("") == "''"


def test_other_literals() -> None:
    guid = uuid.UUID("0e5e18ba-f320-4d57-ad14-475b349aae90")
    assert format_literal(guid) == "0e5e18ba-f320-4d57-ad14-475b349aae90"
    assert format_literal(True) == "true" and format_literal(False) == "false"
    assert format_literal(42) == "42" and format_literal(1.5) == "1.5" and format_literal(None) == "null"
    when = dt.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert format_literal(when) == "2024-05-01T10:00:00.123Z"
    with pytest.raises(PermanentError, match="no OData literal"):
        format_literal(float("nan"))
    with pytest.raises(PermanentError, match="cannot write"):
        format_literal(object())


def test_key_segment_examples() -> None:
    assert key_segment({"accountnumber": "ABC123"}) == "(accountnumber='ABC123')"
    assert key_segment({"firstname": "Joe", "emailaddress1": "a@b.c"}) == "(firstname='Joe',emailaddress1='a%40b.c')"
    assert key_segment({"accountnumber": "A/B 'C'"}) == "(accountnumber='A%2FB%20''C''')"
    assert key_segment({"code": "50%+#?&"}) == "(code='50%25%2B%23%3F%26')"


@given(st.text(min_size=1))
def test_key_segment_round_trips_and_never_leaks_reserved_characters(value: str) -> None:
    segment = key_segment({"name": value})
    assert _RAW_OK.match(segment), segment
    decoded = unquote(segment)
    assert decoded.startswith("(name='") and decoded.endswith("')")
    inner = decoded[len("(name='"):-2]
    # Every quote inside is doubled, so the literal cannot end early; undoubling gives the value back.
    assert re.fullmatch(r"(?:[^']|'')*", inner)
    assert inner.replace("''", "'") == value


@pytest.mark.parametrize("key", [{}, {"name": ""}, {"name": None}, {"bad name": "x"}, {"x) or (y": "1"}])
def test_bad_keys_are_refused_clearly(key: dict) -> None:
    with pytest.raises(PermanentError) as info:
        key_segment(key)
    assert info.value.code == "InvalidArgument"


def test_guid_check() -> None:
    assert check_guid("0E5E18BA-F320-4D57-AD14-475B349AAE90") == "0e5e18ba-f320-4d57-ad14-475b349aae90"
    with pytest.raises(PermanentError, match="not a GUID"):
        check_guid("1) or (true")


def test_datetime_literals_per_service() -> None:
    when = dt.datetime(2019, 8, 18, 22, 5, 51, 603999, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert format_datetime(when, "ms") == "2019-08-18T20:05:51.603Z"  # BC: milliseconds, cut not rounded
    assert format_datetime(when, "s") == "2019-08-18T20:05:51Z"  # Dataverse: whole seconds
    with pytest.raises(ValueError, match="timezone-aware"):
        format_datetime(dt.datetime(2024, 1, 1), "s")


@given(st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2999, 1, 1),
                    timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=-7, minutes=-30))])))
def test_datetime_literal_never_after_the_instant(when: dt.datetime) -> None:
    for precision, step in (("ms", dt.timedelta(milliseconds=1)), ("s", dt.timedelta(seconds=1))):
        parsed = parse_datetime(format_datetime(when, precision))  # type: ignore[arg-type]
        assert parsed is not None
        assert parsed <= when < parsed + step  # cutting only widens a `gt` query, never drops a record


def test_parse_datetime_forms() -> None:
    utc = dt.UTC
    assert parse_datetime("2024-05-01T10:00:00Z") == dt.datetime(2024, 5, 1, 10, tzinfo=utc)
    assert parse_datetime("2019-08-18T20:05:51.6033333Z") == dt.datetime(2019, 8, 18, 20, 5, 51, 603333, tzinfo=utc)
    assert parse_datetime("2024-05-01T12:00:00+02:00") == dt.datetime(2024, 5, 1, 10, tzinfo=utc)
    assert parse_datetime("2024-05-01T10:00:00").tzinfo is not None  # type: ignore[union-attr]
    assert parse_datetime("yesterday") is None and parse_datetime(None) is None and parse_datetime("") is None


def test_query_string() -> None:
    assert query_string() == ""
    q = query_string(select=["name", "accountid"], filter="name eq 'A&B + C' and modifiedon gt 2024-01-01T00:00:00Z",
                     orderby="modifiedon asc", top=5)
    assert q == ("?$select=name,accountid&$filter=name%20eq%20'A%26B%20%2B%20C'%20and%20modifiedon%20gt%20"
                 "2024-01-01T00:00:00Z&$orderby=modifiedon%20asc&$top=5")
    with pytest.raises(PermanentError):
        query_string(select=["name,evil"])


def test_filters_and_selects_compose() -> None:
    assert and_filters(None, None) is None
    assert and_filters("a eq 1", None) == "a eq 1"
    assert and_filters("a eq 1 or b eq 2", "c gt 3") == "(a eq 1 or b eq 2) and (c gt 3)"
    assert with_fields(None, ["id"]) is None
    assert with_fields(["name", "id"], ["id", "modifiedon"]) == ["name", "id", "modifiedon"]


def test_record_drops_odata_noise_and_reads_metadata() -> None:
    body = {"@odata.context": "…", "@odata.etag": 'W/"12"', "accountid": "A1", "name": "N",
            "_ownerid_value": "U", "_ownerid_value@Microsoft.Dynamics.CRM.lookuplogicalname": "systemuser",
            "x@odata.type": "#Edm.Decimal", "modifiedon": "2024-05-01T10:00:00Z", "_modifiedby_value": "U2"}
    record = to_record("accounts", body, id_field="accountid", modified_field="modifiedon",
                       modified_by_field="_modifiedby_value")
    assert record.id == "A1" and record.etag == 'W/"12"' and record.modified_by == "U2"
    assert record.modified_on == dt.datetime(2024, 5, 1, 10, tzinfo=dt.UTC)
    assert set(record.values) == {"accountid", "name", "_ownerid_value", "modifiedon", "_modifiedby_value",
                                  "_ownerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"}
    with pytest.raises(PermanentError, match="without 'accountid'"):
        to_record("accounts", {"name": "no id"}, id_field="accountid", modified_field="modifiedon")
