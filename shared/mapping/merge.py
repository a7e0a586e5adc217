"""Per-field change detection and the snapshot that is the base of the three-way merge (ARCHITECTURE.md,
principle 4; the merge itself decides per record in `shared.sync.plan`, where lookups are resolved).

Values are compared per field mapping (keyed by `field_key`), each side in its own representation: the
snapshot keeps what each side held after the last sync, so "did ERP change field A" compares ERP values
with ERP values and never depends on a transform being perfectly invertible.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.mapping.engine import field_key, is_empty, read_name
from shared.mapping.model import TableMapping
from shared.mapping.types import Side


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
