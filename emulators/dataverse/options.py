"""Which query options a read may carry, refusing the rest as the service does (never ignoring them).

Microsoft Learn, "Query data using the Web API" (OData query options): the Web API supports `$select`,
`$expand`, `$orderby`, `$filter`, `$apply`, `$top`, `$count`; it does not support `$skip`, `$search`, `$format`
("Unsupported OData query options"); option names are case-sensitive. Paging and change tracking add the
opaque `$skiptoken` and `$deltatoken`. Besides OData's, an entity set takes `fetchXml` ("Use FetchXml to query
data") and the saved-view parameters `savedQuery` / `userQuery`. Any other name is refused with
"The query parameter {name} is not supported" (the text Dataverse gave for a stray `utm_source` parameter; with
code 0x0 then, 0x80060888 — the code of the service's other OData URI errors — here: unconfirmed).

Parameter aliases (`@p1=…`) stand for values in `$filter` and `$orderby` only; an alias given no value is null
("Use parameter aliases with query options"). The preview `sql` option ("Use SQL to query data") is not emulated:
it is answered as an environment without the preview answers any unknown parameter (unconfirmed).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping

from emulators.dataverse.errors import BAD_PROPERTY, QUERY_SYNTAX, DataverseError, not_found

COLLECTION = frozenset({"$select", "$filter", "$orderby", "$top", "$count", "$expand", "$apply", "$skiptoken",
                        "$deltatoken", "fetchXml"})
SINGLE = frozenset({"$select", "$expand"})
SAVED_VIEWS = {"savedQuery": "savedquery", "userQuery": "userquery"}
# Options fetchXml may be combined with: `$count=true` does what returntotalrecordcount does (Microsoft Learn,
# "Count rows using FetchXml"); everything else belongs to OData queries (refusal wording unconfirmed).
WITH_FETCHXML = frozenset({"fetchXml", "$count"})
WITH_APPLY = frozenset({"$apply", "$orderby", "$top"})
_ALIAS = re.compile(r"^@[A-Za-z_][A-Za-z0-9_]*$")
_ALIAS_USE = re.compile(r"'(?:[^']|'')*'|@[A-Za-z_][A-Za-z0-9_]*")
# (unconfirmed wording) the OData library's refusal of collection options on a single entity.
NOT_A_COLLECTION = ("The query specified in the URI is not valid. The requested resource is not a collection. "
                    "Query options $filter, $orderby, $count, $skip, and $top can be applied only on collections.")


def unsupported(name: str) -> DataverseError:
    return DataverseError(400, BAD_PROPERTY, f"The query parameter {name} is not supported")


def check_collection(query: Mapping[str, str]) -> dict[str, str]:
    """Refuse what an entity-set read cannot take; returns the query with aliases resolved."""
    _check_names(query, COLLECTION)
    if "fetchXml" in query and (other := sorted(set(query) - WITH_FETCHXML - set(_aliases(query)))):
        raise DataverseError(400, BAD_PROPERTY, f"The query parameter {other[0]} is not supported together "
                             "with fetchXml")  # (unconfirmed wording)
    if "$apply" in query and (other := sorted(set(query) - WITH_APPLY - set(_aliases(query)))):
        raise DataverseError(400, BAD_PROPERTY, f"The query parameter {other[0]} is not supported together "
                             "with $apply")  # (unconfirmed wording)
    return resolve_aliases(query)


def check_single(query: Mapping[str, str]) -> None:
    """A single record takes `$select` and `$expand` only."""
    _check_names(query, SINGLE | COLLECTION)
    if set(query) - SINGLE - set(_aliases(query)):
        raise DataverseError(400, BAD_PROPERTY, NOT_A_COLLECTION)


def _aliases(query: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in query.items() if _ALIAS.match(k)}


def _check_names(query: Mapping[str, str], allowed: frozenset[str]) -> None:
    for name in query:
        if name in allowed or _ALIAS.match(name):
            continue
        if name in SAVED_VIEWS:
            _saved_view(name, query[name])
        raise unsupported(name)


def _saved_view(name: str, value: str) -> None:
    """The emulator holds no saved or personal views, so any id names a view that does not exist."""
    try:
        rid = str(uuid.UUID(value.strip("{}")))
    except ValueError:
        raise DataverseError(400, QUERY_SYNTAX, "Bad Request - Error in query syntax.") from None
    raise not_found(SAVED_VIEWS[name], rid)


def resolve_aliases(query: Mapping[str, str]) -> dict[str, str]:
    """`$filter=@p1 ne @p3&@p1=revenue` → `$filter=revenue ne null`; aliases leave the result."""
    aliases = _aliases(query)
    out = {k: v for k, v in query.items() if k not in aliases}
    if not aliases and not any("@" in out.get(k, "") for k in ("$filter", "$orderby")):
        return out
    for name in ("$filter", "$orderby"):
        if name in out:
            out[name] = _ALIAS_USE.sub(lambda m: m.group(0) if m.group(0).startswith("'")
                                       else aliases.get(m.group(0), "null"), out[name])
    return out
