"""Match-based coupling (FEATURES.md §4): for uncoupled source records, find the unique uncoupled counterpart
by the fields marked `match`, one priority group after another.

Rules, as Business Central applies them:
- groups are tried in priority order; the first group that finds candidates decides;
- comparison is case-insensitive unless the field says `case_sensitive`;
- blanks never match: a group in which the source record (or a candidate) has a blank field is skipped;
- only a *unique*, *uncoupled* counterpart is taken: two candidates, or two source records wanting the same
  counterpart, are reported as ambiguous and coupled to nothing;
- the source value is compared after mapping (transforms, value maps), i.e. as the target would hold it;
- a company-specific mapping matches only within a company: the source record's company, resolved through
  the companies mapping's couplings to what the target holds (`_msdyn_company_value`, `dataAreaId`), leads
  every group's key and `$filter`. A record whose company is not coupled matches nothing.

The pure part (`group_key`, `target_key`, `match_filter`, `decide`) has no I/O; `match_page` queries the
target for one page of source records at a time (a few `$filter` reads per page, never the whole table).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

from shared.connectors import Record
from shared.mapping import Direction, FieldMapping, Side, TableMapping, field_key, is_empty, map_record, read_name
from shared.sync import keys, lookups
from shared.sync.context import RunContext
from shared.sync.errors import DependencyNotCoupled
from shared.sync.lookups import odata_literal

if TYPE_CHECKING:
    from shared.sync.engine import SyncEngine

T = TypeVar("T")
Key = tuple[Any, ...]


class MatchStatus(StrEnum):
    MATCHED = "matched"
    AMBIGUOUS = "ambiguous"
    NONE = "none"


@dataclass(frozen=True)
class Match:
    """The decision for one source record. `target` is set when MATCHED; `group` is the priority group
    (0-based) that decided; `message` says why a record is ambiguous."""

    source_id: str
    status: MatchStatus
    target: Record | None = None
    group: int | None = None
    message: str | None = None


def _norm(value: Any, case_sensitive: bool) -> Any:
    if isinstance(value, str):
        return value if case_sensitive else value.casefold()
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float | Decimal):
        return Decimal(str(value))  # 1 and 1.0 match
    return value


def group_key(mapping: TableMapping, group: Sequence[FieldMapping], flow: Direction,
              source: Mapping[str, Any]) -> Key | None:
    """The group's values of a source record as the target would hold them (None: blank, unmappable, or a
    lookup field, which cannot be compared by value)."""
    if any(f.lookup is not None for f in group):
        return None
    mapped = map_record(mapping, source, flow, only={field_key(f) for f in group})
    if mapped.errors:
        return None
    key = []
    for f in group:
        name = f.name(flow.target)
        value = mapped.payload[name] if name in mapped.payload else source.get(f.name(flow.source) or "")
        if is_empty(value):
            return None
        key.append(_norm(value, bool(f.match and f.match.case_sensitive)))
    return tuple(key)


def target_key(group: Sequence[FieldMapping], flow: Direction, target: Mapping[str, Any],
               company: str | None = None) -> Key | None:
    """The group's values of a candidate on the target side (None when any is blank), after its `company`
    attribute's value when given."""
    key: list[Any] = []
    if company is not None:
        value = target.get(company)
        if is_empty(value):
            return None
        key.append(company_norm(value))
    for f in group:
        value = target.get(f.name(flow.target) or "")
        if is_empty(value):
            return None
        key.append(_norm(value, bool(f.match and f.match.case_sensitive)))
    return tuple(key)


def company_norm(value: Any) -> str:
    """Companies compare case-insensitively (F&O `usmf` = `USMF`; GUIDs in any case)."""
    return str(value).strip().casefold()


def match_filter(group: Sequence[FieldMapping], flow: Direction, sources: Iterable[Mapping[str, Any]],
                 company: str | None = None) -> str:
    """`$filter` finding candidates for `sources` (each {target attribute: mapped value}; the `company`
    attribute first when given). Both services compare strings case-insensitively in `$filter`, so this
    over-selects for case-sensitive fields; `decide` applies case sensitivity exactly."""
    clauses = []
    for values in sources:
        parts = [f"{company} eq {keys.literal(values[company])}"] if company is not None else []
        parts += [f"{f.name(flow.target)} eq {odata_literal(values[f.name(flow.target) or ''])}" for f in group]
        clauses.append("(" + " and ".join(parts) + ")")
    return " or ".join(clauses)


def decide(keys: Mapping[str, Key], candidates: Mapping[Key, Sequence[Record]],
           coupled: Callable[[str], bool]) -> dict[str, Match]:
    """One group's decision for source records with `keys`: MATCHED to a unique uncoupled candidate,
    AMBIGUOUS for several (or when two sources want the same one), absent when none (try the next group)."""
    out: dict[str, Match] = {}
    wanted: dict[str, list[str]] = {}
    for source_id, key in keys.items():
        free = [r for r in candidates.get(key, ()) if not coupled(r.id)]
        if len(free) > 1:
            out[source_id] = Match(source_id, MatchStatus.AMBIGUOUS,
                                   message=f"{len(free)} uncoupled records match: "
                                           f"{', '.join(sorted(r.id for r in free)[:5])}")
        elif free:
            out[source_id] = Match(source_id, MatchStatus.MATCHED, target=free[0])
            wanted.setdefault(free[0].id, []).append(source_id)
    for target_id, sources in wanted.items():
        if len(sources) > 1:
            for source_id in sources:
                out[source_id] = Match(source_id, MatchStatus.AMBIGUOUS,
                                       message=f"{len(sources)} source records match the same record {target_id}")
    return out


