"""Instance annotations the Web API adds when asked with `Prefer: odata.include-annotations="…"` (Microsoft
Learn, "Compose HTTP requests and handle errors" → "Request annotations"; "Select columns" → "Formatted values",
"Lookup property data"; "Count rows"; "Page results using FetchXml").

The preference names terms to include: `*`, exact names, comma lists inside the quotes, and patterns ending in
`*` (`OData.Community.Display.V1.*`, `Microsoft.PowerApps.CDS.ErrorDetails*`). OData 4.0 also lets a term be
excluded with a leading `-` (Part 1 §8.2.8.4); that is applied too (unconfirmed for Dataverse). Only the
requested terms are returned, and `Preference-Applied` repeats the preference as sent.

Formatted values (`<property>@OData.Community.Display.V1.FormattedValue`): option set and status labels (the
schema's labels), "Yes"/"No" for booleans, the related record's primary name for lookups, money with the record's
currency symbol and two decimals ("$20,000.00"), whole numbers with group separators ("1,234"), date/times as
"4/7/2023 2:59 PM". The documentation shows these forms for an en-US user; the emulator formats every value as
that user in UTC (unconfirmed: the service uses the calling user's language, time zone and currency format),
decimals with two places and negative money as "-$5.00" (both unconfirmed).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

from emulators.dataverse.payload import LOGICAL_ANNOTATION, parse_datetime
from emulators.dataverse.relationships import single_valued
from emulators.dataverse.schema import Attr, TableDef

if TYPE_CHECKING:
    from emulators.dataverse.core import Emulator

FORMATTED = "OData.Community.Display.V1.FormattedValue"
NAVIGATION = "Microsoft.Dynamics.CRM.associatednavigationproperty"
LOGICAL = "Microsoft.Dynamics.CRM.lookuplogicalname"
TOTAL = "Microsoft.Dynamics.CRM.totalrecordcount"
TOTAL_EXCEEDED = "Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"
PAGING_COOKIE = "Microsoft.Dynamics.CRM.fetchxmlpagingcookie"
MORE_RECORDS = "Microsoft.Dynamics.CRM.morerecords"
COUNT_LIMIT = 5000  # @odata.count and totalrecordcount stop at 5,000 (Microsoft Learn, "Count rows using OData")
PREFERENCE = "odata.include-annotations"


@dataclass(frozen=True)
class Annotations:
    """The terms a request asked for. Truthy; requests without the preference have None instead."""

    raw: str  # the preference value without its quotes, echoed in Preference-Applied
    include: tuple[str, ...]
    exclude: tuple[str, ...]

    def wants(self, term: str) -> bool:
        return _wants(self.include, self.exclude, term)

    @property
    def applied(self) -> str:
        return f'{PREFERENCE}="{self.raw}"'

    @property
    def per_value(self) -> tuple[bool, bool, bool]:
        """(formatted values, associated navigation property, lookup logical name) wanted."""
        return self.wants(FORMATTED), self.wants(NAVIGATION), self.wants(LOGICAL)


# Callers that predate the preference parsing pass `True` for "everything".
ALL = Annotations("*", ("*",), ())


def requested(prefs: dict[str, str | None]) -> Annotations | None:
    """The annotations a request's `Prefer` header asks for, or None."""
    value = prefs.get(PREFERENCE)
    if value is None:
        return None
    return parse(value)


@lru_cache(maxsize=256)  # bounded: the text comes from clients
def parse(value: str) -> Annotations:
    raw = value.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        raw = raw[1:-1]
    terms = [t.strip() for t in raw.split(",") if t.strip()]
    return Annotations(raw, tuple(t for t in terms if not t.startswith("-")),
                       tuple(t[1:] for t in terms if t.startswith("-")))


def _match(pattern: str, term: str) -> bool:
    if pattern.endswith("*"):
        return term.startswith(pattern[:-1])
    return pattern == term


@lru_cache(maxsize=4096)
def _wants(include: tuple[str, ...], exclude: tuple[str, ...], term: str) -> bool:
    if any(_match(p, term) for p in exclude):
        return False
    return any(_match(p, term) for p in include)


def applied(ann: Annotations | None) -> list[str]:
    """The Preference-Applied entry for the annotations (none when the preference was absent)."""
    return [ann.applied] if ann else []


def collection_counts(ann: Annotations | None, count: int | None, total: int) -> dict[str, Any]:
    """`@Microsoft.Dynamics.CRM.totalrecordcount` (-1 without a count request) and `…limitexceeded`."""
    if not ann:
        return {}
    out: dict[str, Any] = {}
    if ann.wants(TOTAL):
        out["@" + TOTAL] = -1 if count is None else min(count, COUNT_LIMIT)
    if ann.wants(TOTAL_EXCEEDED):
        out["@" + TOTAL_EXCEEDED] = count is not None and total > COUNT_LIMIT
    return out


