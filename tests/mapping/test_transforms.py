"""Every transform forward and back, its failures, and round-trip properties."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from shared.mapping import TRANSFORMS, NotInvertibleError, TransformError
from shared.mapping.transforms import Transform, TransformContext

ADAPTER = TypeAdapter(Transform)


def t(**spec):
    return ADAPTER.validate_python(spec)


# (spec, input, forward output, inverse of the output or NotInvertibleError, inverse kind)
CASES = [
    ({"type": "uppercase"}, "Oslo gate 1", "OSLO GATE 1", "OSLO GATE 1", "normalising"),
    ({"type": "lowercase"}, "Ann@Contoso.COM", "ann@contoso.com", "ann@contoso.com", "normalising"),
    ({"type": "title_case"}, "aNN  marie", "Ann  Marie", "Ann  Marie", "normalising"),
    ({"type": "trim"}, "  C100 \t", "C100", "C100", "normalising"),
    ({"type": "trim", "chars": "-"}, "--C100-", "C100", "C100", "normalising"),
    ({"type": "substring", "start": 2, "length": 3}, "CON-01000", "N-0", NotInvertibleError, "none"),
    ({"type": "substring", "start": -3}, "CON-01000", "000", NotInvertibleError, "none"),
    ({"type": "replace", "old": "-", "new": "_"}, "US-001", "US_001", "US-001", "exact"),
    ({"type": "replace", "old": " "}, "a b", "ab", NotInvertibleError, "none"),
    ({"type": "regex_replace", "pattern": r"(\d+):\d+", "replacement": r"\1"}, "2:5", "2", NotInvertibleError,
     "none"),
    ({"type": "regex_match", "pattern": r"^[A-Z]{3}$"}, "EUR", "EUR", "EUR", "normalising"),
    ({"type": "regex_match", "pattern": r"CON-(\d+)-", "group": 1}, "CON-01000-BVRCPS", "01000",
     NotInvertibleError, "none"),
    ({"type": "remove_non_alphanumeric"}, "Jørgen O'Neil-2", "JørgenONeil2", "JørgenONeil2", "normalising"),
    ({"type": "remove_non_alphanumeric", "keep": " "}, "A. B!", "A B", "A B", "normalising"),
    ({"type": "date_format", "format": "%d.%m.%Y"}, "2024-02-29", "29.02.2024", "2024-02-29", "exact"),
    ({"type": "date_format", "format": "%Y%m%d"}, "2024-02-29T23:00:00Z", "20240229", "2024-02-29", "exact"),
    ({"type": "datetime_format", "format": "%d.%m.%Y %H:%M:%S", "timezone": "Europe/Oslo"},
     "2024-07-01T10:00:00Z", "01.07.2024 12:00:00", "2024-07-01T10:00:00Z", "exact"),
    ({"type": "decimal_format", "decimals": 2, "decimal_separator": ",", "thousands_separator": "."},
     1234567.5, "1.234.567,50", 1234567.5, "exact"),
    ({"type": "decimal_format", "decimals": 0}, -12.5, "-13", -13, "exact"),
    ({"type": "round", "decimals": 2}, 2.675, 2.68, 2.68, "normalising"),
    ({"type": "round", "decimals": 2, "mode": "down"}, "2.679", 2.67, 2.67, "normalising"),
    ({"type": "round"}, 2.5, 3, 3, "normalising"),
    ({"type": "round", "mode": "half_even"}, 2.5, 2, 2, "normalising"),
    ({"type": "extract_from_date", "part": "year"}, "2024-05-31", 2024, NotInvertibleError, "none"),
    ({"type": "extract_from_date", "part": "quarter"}, "2024-05-31T10:00:00Z", 2, NotInvertibleError, "none"),
    ({"type": "extract_from_date", "part": "weekday"}, "2024-05-31", 5, NotInvertibleError, "none"),
    ({"type": "extract_from_date", "part": "hour"}, "2024-05-31T10:30:00+02:00", 8, NotInvertibleError, "none"),
    ({"type": "unix_timestamp"}, "2024-01-01T00:00:01Z", 1704067201, "2024-01-01T00:00:01Z", "exact"),
    ({"type": "unix_timestamp", "unit": "ms"}, "1970-01-01T00:00:00.250Z", 250, "1970-01-01T00:00:00.250000Z",
     "exact"),
    ({"type": "split", "separator": " ", "maxsplit": 1, "from_end": True, "index": -2}, "Ann Marie Smith",
     "Ann Marie", NotInvertibleError, "none"),
    ({"type": "split", "separator": ";", "index": 5}, "a;b", None, NotInvertibleError, "none"),
]


def test_every_registered_transform_has_a_case():
    assert {spec["type"] for spec, *_ in CASES} | {"concat", "field_lookup"} == set(TRANSFORMS)


@pytest.mark.parametrize(("spec", "value", "forward", "back", "kind"), CASES,
                         ids=[f"{c[0]['type']}-{i}" for i, c in enumerate(CASES)])
def test_forward_and_inverse(spec, value, forward, back, kind):
    transform = t(**spec)
    assert transform.apply(value) == forward
    assert transform.inverse_kind() == kind
    if back is NotInvertibleError:
        with pytest.raises(NotInvertibleError):
            transform.inverse(forward)
    else:
        assert transform.inverse(forward) == back


def test_none_passes_through_value_transforms():
    for spec, *_ in CASES:
        assert t(**spec).apply(None) is None


def test_concat_joins_record_fields_and_skips_blanks():
    concat = t(type="concat", fields=["lastname"], separator=" ")
    assert concat.apply("Ann", TransformContext({"lastname": "Smith"})) == "Ann Smith"
    assert concat.apply("Ann", TransformContext({"lastname": None})) == "Ann"
    assert concat.apply(None, TransformContext({})) is None
    only_fields = t(type="concat", fields=["a", "b"], separator="-", include_value=False)
    assert only_fields.apply("ignored", TransformContext({"a": 1, "b": "x"})) == "1-x"
    with pytest.raises(NotInvertibleError):
        concat.inverse("Ann Smith")


def test_field_lookup_reads_the_expanded_related_record():
    lookup = t(type="field_lookup", relation="primarycontactid", field="emailaddress1")
    ctx = TransformContext({"primarycontactid": {"emailaddress1": "a@b.c"}})
    assert lookup.apply("whatever", ctx) == "a@b.c"
    assert lookup.apply(None, TransformContext({})) is None
    with pytest.raises(TransformError, match="not expanded"):
        t(type="field_lookup", relation="r", field="f", required=True).apply(1, TransformContext({}))
    with pytest.raises(TransformError, match="not an expanded record"):
        lookup.apply(1, TransformContext({"primarycontactid": "guid"}))


@pytest.mark.parametrize(("spec", "value", "message"), [
    ({"type": "uppercase"}, 42, "expects text"),
    ({"type": "regex_match", "pattern": "^[A-Z]{3}$"}, "EURO", "does not match"),
    ({"type": "date_format", "format": "%d.%m.%Y"}, "31/12/2024", "expects an ISO date"),
    ({"type": "datetime_format", "format": "%H:%M"}, "noon", "expects an ISO datetime"),
    ({"type": "round"}, "abc", "expects a number"),
    ({"type": "round"}, True, "expects a number"),
    ({"type": "decimal_format"}, float("nan"), "finite"),
    ({"type": "unix_timestamp"}, 17, "expects an ISO datetime"),
])
def test_bad_values_raise_transform_errors(spec, value, message):
    with pytest.raises(TransformError, match=message):
        t(**spec).apply(value)


def test_bad_inverse_inputs_raise_transform_errors():
    with pytest.raises(TransformError, match="does not match date format"):
        t(type="date_format", format="%d.%m.%Y").inverse("2024-01-01")
    with pytest.raises(TransformError, match="expects a number"):
        t(type="unix_timestamp").inverse("soon")
    with pytest.raises(TransformError, match="expects text"):
        t(type="decimal_format").inverse(12)


def test_regex_match_blank_on_no_match():
    assert t(type="regex_match", pattern="^X", on_no_match="blank").apply("Y") is None


@pytest.mark.parametrize("spec", [
    {"type": "regex_replace", "pattern": "(unclosed"},
    {"type": "substring", "length": -1},
    {"type": "datetime_format", "format": "%H", "timezone": "Mars/Olympus"},
    {"type": "date_format", "format": "no directives"},
    {"type": "decimal_format", "decimals": 40},
    {"type": "split", "separator": ""},
    {"type": "uppercase", "colour": "red"},
    {"type": "shout"},
])
def test_invalid_transform_specs_are_rejected(spec):
    with pytest.raises(ValidationError):
        t(**spec)


# --- properties -------------------------------------------------------------------------------------

datetimes = st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 1, 1)).map(
    lambda d: d.replace(microsecond=0).isoformat() + "Z")


@given(datetimes)
def test_unix_timestamp_round_trips(value):
    for unit in ("s", "ms"):
        transform = t(type="unix_timestamp", unit=unit)
        assert transform.inverse(transform.apply(value)) == value


@given(datetimes, st.sampled_from(["UTC", "Europe/Oslo", "America/New_York", "Asia/Kolkata"]))
def test_datetime_format_round_trips(value, zone):
    transform = t(type="datetime_format", format="%Y-%m-%d %H:%M:%S %z", timezone=zone)
    assert transform.inverse(transform.apply(value)) == value


@given(st.dates())
def test_date_format_round_trips(day):
    transform = t(type="date_format", format="%d/%m/%Y")
    assert transform.inverse(transform.apply(day.isoformat())) == day.isoformat()


@given(st.decimals(min_value=-10**12, max_value=10**12, places=2, allow_nan=False), st.sampled_from([",", "."]))
def test_decimal_format_round_trips(number, separator):
    value = float(number)
    thousands = "." if separator == "," else ","
    transform = t(type="decimal_format", decimals=2, decimal_separator=separator, thousands_separator=thousands)
    assert transform.inverse(transform.apply(value)) == value


@given(st.text(alphabet=st.characters(blacklist_characters="_"), max_size=30))
def test_replace_round_trips_when_the_replacement_is_absent(text):
    transform = t(type="replace", old="-", new="_")
    assert transform.inverse(transform.apply(text)) == text


@given(st.text(max_size=30))
def test_normalising_transforms_are_projections(text):
    for spec in ({"type": "uppercase"}, {"type": "lowercase"}, {"type": "trim"}, {"type": "title_case"},
                 {"type": "remove_non_alphanumeric"}):
        transform = t(**spec)
        once = transform.apply(text)
        assert transform.apply(transform.inverse(once)) == once
