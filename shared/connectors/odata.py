"""Pure OData pieces both connectors share: literals, key segments, query strings, datetimes and records.

No I/O here, so every rule (quote doubling, percent-encoding, datetime precision) is unit-tested on its own.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import quote

from shared.connectors.base import PermanentError, Record

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Characters left as they are in query values: OData syntax that is legal in a query component. `+` is NOT
# among them: servers decode a raw `+` as a space, which would turn `+01:00` into garbage.
_QUERY_SAFE = "$(),'/:=@*"
_FRACTION = re.compile(r"(\.\d{1,6})\d*")


def invalid(message: str) -> PermanentError:
    """The error for arguments no service could accept (a malformed id, entity or key); not retryable."""
    return PermanentError(message, code="InvalidArgument")


def check_identifier(name: str, what: str = "entity set") -> str:
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise invalid(f"{what} name {name!r} is not an OData identifier")
    return name


def check_guid(value: Any, what: str = "record id") -> str:
    """A record id as a lower-case GUID string; both services key records by GUID."""
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise invalid(f"{what} {value!r} is not a GUID") from None


def format_datetime(value: dt.datetime, precision: Literal["s", "ms"]) -> str:
    """A `DateTimeOffset` literal in UTC with a `Z`, unquoted as both services expect in `$filter`.

    Sub-precision digits are cut, not rounded: with `gt`/`ge` that can only widen the result, never
    drop a record. Naive datetimes are refused — their meaning depends on the machine's zone.
    """
    if not isinstance(value, dt.datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"a timezone-aware datetime is required, got {value!r}")
    utc = value.astimezone(dt.UTC)
    if precision == "s":
        return utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_datetime(value: Any) -> dt.datetime | None:
    """A wire timestamp (`2024-05-01T10:00:00Z`, `…51.6033333Z`, `…+02:00`) as an aware UTC datetime."""
    if not isinstance(value, str) or not value:
        return None
    text = _FRACTION.sub(lambda m: m.group(1), value.strip())  # Python takes at most 6 fraction digits
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)  # both services speak UTC
    return parsed.astimezone(dt.UTC)


def format_literal(value: Any) -> str:
    """An OData primitive literal: strings in single quotes with each quote doubled (OData ABNF
    `SQUOTE-in-string`), GUIDs and numbers bare, booleans lower-case, datetimes as UTC literals."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise invalid(f"{value!r} has no OData literal")
        return repr(value)
    if isinstance(value, dt.datetime):
        return format_datetime(value, "ms")
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise invalid(f"cannot write {type(value).__name__} value {value!r} as an OData literal")


def key_segment(key: Mapping[str, Any]) -> str:
    """`(name='v')` or `(a='x',b='y')` for an alternate key, percent-encoded for a URL path.

    The literal is built first (quotes doubled), then every character outside the unreserved set and
    the quote itself is percent-encoded, so `/`, `?`, `#`, `%`, `&`, `+` and spaces in a key value cannot
    change the URL's meaning.
    """
    if not key:
        raise invalid("an alternate key needs at least one attribute")
    parts = []
    for name, value in key.items():
        check_identifier(name, "key attribute")
        if value is None or (isinstance(value, str) and value == ""):
            raise invalid(f"key attribute {name!r} has no value")
        parts.append(f"{name}={quote(format_literal(value), safe=chr(39))}")
    return "(" + ",".join(parts) + ")"


def key_predicate(key: Mapping[str, Any]) -> str:
    """The canonical text of a composite key, `dataAreaId='usmf',CustomerAccount='US-001'` (literals as
    `format_literal` writes them, not percent-encoded). Finance and Operations record ids are this text: it is
    readable in couplings and error records, and `parse_key_predicate` gives the key back."""
    if not key:
        raise invalid("a key needs at least one property")
    parts = []
    for name, value in key.items():
        check_identifier(name, "key property")
        if value is None or value == "":
            raise invalid(f"key property {name!r} has no value")
        parts.append(f"{name}={format_literal(value)}")
    return ",".join(parts)


_KEY_PART = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*")
_ENUM_LITERAL = re.compile(r"([A-Za-z_][A-Za-z0-9_.]*)'((?:[^']|'')*)'")
_NUMBER = re.compile(r"-?\d+(\.\d+)?")


