"""`$expand` (Microsoft Learn, "Join tables using OData"; "Retrieve a table row using the Web API").

Navigation properties are relationships.py's: single-valued ones (lookups: `primarycontactid`,
`parentcustomerid_account`, `createdby`) give the related record or null; collection-valued ones
(`contact_customer_accounts`) give the records whose lookup names this one. Inside the parentheses, separated
by `;`: `$select` for both, `$filter`, `$orderby`, `$top` for collection-valued ones, and a nested `$expand`.
`nav/$ref` gives `{"@odata.id": …}` (lookups only).

Documented limits and their errors:
- at most 15 `$expand` options in a query (each is a join): more → 0x8004430D "Number of link entities in query
  exceeded maximum limit." (the message documented for a 16th link-entity; for `$expand`, unconfirmed);
- `$skip`, `$count`, `$search`, `$levels` are not supported inside `$expand`;
- `$orderby`/`$top` on a single-valued property, or on a collection-valued one when the query nests an `$expand`
  anywhere → 0x80060888 "Only $select and $filter clause can be provided while doing $expand on many-to-one
  relationship or nested one-to-many relationship.";
- `$ref` on a collection-valued property → 0x80060888 "Expand with $ref is only supported on lookup type
  navigation property."
`$filter` inside a single-valued expansion is accepted by the service (its message says so) but what it does is
not documented; the emulator refuses it rather than guess.

Paging ("Expand collection-valued navigation properties"): in a collection query every expanded collection
carries `<nav>@odata.nextLink`, the filtered-collection URL `…/accounts(<id>)/<nav>?<its options>`. Without a
nested `$expand` the expanded rows are not paged (up to 5,000 each) and the link has no paging information;
with a nested `$expand` and `Prefer: odata.maxpagesize`, each expanded collection is cut to the page size and
its link carries a `$skiptoken` when more rows follow (unconfirmed: the link when none follow is the plain one).
Single-record reads carry no such links. Rows of a collection-valued expansion keep `@odata.etag` and the lookup
that points back (`_parentcustomerid_value`), a single-valued expansion has neither etag nor extra columns, as
in the documented examples.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from emulators.common.query import Query, QueryError, parse_query, run_query
from emulators.dataverse.annotations import Formatter
from emulators.dataverse.errors import BAD_PROPERTY, QUERY_SYNTAX, DataverseError
from emulators.dataverse.payload import LOGICAL_ANNOTATION
from emulators.dataverse.relationships import Relationship, collection_valued, single_valued
from emulators.dataverse.schema import TableDef

if TYPE_CHECKING:
    from emulators.dataverse.core import Emulator

MAX_EXPANDS = 15
TOO_MANY_LINKS = "0x8004430D"
ONLY_SELECT_FILTER = ("Only $select and $filter clause can be provided while doing $expand on many-to-one "
                      "relationship or nested one-to-many relationship.")
REF_ONLY_LOOKUP = "Expand with $ref is only supported on lookup type navigation property."
UNSUPPORTED_INSIDE = ("$skip", "$count", "$search", "$levels")
_ITEM = re.compile(r"^(?P<nav>[A-Za-z_][A-Za-z0-9_]*)(?P<ref>/\$ref)?\s*(?:\((?P<opts>.*)\))?$", re.S)


@dataclass
class Expansion:
    nav: str
    rel: Relationship
    collection: bool
    target: TableDef
    ref: bool = False
    query: Query = field(default_factory=Query)
    children: list[Expansion] = field(default_factory=list)
    options: list[tuple[str, str]] = field(default_factory=list)  # as written, for the nextLink

    @property
    def lookup_field(self) -> str:
        """The lookup column of the relationship (`_parentcustomerid_value`), on the referencing table."""
        return f"_{self.rel.attribute}_value"


def syntax_error() -> DataverseError:
    return DataverseError(400, QUERY_SYNTAX, "Bad Request - Error in query syntax.")


def split_top(text: str, sep: str) -> list[str]:
    """Split on `sep` outside parentheses and quoted strings."""
    parts, depth, quoted, start = [], 0, False, 0
    for i, ch in enumerate(text):
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
            if depth < 0:
                raise syntax_error()
        elif not quoted and depth == 0 and ch == sep:
            parts.append(text[start:i])
            start = i + 1
    if depth or quoted:
        raise syntax_error()
    parts.append(text[start:])
    return [p.strip() for p in parts]


def parse(text: str, table: TableDef, by_logical: dict[str, TableDef]) -> list[Expansion]:
    """The `$expand` option of a request on `table`, validated against the documented limits."""
    items = _parse(text, table, by_logical)
    if count(items) > MAX_EXPANDS:
        raise DataverseError(400, TOO_MANY_LINKS, "Number of link entities in query exceeded maximum limit.")
    if nested(items):
        for item in walk(items):
            if item.collection and (item.query.orderby or item.query.top is not None):
                raise DataverseError(400, BAD_PROPERTY, ONLY_SELECT_FILTER)
    return items


def _parse(text: str, table: TableDef, by_logical: dict[str, TableDef]) -> list[Expansion]:
    out = []
    for part in split_top(text, ","):
        m = _ITEM.match(part)
        if not part or not m:
            raise syntax_error()
        nav, opts = m.group("nav"), m.group("opts")
        single, many = single_valued(table.logical), collection_valued(table.logical)
        if nav in single:
            rel, collection, target = single[nav], False, by_logical[single[nav].referenced]
        elif nav in many:
            rel, collection, target = many[nav], True, by_logical[many[nav].referencing]
        else:
            raise DataverseError(400, BAD_PROPERTY, f"Could not find a property named '{nav}' on type "
                                 f"'Microsoft.Dynamics.CRM.{table.logical}'.")
        item = Expansion(nav, rel, collection, target, ref=bool(m.group("ref")))
        if item.ref and collection:
            raise DataverseError(400, BAD_PROPERTY, REF_ONLY_LOOKUP)
        if opts is not None and opts.strip():
            if item.ref:
                raise syntax_error()
            _options(item, opts, by_logical)
        out.append(item)
    return out


def _options(item: Expansion, text: str, by_logical: dict[str, TableDef]) -> None:
    params: dict[str, str] = {}
    for opt in split_top(text, ";"):
        name, eq, value = opt.partition("=")
        name = name.strip()
        if not eq or name in params:
            raise syntax_error()
        if name in UNSUPPORTED_INSIDE or name not in ("$select", "$filter", "$orderby", "$top", "$expand"):
            raise DataverseError(400, BAD_PROPERTY, f"The query parameter {name} is not supported")
        params[name] = value.strip()
        item.options.append((name, value.strip()))
    if not item.collection and ("$orderby" in params or "$top" in params):
        raise DataverseError(400, BAD_PROPERTY, ONLY_SELECT_FILTER)
    if not item.collection and "$filter" in params:
        raise DataverseError(400, BAD_PROPERTY, f"The emulator does not support $filter in the $expand of the "
                             f"single-valued navigation property '{item.nav}'.")
    try:
        item.query = parse_query({k: v for k, v in params.items() if k != "$expand"}, item.target.fields)
    except QueryError as exc:
        code = BAD_PROPERTY if "property" in str(exc) else QUERY_SYNTAX
        raise DataverseError(400, code, str(exc)) from None
    if "$expand" in params:
        item.children = _parse(params["$expand"], item.target, by_logical)


def walk(items: list[Expansion]) -> list[Expansion]:
    return [x for item in items for x in (item, *walk(item.children))]


def count(items: list[Expansion]) -> int:
    return len(walk(items))


def nested(items: list[Expansion]) -> bool:
    return any(item.children for item in items)


def context(items: list[Expansion]) -> list[str]:
    """The expansions as the context URL lists them: `primarycontactid(contactid,fullname)`."""
    out = []
    for item in items:
        if item.ref:
            out += [item.nav, f"{item.nav}/$ref()"]
        else:
            out.append(f"{item.nav}({','.join([*(item.query.select or []), *context(item.children)])})")
    return out


def extra_fields(items: list[Expansion]) -> tuple[str, ...]:
    """Columns a row gains from its expansions: `nav/$ref` returns the lookup value too."""
    return tuple(item.lookup_field for item in items if item.ref)


class Expander:
    """Adds the expansions to rendered rows. One per request: it indexes each expanded collection once."""

    def __init__(self, emu: Emulator, base: str, items: list[Expansion], formatter: Formatter | None, *,
                 links: bool, page_size: int | None, skiptoken: Callable[[str], str]) -> None:
        self.emu, self.base, self.items, self.fmt = emu, base, items, formatter
        self.links = links  # a collection query: expanded collections carry <nav>@odata.nextLink
        # Paged expansions only with a nested $expand and odata.maxpagesize; otherwise up to 5000 rows each.
        self.page_size = page_size if page_size is not None and nested(items) else None
        self.skiptoken = skiptoken
        self._index: dict[str, dict[str, list[dict[str, Any]]]] = {}

    def expand(self, table: TableDef, row: dict[str, Any], out: dict[str, Any],
               items: list[Expansion] | None = None) -> dict[str, Any]:
        for item in self.items if items is None else items:
            if item.collection:
                self._collection(table, row, out, item)
            else:
                self._single(row, out, item)
        return out

    def _single(self, row: dict[str, Any], out: dict[str, Any], item: Expansion) -> None:
        rid = row.get(item.lookup_field)
        pointed = row.get(item.lookup_field + LOGICAL_ANNOTATION)
        target = item.target
        if rid is None or (pointed is not None and pointed != target.logical):
            out[item.nav] = None  # empty lookup, or a polymorphic lookup pointing at another table
            return
        if item.ref:
            out[item.nav] = {"@odata.id": f"{self.base}/{target.entity_set}({rid})"}
            return
        related = self.emu.store.table(target.entity_set).find(rid)
        if related is None:
            out[item.nav] = None
            return
        value = self.emu.render(target, related, item.query.select, bool(self.fmt), self.fmt,
                                extra=currency_column(target, item.query.select))
        value.pop("@odata.etag", None)
        out[item.nav] = self.expand(target, related, value, item.children)

    def _collection(self, table: TableDef, row: dict[str, Any], out: dict[str, Any], item: Expansion) -> None:
        target = item.target
        related = self._related(item).get(row[table.key], [])
        size = self.page_size or self.emu.settings.max_page_size
        try:
            page = run_query(related, Query(filter=item.query.filter, orderby=item.query.orderby,
                                            top=item.query.top), key=target.key, page_size=size)
        except QueryError as exc:
            raise DataverseError(400, QUERY_SYNTAX, str(exc)) from None
        extra = (item.lookup_field, *currency_column(target, item.query.select))
        out[item.nav] = [self.expand(target, r, self.emu.render(target, r, item.query.select, bool(self.fmt),
                                                                self.fmt, extra=extra), item.children)
                         for r in page.rows]
        if self.links:
            options = list(item.options)
            if self.page_size is not None and page.next_token:
                options.append(("$skiptoken", self.skiptoken(page.next_token)))
            link = f"{self.base}/{table.entity_set}({row[table.key]})/{item.nav}"
            if options:
                link += "?" + "&".join(f"{k}={quote(v, safe=_SAFE)}" for k, v in options)
            out[f"{item.nav}@odata.nextLink"] = link

    def _related(self, item: Expansion) -> dict[str, list[dict[str, Any]]]:
        """Referencing rows by the id their lookup holds (one scan of the table per relationship and request)."""
        key = item.rel.schema_name
        if key not in self._index:
            index: dict[str, list[dict[str, Any]]] = {}
            lookup, referenced = item.lookup_field, item.rel.referenced
            for r in self.emu.store.table(item.target.entity_set).all():
                pid = r.get(lookup)
                if pid is not None and r.get(lookup + LOGICAL_ANNOTATION) in (None, referenced):
                    index.setdefault(pid, []).append(r)
            self._index[key] = index
        return self._index[key]


_SAFE = "$,'()=;/@"


def currency_column(table: TableDef, select: list[str] | None) -> tuple[str, ...]:
    """Selecting a money column also returns the record's currency (Microsoft Learn, "Select columns")."""
    if select is None or "transactioncurrencyid" not in table.attrs:
        return ()
    if any((a := table.by_field(f)) is not None and a.type == "money" for f in select):
        return ("_transactioncurrencyid_value",)
    return ()
