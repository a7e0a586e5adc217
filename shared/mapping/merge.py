"""Per-field change detection and the three-way merge of ARCHITECTURE.md (principle 4).

Values are compared per field mapping (keyed by `field_key`), each side in its own representation: the
snapshot keeps what each side held after the last sync, so "did ERP change field A" compares ERP values
with ERP values and never depends on a transform being perfectly invertible.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.mapping.engine import convert, field_key, is_empty, read_name
from shared.mapping.model import TableMapping
from shared.mapping.types import ConflictPolicy, Direction, Side


def same(a: Any, b: Any) -> bool:
    """Equality as a sync sees it: null and "" are both empty; 1 == 1.0; otherwise exact."""
    if is_empty(a) or is_empty(b):
        return is_empty(a) and is_empty(b)
    return bool(a == b)


def field_values(mapping: TableMapping, record: Mapping[str, Any], side: Side) -> dict[str, Any]:
    """The record's raw value of every enabled field mapping that reads from `side`, keyed by field_key
    (lookups as the ids the API returns, e.g. Dataverse `_transactioncurrencyid_value`)."""
    values = {}
    for f in mapping.fields:
        if f.enabled and not f.sourceless:
            values[field_key(f)] = record.get(read_name(mapping, f, side) or "")
    return values


def diff(base: Mapping[str, Any], current: Mapping[str, Any]) -> set[str]:
    """Keys whose value differs between `base` and `current` (a key missing on one side reads as null)."""
    return {k for k in set(base) | set(current) if not same(base.get(k), current.get(k))}


@dataclass(frozen=True)
class Snapshot:
    """What both sides held after the last sync, per field key. Stored on the coupling."""

    erp: dict[str, Any] = field(default_factory=dict)
    crm: dict[str, Any] = field(default_factory=dict)

    def side(self, side: Side) -> dict[str, Any]:
        return self.erp if side is Side.ERP else self.crm

    def to_json(self) -> str:
        return json.dumps({"erp": self.erp, "crm": self.crm}, sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str) -> Snapshot:
        data = json.loads(text)
        return cls(erp=dict(data.get("erp", {})), crm=dict(data.get("crm", {})))

    def digest(self) -> str:
        """Content hash for cheap echo detection."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()


@dataclass(frozen=True)
class Conflict:
    field: str
    base: Any
    erp: Any
    crm: Any
    winner: Side | None  # None: unresolved (policy `error`, or `newest_wins` without both timestamps)


@dataclass
class MergeResult:
    """Field keys to push each way (use them as `map_record(..., only=...)`) and the conflicts met."""

    to_crm: set[str] = field(default_factory=set)
    to_erp: set[str] = field(default_factory=set)
    conflicts: list[Conflict] = field(default_factory=list)

    @property
    def unresolved(self) -> list[Conflict]:
        return [c for c in self.conflicts if c.winner is None]

    @property
    def unchanged(self) -> bool:
        return not self.to_crm and not self.to_erp and not self.conflicts


def three_way_merge(
    mapping: TableMapping,
    base: Snapshot,
    erp_values: Mapping[str, Any],
    crm_values: Mapping[str, Any],
    policy: ConflictPolicy | None = None,
    *,
    erp_modified: dt.datetime | None = None,
    crm_modified: dt.datetime | None = None,
) -> MergeResult:
    """Decide, field by field, what each side must receive. A change on one side only travels to the
    other (if the field's direction allows). Both sides changed to values that map to the same thing:
    nothing to do. Both changed differently on a bidirectional field: a conflict, settled by `policy`
    (default: the mapping's); unresolved conflicts push nothing for that field."""
    policy = policy or mapping.conflict
    result = MergeResult()
    for f in mapping.fields:
        if not f.enabled or f.sourceless:
            continue
        key, direction = field_key(f), mapping.field_direction(f)
        e, c = erp_values.get(key), crm_values.get(key)
        e_changed = not same(base.erp.get(key), e)
        c_changed = not same(base.crm.get(key), c)
        push_crm = e_changed and direction.allows(Direction.TO_CRM)
        push_erp = c_changed and direction.allows(Direction.TO_ERP)
        if push_crm and push_erp:
            if _agree(mapping, key, e, c):
                continue
            winner = _settle(policy, erp_modified, crm_modified)
            result.conflicts.append(Conflict(key, base.erp.get(key), e, c, winner))
            push_crm, push_erp = winner is Side.ERP, winner is Side.CRM
        if push_crm:
            result.to_crm.add(key)
        if push_erp:
            result.to_erp.add(key)
    return result


def _agree(mapping: TableMapping, key: str, erp: Any, crm: Any) -> bool:
    """Both sides already hold the same data: the ERP value maps to the CRM value."""
    f = next(f for f in mapping.fields if field_key(f) == key)
    if f.lookup is not None:
        return False  # ids of two systems cannot be compared without the couplings
    try:
        return same(convert(mapping, f, erp, Direction.TO_CRM), crm)
    except Exception:  # a value that does not even map is certainly not in agreement
        return False


def _settle(policy: ConflictPolicy, erp_modified: dt.datetime | None,
            crm_modified: dt.datetime | None) -> Side | None:
    if policy is ConflictPolicy.ERP_WINS:
        return Side.ERP
    if policy is ConflictPolicy.CRM_WINS:
        return Side.CRM
    if policy is ConflictPolicy.NEWEST_WINS and erp_modified and crm_modified:
        # A tie keeps the ERP value: the ERP is the system of record for posted business data.
        return Side.CRM if crm_modified > erp_modified else Side.ERP
    return None
