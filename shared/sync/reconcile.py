"""Reconcile: compare both systems through one mapping and report drift, the check a user runs to trust the
integration. Read-only: nothing is written, no dependency is synced.

Drift kinds, each with what an operator does about it:
- `never_synced`: a record in the mapping's scope with no coupling that the mapping would create on the other
  side (by its automatic sync, or by a full sync when only coupled records sync automatically): a lost
  create — sync it with `--create`, or run a full sync;
- `uncoupled`: a record in scope with no coupling that the mapping creates nothing for (`only_coupled` and
  not `create_new`): couple it by hand or by match;
- `deleted_by_rule`: a record alone on its side because its coupled counterpart was deleted and the mapping's
  deletion rule (`remove_coupling`) kept it, as the conflicts table remembers (for the retention period). The
  rule meant it: listed, but it does not make the report unclean;
- `missing`: a coupling whose record on one side no longer exists (the message says what the deletion rule
  will do with it at the next sync);
- `duplicate`: two records on one side with the same natural key (or first match-group values) — within one
  company for a company-specific mapping —, or two source records wanting one counterpart;
- `differs`: a coupled pair whose fields disagree after mapping (the field keys are listed);
- `unmappable`: the pair could not be compared (a lookup's dependency is not coupled, a transform failed).

Memory: records are read page by page; the ids seen and the key values (for duplicates) are kept, which is
a few dozen bytes a record.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shared.connectors import NotFound, Record
from shared.mapping import Direction, Side, TableMapping, field_key, field_values, is_empty, read_name, source_filter
from shared.state import ConflictEntry, Coupling
from shared.sync import companies, keys
from shared.sync.context import RunContext
from shared.sync.errors import SyncFailure
from shared.sync.expected import expected_for
from shared.sync.match import bounded, target_key
from shared.sync.plan import decide_deletion
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


# Listed so an operator sees them, but intended by the mapping's rules: no action, the report stays clean.
BY_RULE = frozenset({"deleted_by_rule"})


@dataclass
class ReconcileReport:
    mapping: str
    checked: dict[str, int] = field(default_factory=lambda: {"erp": 0, "crm": 0})
    drift: list[Drift] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return all(d.kind in BY_RULE for d in self.drift)

    def count(self, kind: str) -> int:
        return sum(1 for d in self.drift if d.kind == kind)

    def counts(self) -> dict[str, int]:
        """Drift per kind (kinds with none left out)."""
        out: dict[str, int] = {}
        for d in self.drift:
            out[d.kind] = out.get(d.kind, 0) + 1
        return dict(sorted(out.items()))


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


async def reconcile(engine: SyncEngine, mapping: str | TableMapping, *, page_size: int = 1000,
                    progress: Callable[[str, int], None] | None = None) -> ReconcileReport:
    """`progress` (the command line's display) hears (mapping, records checked so far, both sides) per page."""
    m = engine.mapping(mapping)
    report = ReconcileReport(m.name)
    # Lookups resolve through existing couplings only: at the depth limit nothing is synced first.
    ctx = RunContext(depth=engine.options.max_dependency_depth, create=False)
    seen: dict[Side, set[str]] = {Side.ERP: set(), Side.CRM: set()}
    keys: dict[Side, dict[tuple[Any, ...], list[str]]] = {Side.ERP: defaultdict(list), Side.CRM: defaultdict(list)}
    left = await engine.state.conflicts.deletion_survivors(m.name)
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
                          (_check(engine, ctx, m, side, r, couplings.get(r.id), seen, report, left[side])
                           for r in page))
            if progress is not None:
                progress(m.name, sum(report.checked.values()))
    for side in Side:
        for ids in keys[side].values():
            if len(ids) > 1:
                report.drift.append(Drift("duplicate", side, tuple(sorted(ids)),
                                          message=f"{len(ids)} {side.value} records share the same key"))
    return report


def _alone(m: TableMapping, side: Side, record: Record, left: ConflictEntry | None) -> Drift:
    """The drift of an in-scope record with no coupling: why it is alone decides what to do about it."""
    other = side.other.value
    if left is not None:
        gone = left.erp_id if side is Side.CRM else left.crm_id
        return Drift("deleted_by_rule", side, (record.id,),
                     message=f"its coupled {other} record {gone} was deleted on {left.at:%Y-%m-%d %H:%M} UTC; "
                             f"deletion rule {left.policy} kept this one, uncoupled")
    if not m.only_coupled:
        return Drift("never_synced", side, (record.id,),
                     message=f"no coupled {other} record, and the sync would create one: a lost create "
                             f"(sync it with --create)")
    if m.create_new:
        return Drift("never_synced", side, (record.id,),
                     message=f"no coupled {other} record; only coupled records sync automatically, a full sync "
                             f"would create it")
    return Drift("uncoupled", side, (record.id,),
                 message=f"{side.value} record has no coupled {other} record, and the mapping creates none: "
                         f"couple it")


async def _check(engine: SyncEngine, ctx: RunContext, m: TableMapping, side: Side, record: Record,
                 coupling: Coupling | None, seen: dict[Side, set[str]], report: ReconcileReport,
                 left: dict[str, ConflictEntry]) -> None:
    if coupling is None or coupling.pending:
        if record.id in left:
            # Reported even on the receiving side of a one-way mapping: the deletion happened on the source.
            report.drift.append(_alone(m, side, record, left[record.id]))
            return
        if not m.direction.allows(Direction.from_source(side)):
            # The receiving side of a one-way mapping may hold records of its own (Sales' "Default Unit" group,
            # BC salespeople with no Sales user): nothing would ever sync them, so they are not drift.
            return
        if await companies.outside(engine, ctx, m, side, record.values) is not None:
            return  # a company this deployment does not sync (`companies.only`): out of scope, not drift
        report.drift.append(_alone(m, side, record, None))
        return
    other_id = coupling.id_of(side.other)
    assert other_id is not None
    if side is Side.CRM and other_id in seen[Side.ERP]:
        return  # compared from the ERP side already
    try:
        other = await engine.connector(side.other).get(m.entity(side.other).entity, other_id,
                                                       select=engine.select(m, side.other))
    except NotFound:
        _, then = decide_deletion(m, side.other)
        report.drift.append(Drift("missing", side.other, (record.id, other_id),
                                  message=f"coupled {side.other.value} record {other_id} no longer exists; at the "
                                          f"next sync: {then}"))
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