def parse_key_predicate(text: str) -> dict[str, Any]:
    """The key a `key_predicate` text names: `{"dataAreaId": "usmf", "CustomerAccount": "US-001"}`.

    Strings are single-quoted with `''` for a quote; integers and decimals are bare; an enum literal
    (`Microsoft.Dynamics.DataEntities.NoYes'Yes'`) gives its member name. Anything else is refused, so a
    malformed id never reaches a URL."""
    key: dict[str, Any] = {}
    pos = 0
    while pos < len(text):
        m = _KEY_PART.match(text, pos)
        if m is None:
            raise invalid(f"record id {text!r} is not a key predicate (name='value',…)")
        name, pos = m.group(1), m.end()
        if text.startswith("'", pos):
            end = pos + 1
            while True:
                end = text.find("'", end)
                if end < 0:
                    raise invalid(f"record id {text!r} has an unterminated string")
                if text.startswith("''", end):
                    end += 2
                    continue
                break
            value: Any = text[pos + 1:end].replace("''", "'")
            pos = end + 1
        elif (e := _ENUM_LITERAL.match(text, pos)) is not None:
            value, pos = e.group(2).replace("''", "'"), e.end()
        elif (n := _NUMBER.match(text, pos)) is not None:
            value = Decimal(n.group(0)) if n.group(1) else int(n.group(0))
            pos = n.end()
        else:
            raise invalid(f"record id {text!r}: cannot read the value of {name!r}")
        if name in key:
            raise invalid(f"record id {text!r} names {name!r} twice")
        key[name] = value
        while pos < len(text) and text[pos] == " ":
            pos += 1
        if pos < len(text):
            if text[pos] != ",":
                raise invalid(f"record id {text!r}: expected ',' after {name!r}")
            pos += 1
    if not key:
        raise invalid("an empty record id")
    return key


def query_string(*, select: Sequence[str] | None = None, filter: str | None = None,
                 orderby: str | None = None, top: int | None = None) -> str:
    """`?$select=…&$filter=…` (or "") with values percent-encoded but OData syntax kept readable."""
    params: list[tuple[str, str]] = []
    if select:
        params.append(("$select", ",".join(check_identifier(f, "$select field") for f in select)))
    if filter:
        params.append(("$filter", filter))
    if orderby:
        params.append(("$orderby", orderby))
    if top is not None:
        params.append(("$top", str(int(top))))
    if not params:
        return ""
    return "?" + "&".join(f"{name}={quote(value, safe=_QUERY_SAFE)}" for name, value in params)


def with_fields(select: Sequence[str] | None, required: Sequence[str]) -> list[str] | None:
    """`select` plus the fields a `Record` needs (id, modified-on, …), or None to read every field."""
    if select is None:
        return None
    return [*select, *(f for f in required if f not in select)]


def and_filters(*filters: str | None) -> str | None:
    """Join filters with `and`, each parenthesised so an `or` inside one cannot leak."""
    present = [f for f in filters if f]
    if len(present) <= 1:
        return present[0] if present else None
    return " and ".join(f"({f})" for f in present)


def is_odata_annotation(name: str) -> bool:
    """`@odata.etag`, `@odata.context`, `field@odata.type`: protocol noise, not record values. Other
    annotations (formatted values, lookup logical names) are kept when the caller asked for them."""
    return name.startswith("@odata.") or ("@odata." in name and not name.endswith("@odata.bind"))


def to_record(entity: str, body: Mapping[str, Any], *, id_field: str, modified_field: str,
              modified_by_field: str | None = None) -> Record:
    """A `Record` from one entity body as the service returned it."""
    record_id = body.get(id_field)
    if not record_id:
        raise PermanentError(f"{entity} record without {id_field!r} in the service's answer",
                             code="UnexpectedResponse")
    values = {k: v for k, v in body.items() if not is_odata_annotation(k)}
    etag = body.get("@odata.etag")
    modified_by = body.get(modified_by_field) if modified_by_field else None
    return Record(entity=entity, id=str(record_id), values=values, etag=etag if isinstance(etag, str) else None,
                  modified_on=parse_datetime(body.get(modified_field)),
                  modified_by=str(modified_by) if modified_by else None)
