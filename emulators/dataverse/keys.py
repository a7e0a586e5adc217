"""Key segments of resource paths and `@odata.bind` values: `accounts(<guid>)`, `accounts(accountnumber='X')`,
`contacts(firstname='Joe',emailaddress1='a@b.c')`. Only the primary key and the alternate keys configured
for a table identify records (Microsoft Learn, "Use an alternate key to reference a record"). A key that
includes a lookup column names it by its lookup property, with a bare GUID:
`msdyn_customergroups(_msdyn_company_value=<guid>,msdyn_groupid='10')`."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from typing import Any

from emulators.dataverse.errors import BAD_PROPERTY, NOT_FOUND, QUERY_SYNTAX, DataverseError
from emulators.dataverse.payload import LOGICAL_ANNOTATION
from emulators.dataverse.schema import TableDef

_PATH = re.compile(r"^(?P<set>[A-Za-z_][A-Za-z0-9_]*)(?:\((?P<key>.*)\))?$", re.S)


def split_path(path: str) -> tuple[str, str | None]:
    """`accounts(…)` → ("accounts", "…"); `accounts` → ("accounts", None)."""
    m = _PATH.match(path)
    if not m:
        raise DataverseError(400, QUERY_SYNTAX, "Bad Request - Error in query syntax.")
    return m.group("set"), m.group("key")


def parse_key(segment: str, table: TableDef, alternate: Iterable[list[str]]) -> str | dict[str, Any]:
    """A record id (lower-case GUID) or the alternate key values {attribute: value}."""
    segment = segment.strip()
    if "=" not in segment:
        try:
            return str(uuid.UUID(segment))
        except ValueError:
            raise DataverseError(400, QUERY_SYNTAX, "Bad Request - Error in query syntax.") from None
    values = _pairs(segment)
    if set(values) == {table.key}:
        try:
            return str(uuid.UUID(str(values[table.key])))
        except ValueError:
            raise DataverseError(400, QUERY_SYNTAX, "Bad Request - Error in query syntax.") from None
    named: dict[str, Any] = {}  # stored field (`_msdyn_company_value` for a lookup) → value
    attributes: set[str] = set()
    for name, value in values.items():
        attr = table.by_field(name)  # a lookup only by its lookup property, as the service demands
        if attr is None:
            raise DataverseError(400, BAD_PROPERTY, f"Invalid property '{name}' was found in entity "
                                 f"'Microsoft.Dynamics.CRM.{table.logical}'.")
        if attr.type == "lookup":
            try:
                value = str(uuid.UUID(str(value)))
            except ValueError:
                raise DataverseError(400, QUERY_SYNTAX, "Bad Request - Error in query syntax.") from None
        named[attr.field] = value
        attributes.add(attr.name)
    if not any(set(k) == attributes for k in alternate):
        # (unconfirmed wording) Dataverse refuses key attributes that form no defined alternate key.
        raise DataverseError(400, BAD_PROPERTY, f"The key attributes {', '.join(sorted(values))} do not match any "
                             f"alternate key defined on entity '{table.logical}'.")
    return named


def key_fields(table: TableDef, key: Iterable[str]) -> tuple[str, ...]:
    """The stored fields of an alternate key's attributes (a lookup is stored as `_<name>_value`)."""
    return tuple(table.attrs[a].field if a in table.attrs else a for a in key)


def key_changes(table: TableDef, parsed: dict[str, Any]) -> dict[str, Any]:
    """The stored values an upsert creating a record by alternate key takes from the key: its values, and for
    a lookup part also the lookuplogicalname annotation a bound lookup carries."""
    out = dict(parsed)
    for name, value in parsed.items():
        attr = table.by_field(name)
        if attr is not None and attr.type == "lookup":
            out[name + LOGICAL_ANNOTATION] = attr.targets[0] if value is not None else None
    return out


def _pairs(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    i, n = 0, len(text)
    while i < n:
        m = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*").match(text, i)
        if not m:
            raise DataverseError(400, QUERY_SYNTAX, "Bad Request - Error in query syntax.")
        name, i = m.group(1), m.end()
        if i < n and text[i] == "'":
            j, buf = i + 1, []
            while True:
                if j >= n:
                    raise DataverseError(400, QUERY_SYNTAX, "Bad Request - Error in query syntax.")
                if text[j] == "'":
                    if j + 1 < n and text[j + 1] == "'":  # '' escapes a quote inside a literal
                        buf.append("'")
                        j += 2
                        continue
                    break
                buf.append(text[j])
                j += 1
            value: Any = "".join(buf)
            i = j + 1
        else:
            m2 = re.compile(r"[^,]+").match(text, i)
            raw = m2.group(0).strip() if m2 else ""
            i = m2.end() if m2 else i
            value = _literal(raw)
        out[name] = value
        rest = re.compile(r"\s*(,|$)").match(text, i)
        if not rest:
            raise DataverseError(400, QUERY_SYNTAX, "Bad Request - Error in query syntax.")
        i = rest.end()
    return out


def _literal(raw: str) -> Any:
    if re.fullmatch(r"-?\d+", raw):
        return int(raw)
    if re.fullmatch(r"-?\d+\.\d+", raw):
        return float(raw)
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise DataverseError(400, QUERY_SYNTAX, "Bad Request - Error in query syntax.") from None


def key_not_found(table: TableDef) -> DataverseError:
    return DataverseError(404, NOT_FOUND, f"A record with the specified key values does not exist in "
                          f"{table.logical} entity")