@cache
def _navigation(logical: str) -> dict[tuple[str, str], str]:
    """(lookup column, target table) → the single-valued navigation property (relationships.py)."""
    return {(r.attribute, r.referenced): nav for nav, r in single_valued(logical).items()}


def navigation_property(table: TableDef, attr: Attr, target: str | None) -> str | None:
    return _navigation(table.logical).get((attr.name, target or (attr.targets[0] if attr.targets else "")))


class Formatter:
    """Adds the requested per-value annotations to rendered rows; caches what it looks up per request."""

    def __init__(self, emu: Emulator, ann: Annotations) -> None:
        self.emu = emu
        self.formatted, self.navigation, self.logical = ann.per_value
        self._names: dict[tuple[str, str], str | None] = {}
        self._currency: dict[str | None, tuple[str, int]] = {}

    def annotate(self, table: TableDef, row: dict[str, Any], out: dict[str, Any]) -> dict[str, Any]:
        """`out` (a rendered row) with each value's annotations placed just before it, as the service does."""
        if not (self.formatted or self.navigation or self.logical):
            return out
        result: dict[str, Any] = {}
        for key, value in out.items():
            if not key.startswith("@"):
                attr = table.by_field(key)
                if attr is not None:
                    self._value_annotations(table, attr, key, value, row, result)
            result[key] = value
        return result

    def _value_annotations(self, table: TableDef, attr: Attr, key: str, value: Any, row: dict[str, Any],
                           result: dict[str, Any]) -> None:
        if value is None:
            return  # null values carry no annotations
        if attr.type == "lookup":
            target = row.get(key + LOGICAL_ANNOTATION) or (attr.targets[0] if attr.targets else None)
            if self.formatted and (name := self.primary_name(target, value)) is not None:
                result[f"{key}@{FORMATTED}"] = name
            if self.navigation and (nav := navigation_property(table, attr, target)):
                result[f"{key}@{NAVIGATION}"] = nav
            if self.logical and target:
                result[f"{key}@{LOGICAL}"] = target
            return
        if self.formatted and (text := self.format_value(attr, value, row)) is not None:
            result[f"{key}@{FORMATTED}"] = text

    def format_value(self, attr: Attr, value: Any, row: dict[str, Any] | None = None) -> str | None:
        t = attr.type
        if t == "option":
            return attr.label(value)
        if t == "bool":
            return "Yes" if value else "No"
        if t in ("int", "bigint"):
            return f"{value:,}"
        if t == "decimal":
            return f"{value:,.2f}"
        if t == "money":
            symbol, precision = self.currency((row or {}).get("_transactioncurrencyid_value"))
            return money(value, symbol, precision)
        if t == "datetime":
            return format_datetime(value)
        return None

    def primary_name(self, logical: str | None, rid: str) -> str | None:
        if logical is None:
            return None
        cache_key = (logical, rid)
        if cache_key not in self._names:
            target = self.emu.logical.get(logical)
            found = self.emu.store.table(target.entity_set).find(rid) if target else None
            name_field = target.attrs[target.primary_name].field if target else ""
            self._names[cache_key] = found.get(name_field) if found else None
        return self._names[cache_key]

    def currency(self, currency_id: str | None) -> tuple[str, int]:
        """(symbol, precision) of a record's currency; the base currency (exchange rate 1) when it has none."""
        if currency_id not in self._currency:
            rows = self.emu.store.table("transactioncurrencies")
            found = rows.find(currency_id) if currency_id else None
            if found is None:
                found = next((r for r in rows.all() if r.get("exchangerate") == 1), None)
            symbol = (found or {}).get("currencysymbol") or "$"
            precision = (found or {}).get("currencyprecision")
            self._currency[currency_id] = (symbol, precision if isinstance(precision, int) else 2)
        return self._currency[currency_id]


def money(value: float, symbol: str, precision: int = 2) -> str:
    sign = "-" if value < 0 else ""
    return f"{sign}{symbol}{abs(value):,.{precision}f}"


def format_datetime(value: str | dt.datetime) -> str | None:
    """`2023-04-07T21:59:01Z` → `4/7/2023 9:59 PM` (en-US short date and time; UTC, unconfirmed)."""
    when = parse_datetime(value) if isinstance(value, str) else value
    if when is None:
        return None
    hour = when.hour % 12 or 12
    return f"{when.month}/{when.day}/{when.year} {hour}:{when.minute:02d} {'AM' if when.hour < 12 else 'PM'}"