async def bounded(limit: int, jobs: Iterable[Awaitable[T]]) -> list[T]:
    """Await `jobs` with at most `limit` in flight, results in order."""
    gate = asyncio.Semaphore(limit)

    async def one(job: Awaitable[T]) -> T:
        async with gate:
            return await job

    return list(await asyncio.gather(*(one(j) for j in jobs)))


async def _query(engine: SyncEngine, mapping: TableMapping, side: Side, text: str) -> list[Record]:
    found: list[Record] = []
    async for page in engine.connector(side).list(mapping.entity(side).entity, filter=text,
                                                  select=engine.select(mapping, side)):
        found.extend(page)
    return found


async def match_page(engine: SyncEngine, mapping: TableMapping, flow: Direction, records: Sequence[Record], *,
                     claimed: set[str] | None = None, chunk: int = 25) -> dict[str, Match]:
    """Decide every record of one page: MATCHED / AMBIGUOUS / NONE. `claimed` holds target ids already
    taken in this run but not (yet) coupled in the store (a dry run); matched ids are added to it."""
    target = flow.target
    claimed = claimed if claimed is not None else set()
    couplings = engine.state.couplings
    known: dict[str, bool] = {}
    out: dict[str, Match] = {}
    remaining = list(records)
    scope = mapping.company
    company_attr = read_name(mapping, scope.field, target) if scope is not None else None
    companies = await _companies(engine, mapping, flow, remaining) if scope is not None else {}
    for index, group in enumerate(mapping.match_groups()):
        keys_: dict[str, Key] = {}
        wire: dict[str, dict[str, Any]] = {}
        for r in remaining:
            key = group_key(mapping, group, flow, r.values)
            if key is not None and company_attr is not None:
                if r.id not in companies:
                    continue  # its company is not coupled: no counterpart can be of the same company
                key = (company_norm(companies[r.id]), *key)
            if key is not None:
                keys_[r.id] = key
                mapped = map_record(mapping, r.values, flow, only={field_key(f) for f in group}).payload
                wire[r.id] = {f.name(target): mapped.get(f.name(target) or "", r.values.get(f.name(flow.source) or ""))
                              for f in group}
                if company_attr is not None:
                    wire[r.id][company_attr] = companies[r.id]
        if not keys_:
            continue
        ids = list(keys_)
        slices = [ids[i:i + chunk] for i in range(0, len(ids), chunk)]

        candidates: dict[Key, list[Record]] = {}
        seen: set[str] = set()
        filters = [match_filter(group, flow, (wire[i] for i in part), company_attr) for part in slices]
        for found in await bounded(4, (_query(engine, mapping, target, text) for text in filters)):
            for r in found:
                tkey = target_key(group, flow, r.values, company_attr)
                if tkey is not None and r.id not in seen:
                    seen.add(r.id)
                    candidates.setdefault(tkey, []).append(r)
        unknown = [i for i in seen if i not in known]
        found_couplings = await bounded(engine.options.concurrency,
                                        (couplings.find_coupling(mapping.name, target, i) for i in unknown))
        known.update({i: c is not None for i, c in zip(unknown, found_couplings, strict=True)})
        decided = decide(keys_, candidates, lambda i: known.get(i, False) or i in claimed)
        for source_id, m in decided.items():
            out[source_id] = Match(source_id, m.status, m.target, index, m.message)
            if m.target is not None:
                claimed.add(m.target.id)
        remaining = [r for r in remaining if r.id not in out]
    for r in remaining:
        out[r.id] = Match(r.id, MatchStatus.NONE)
    return out


async def _companies(engine: SyncEngine, mapping: TableMapping, flow: Direction,
                     records: Sequence[Record]) -> dict[str, Any]:
    """Each source record's company as the target side holds it (a CRM company id as `uuid.UUID`, an ERP
    company code), resolved through existing couplings of the companies mapping; records whose company is
    empty or not coupled are left out."""
    scope = mapping.company
    assert scope is not None
    ctx = RunContext(depth=engine.options.max_dependency_depth, create=False)  # never sync a company first

    async def one(r: Record) -> Any:
        requests = map_record(mapping, r.values, flow, only={field_key(scope.field)}).lookups
        if not requests:
            return None
        try:
            value = await lookups.resolve(engine, ctx, requests[0])
        except DependencyNotCoupled:
            return None
        if flow.target is Side.CRM:
            try:
                return uuid.UUID(str(value))
            except ValueError:
                return None
        return None if is_empty(value) else value

    found = await bounded(engine.options.concurrency, (one(r) for r in records))
    return {r.id: v for r, v in zip(records, found, strict=True) if v is not None}
