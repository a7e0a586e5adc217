"""Reconcile: compare both systems through one mapping and report drift, the check a user runs to trust the
integration. Read-only: nothing is written, no dependency is synced.

Drift kinds:
- `uncoupled`: a record in the mapping's scope with no coupling (missing on the other side);
- `missing`: a coupling whose record on one side no longer exists;
- `duplicate`: two records on one side with the same natural key (or first match-group values) — within one
  company for a company-specific mapping —, or two source records wanting one counterpart;
- `differs`: a coupled pair whose fields disagree after mapping (the field keys are listed);
- `unmappable`: the pair could not be compared (a lookup's dependency is not coupled, a transform failed).

Memory: records are read page by page; the ids seen and the key values (for duplicates) are kept, which is
a few dozen bytes a record.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shared.connectors import NotFound, Record
from shared.mapping import Direction, Side, TableMapping, field_key, field_values, is_empty, read_name, source_filter
from shared.state import Coupling
from shared.sync import companies, keys
from shared.sync.context import RunContext
from shared.sync.errors import SyncFailure
from shared.sync.expected import expected_for
from shared.sync.match import bounded, target_key
from shared.sync.wire import same_on_wire

if TYPE_CHECKING:
    from shared.sync.engine import SyncEngine


@dataclass(frozen=True)
class Drift:
    kind: str
    side: Side | None
    ids: tuple[str, ...]
    fields: tuple[str, ...] = ()
    message: str = ""


@dataclass
class ReconcileReport:
    mapping: str
    checked: dict[str, int] = field(default_factory=lambda: {"erp": 0, "crm": 0})
    drift: list[Drift] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.drift

    def count(self, kind: str) -> int:
        return sum(1 for d in self.drift if d.kind == kind)


def _dup_key(mapping: TableMapping, side: Side, values: Any) -> tuple[Any, ...] | None:
    """The values two records of one side must not share: the natural key (for a company-specific mapping it
    starts with the company, so one number in two companies is no duplicate), else the first match group's
    values (after the company)."""
    names = keys.read_names(mapping, side)
    if names:
        found = tuple(str(values.get(k) or "").casefold() for k in names)
        return None if any(not v for v in found) else found
    groups = mapping.match_groups()
    company = read_name(mapping, mapping.company.field, side) if mapping.company is not None else None
    return target_key(groups[0], Direction.from_source(side.other), values, company) if groups else None


async def reconcile(engine: SyncEngine, mapping: str | TableMapping, *, page_size: int = 1000) -> ReconcileReport:
    m = engine.mapping(mapping)
    report = ReconcileReport(m.name)
    # Lookups resolve through existing couplings only: at the depth limit nothing is synced first.
    ctx = RunContext(depth=engine.options.max_dependency_depth, create=False)
    seen: dict[Side, set[str]] = {Side.ERP: set(), Side.CRM: set()}
    keys: dict[Side, dict[tuple[Any, ...], list[str]]] = {Side.ERP: defaultdict(list), Side.CRM: defaultdict(list)}
    for side in (Side.ERP, Side.CRM):
        connector = engine.connector(side)
        async for page in connector.list(m.entity(side).entity, filter=source_filter(m, side),
                                         select=engine.select(m, side), page_size=page_size):
            report.checked[side.value] += len(page)
            for r in page:
                seen[side].add(r.id)
                k = _dup_key(m, side, r.values)
                if k is not None:
                    keys[side][k].append(r.id)
            couplings = await engine.state.couplings.find_couplings(m.name, side, [r.id for r in page])
            await bounded(engine.options.concurrency,
                          (_check(engine, ctx, m, side, r, couplings.get(r.id), seen, report) for r in page))
    for side in Side:
        for ids in keys[side].values():
            if len(ids) > 1:
                report.drift.append(Drift("duplicate", side, tuple(sorted(ids)),
                                          message=f"{len(ids)} {side.value} records share the same key"))
    return report


async def _check(engine: SyncEngine, ctx: RunContext, m: TableMapping, side: Side, record: Record,
                 coupling: Coupling | None, seen: dict[Side, set[str]], report: ReconcileReport) -> None:
    if coupling is None or coupling.pending:
        if not m.direction.allows(Direction.from_source(side)):
            # The receiving side of a one-way mapping may hold records of its own (Sales' "Default Unit" group,
            # BC salespeople with no Sales user): nothing would ever sync them, so they are not drift.
            return
        if await companies.outside(engine, ctx, m, side, record.values) is not None:
            return  # a company this deployment does not sync (`companies.only`): out of scope, not drift
        report.drift.append(Drift("uncoupled", side, (record.id,),
                                  message=f"{side.value} record has no coupled {side.other.value} record"))
        return
    other_id = coupling.id_of(side.other)
    assert other_id is not None
    if side is Side.CRM and other_id in seen[Side.ERP]:
        return  # compared from the ERP side already
    try:
        other = await engine.connector(side.other).get(m.entity(side.other).entity, other_id,
                                                       select=engine.select(m, side.other))
    except NotFound:
        report.drift.append(Drift("missing", side.other, (record.id, other_id),
                                  message=f"coupled {side.other.value} record {other_id} no longer exists"))
        return
    pair = {side: record, side.other: other}
    erp = engine.pack.systems.get(Side.ERP)
    one_way = {field_key(f) for f in m.fields if m.field_direction(f) is not Direction.BIDIRECTIONAL}
    differs: dict[Direction, set[str]] = {}
    agrees: set[str] = set()
    try:
        for flow in (Direction.TO_CRM, Direction.TO_ERP):
            if not m.direction.allows(flow):
                continue
            exp = await expected_for(engine, ctx, m, flow, pair[flow.source].values, None)
            if exp.errors:
                raise SyncFailure("; ".join(f"{k}: {v}" for k, v in sorted(exp.errors.items())))
            actual = field_values(m, pair[flow.target].values, flow.target)
            source = field_values(m, pair[flow.source].values, flow.source)
            # A one-way field whose source is empty has nothing to send: the target keeps its own value until
            # the source sets one (e.g. the Sales owner of an account BC has no salesperson for). Not drift.
            compared = {k: v for k, v in exp.values.items() if k in actual}
            differs[flow] = {k for k, v in compared.items() if not same_on_wire(v, actual[k], erp)
                             and not (k in one_way and is_empty(source.get(k)))}
            agrees |= set(compared) - differs[flow]
    except SyncFailure as exc:
        report.drift.append(Drift("unmappable", None, (pair[Side.ERP].id, pair[Side.CRM].id), message=exc.message))
        return
    # A bidirectional field agrees when either side maps onto the other: a many-to-one value map (BC's
    # blocked "Ship"/"Invoice" → Active) cannot map back to the exact value, and need not.
    differing = sorted({k for ks in differs.values() for k in ks if k in one_way or k not in agrees})
    if differing:
        report.drift.append(Drift("differs", None, (pair[Side.ERP].id, pair[Side.CRM].id), tuple(sorted(differing)),
                                  message="fields differ: " + ", ".join(sorted(differing))))
