"""The decisions of a record sync, as pure functions: which fields to evaluate, what each side must receive,
which conflicts arise and how the policy settles them, what a deletion leads to. No I/O: the engine reads,
calls these, and writes what they say.

Values are compared per field key (`shared.mapping.field_key`), each side in its own raw representation (what
the API returns, lookups as ids). The snapshot stored on the coupling is the common base of a three-way merge.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from shared.mapping import (
    Conflict,
    ConflictPolicy,
    DeletionPolicy,
    Direction,
    Side,
    Snapshot,
    TableMapping,
    field_key,
    same,
)
from shared.sync.errors import DependencyNotCoupled, MappingFailed, SyncFailure


@dataclass
class Expected:
    """What one side should hold, per field key, according to the other side's record mapped through the
    pack: `values` as that side reads them back (lookups as resolved ids), `payload` the wire entries that
    write them, `errors` fields that could not be mapped (written only if the plan needs them)."""

    values: dict[str, Any] = field(default_factory=dict)
    payload: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    unresolved: set[str] = field(default_factory=set)  # keys of `errors` that are lookups not coupled

    def failure(self, keys: Collection[str]) -> SyncFailure | None:
        """The error to report when `keys` had to be written: "dependency not coupled" when a lookup could
        not be resolved, else the mapping errors, each naming its field."""
        failed = sorted(k for k in keys if k in self.errors)
        if not failed:
            return None
        dependency = [k for k in failed if k in self.unresolved]
        if dependency:
            return DependencyNotCoupled(self.errors[dependency[0]])
        return MappingFailed("; ".join(f"{k}: {self.errors[k]}" for k in failed))

    def payload_for(self, keys: set[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in sorted(keys):
            out.update(self.payload.get(key, {}))
        return out


@dataclass
class Plan:
    """Field keys each side must receive, the conflicts met, and the keys per side that must be written but
    could not be mapped (see `Expected.failure`)."""

    push: dict[Side, set[str]] = field(default_factory=lambda: {Side.ERP: set(), Side.CRM: set()})
    conflicts: list[Conflict] = field(default_factory=list)
    errors: dict[Side, set[str]] = field(default_factory=lambda: {Side.ERP: set(), Side.CRM: set()})

    @property
    def unresolved(self) -> list[Conflict]:
        return [c for c in self.conflicts if c.winner is None]

    @property
    def writes(self) -> list[Side]:
        """Sides to write, the ERP first (an ERP validation failure then stops the CRM write, too)."""
        return [s for s in (Side.ERP, Side.CRM) if self.push[s]]


def synced_fields(mapping: TableMapping) -> list[str]:
    """Keys of the fields that are read on both sides (the ones snapshots and merges are about)."""
    return [field_key(f) for f in mapping.fields if f.enabled and not f.sourceless]


def candidates(mapping: TableMapping, base: Snapshot | None,
               values: Mapping[Side, Mapping[str, Any]]) -> set[str]:
    """Field keys worth mapping: all of them on a first sync (no base), otherwise those whose value changed on
    either side since the last sync. Empty means the pair is exactly as last synced: an echo of our own
    write, a duplicate notice, or a change to fields the mapping does not carry — nothing to do."""
    keys = synced_fields(mapping)
    if base is None:
        return set(keys)
    return {k for k in keys
            if not same(base.erp.get(k), values[Side.ERP].get(k)) or not same(base.crm.get(k), values[Side.CRM].get(k))
            } | diverged(mapping, values)


def diverged(mapping: TableMapping, values: Mapping[Side, Mapping[str, Any]]) -> set[str]:
    """Keys of the plain bidirectional fields (no transform, value map or lookup: in step means equal) whose
    two sides differ. A pair can end so whatever its snapshot says — a crossing of the pair's two directions,
    a read-back that caught a newer version — and then neither side "changed" since the snapshot: without this
    check it would stay divergent for good. Such a field is settled as a conflict, by the mapping's policy."""
    out = set()
    for f in mapping.fields:
        if (not f.enabled or f.sourceless or f.transforms or f.value_map or f.lookup or f.reverse_transforms
                or mapping.field_direction(f) is not Direction.BIDIRECTIONAL):
            continue
        key = field_key(f)
        if not same(values[Side.ERP].get(key), values[Side.CRM].get(key)):
            out.add(key)
    return out


def settle(policy: ConflictPolicy, modified: Mapping[Side, dt.datetime | None],
           source: Side | None = None) -> Side | None:
    """The winning side of a conflict under `policy`, or None when it stays unresolved.

    Newest-wins compares the sides' modified-on times. Where a side has none (most Finance and Operations
    entities), it cannot: then the change not being synced now wins — the target's. Changes are synced in the
    order their notices arrive, so the side whose change is still to come changed last."""
    if policy is ConflictPolicy.ERP_WINS:
        return Side.ERP
    if policy is ConflictPolicy.CRM_WINS:
        return Side.CRM
    erp, crm = modified.get(Side.ERP), modified.get(Side.CRM)
    if policy is ConflictPolicy.NEWEST_WINS and erp is not None and crm is not None:
        # A tie keeps the ERP value: the ERP is the system of record for business data.
        return Side.CRM if crm > erp else Side.ERP
    if policy is ConflictPolicy.NEWEST_WINS and source is not None:
        return source.other
    return None


def plan_sync(
    mapping: TableMapping,
    source: Side,
    *,
    base: Snapshot | None,
    values: Mapping[Side, Mapping[str, Any]],
    expected: Mapping[Side, Expected],
    keys: set[str],
    policy: ConflictPolicy | None = None,
    modified: Mapping[Side, dt.datetime | None] | None = None,
) -> Plan:
    """Decide, for each key in `keys`, what each side must receive.

    - A one-way field: the target must hold what the source maps to (the source is its authority).
    - A bidirectional field with a base: a change on one side travels to the other; both changed to values
      that agree is nothing to do; both changed differently is a conflict settled by `policy` (default: the
      mapping's).
    - A bidirectional field without a base (first sync of a new coupling): one-way from `source`, the
      record that triggered the sync.
    A push whose target already holds the expected value is dropped (no write that changes nothing)."""
    policy = policy or mapping.conflict
    modified = modified or {}
    plan = Plan()
    target = source.other
    for f in mapping.fields:
        key = field_key(f)
        if key not in keys or not f.enabled or f.sourceless:
            continue
        direction = mapping.field_direction(f)
        if direction is not Direction.BIDIRECTIONAL:
            _push(plan, key, direction.target, values, expected)
            continue
        if base is None:
            _push(plan, key, target, values, expected)
            continue
        erp_changed = not same(base.erp.get(key), values[Side.ERP].get(key))
        crm_changed = not same(base.crm.get(key), values[Side.CRM].get(key))
        if not erp_changed and not crm_changed and not _agree(key, values, expected):
            erp_changed = crm_changed = True  # diverged whatever the snapshot says: settle it as a conflict
        if erp_changed and crm_changed:
            if _agree(key, values, expected):
                continue
            winner = settle(policy, modified, source)
            plan.conflicts.append(Conflict(key, base.erp.get(key), values[Side.ERP].get(key),
                                           values[Side.CRM].get(key), winner))
            if winner is not None:
                _push(plan, key, winner.other, values, expected)
        elif erp_changed:
            _push(plan, key, Side.CRM, values, expected)
        elif crm_changed:
            _push(plan, key, Side.ERP, values, expected)
    return plan


def _agree(key: str, values: Mapping[Side, Mapping[str, Any]], expected: Mapping[Side, Expected]) -> bool:
    """Both sides already hold the same data (either mapped onto the other gives what it holds)."""
    for side in (Side.CRM, Side.ERP):
        exp = expected.get(side)
        if exp is not None and key in exp.values and same(exp.values[key], values[side].get(key)):
            return True
    return False


def _push(plan: Plan, key: str, to: Side, values: Mapping[Side, Mapping[str, Any]],
          expected: Mapping[Side, Expected]) -> None:
    exp = expected.get(to)
    if exp is None:
        return
    if key in exp.errors:
        plan.errors[to].add(key)  # had to be written, but could not be mapped
        return
    if key not in exp.values:
        return  # the source did not carry the field (partial read): unknown is not empty
    if not same(exp.values[key], values[to].get(key)):
        plan.push[to].add(key)


class DeletionAction(StrEnum):
    DELETE_OTHER = "delete_other"        # propagate: delete the coupled record too
    REMOVE_COUPLING = "remove_coupling"  # forget the pair; the survivor stays uncoupled
    RESTORE = "restore"                  # recreate the deleted record from the survivor
    FAIL = "fail"                        # a deletion conflict for an operator


def decide_deletion(mapping: TableMapping, deleted: Side) -> tuple[DeletionAction, str]:
    """What to do when the coupled record on `deleted` is gone, with the reason (for messages).

    A deletion on a side data flows *from* is a source deletion: the mapping's policy applies as written.
    A deletion on a side that only receives data (the CRM side of a to_crm mapping) is a deletion conflict:
    `propagate` would send data against the mapping's direction, so it fails like `error`. `restore` needs
    data to flow towards the deleted side."""
    policy = mapping.deletion
    flows_from_deleted = mapping.direction.allows(Direction.from_source(deleted))
    flows_to_deleted = mapping.direction.allows(Direction.from_source(deleted.other))
    what = f"the coupled {deleted.value} record was deleted"
    if policy is DeletionPolicy.REMOVE_COUPLING:
        return DeletionAction.REMOVE_COUPLING, f"{what}; the coupling is removed (deletion policy remove_coupling)"
    if policy is DeletionPolicy.RESTORE:
        if flows_to_deleted:
            return DeletionAction.RESTORE, f"{what}; it is recreated from the {deleted.other.value} record"
        return DeletionAction.FAIL, (f"{what}; it cannot be restored because mapping '{mapping.name}' does not "
                                     f"carry data to the {deleted.value} side (direction {mapping.direction.value})")
    if policy is DeletionPolicy.PROPAGATE:
        if flows_from_deleted:
            return DeletionAction.DELETE_OTHER, f"{what}; the {deleted.other.value} record is deleted too"
        return DeletionAction.FAIL, (f"deletion conflict: {what}, but mapping '{mapping.name}' only carries data "
                                     f"to the {deleted.value} side; restore it, uncouple, or change the policy")
    return DeletionAction.FAIL, (f"deletion conflict: {what} (deletion policy error); restore the record or "
                                 f"remove the coupling")
