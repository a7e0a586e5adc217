"""A coupling as the state store keeps it: the `Coupling` record (which ERP record is which CRM record, what
was last synced between them, who holds the pair) and its two Table rows (`erp:<id>` / `crm:<id>`, see
`shared.state.couplings` for the key design)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from shared.mapping.types import Side
from shared.state.keys import aware, decode_key, encode_key, json_hash, pack_json, read_time, unpack_json

_TIMES = ("reserved_at", "erp_modified_on", "crm_modified_on", "synced_at")
# Error codes of a guarded write whose row changed or vanished since it was read.
STALE_CODES = frozenset({"UpdateConditionNotSatisfied", "ConditionNotMet", "ResourceNotFound"})
_TEXTS = ("erp_id", "crm_id", "reservation", "erp_etag", "crm_etag", "result_to_crm", "result_to_erp",
          "last_job_id")


@dataclass
class Coupling:
    """The state of one coupled (or pending) record pair in one mapping. Mutate it, then `update_coupling`."""

    mapping: str
    erp_id: str | None = None
    crm_id: str | None = None
    reserved_by: Side | None = None          # side whose record is being created on the other side
    reservation: str | None = None           # token of the worker holding a pending reservation
    reserved_at: dt.datetime | None = None
    erp_modified_on: dt.datetime | None = None
    crm_modified_on: dt.datetime | None = None
    erp_etag: str | None = None              # the services' record etags, not Table storage's
    crm_etag: str | None = None
    snapshot: dict[str, Any] | None = None   # last-synced mapped values: the base of the three-way merge
    snapshot_hash: str | None = None         # maintained by the store from `snapshot`
    # What the sync holding the pair is writing, per side ({"erp": {field: value}}), stored with the hold
    # before either record is written: whoever merges next counts a field holding exactly that value as synced
    # on that side (`record.with_own_writes`), even if the holder died between its writes and its settlement.
    intent: dict[str, Any] | None = None
    result_to_crm: str | None = None
    result_to_erp: str | None = None
    skipped: bool = False
    last_job_id: str | None = None
    attempts: int = 0
    synced_at: dt.datetime | None = None
    # Table-storage bookkeeping: which row this object was read from, and that row's ETag.
    row_side: Side | None = field(default=None, repr=False, compare=False)
    row_etag: str | None = field(default=None, repr=False, compare=False)
    # Taken from this process's recent copies (`shared.state.recent`), not read just now.
    recent: bool = field(default=False, repr=False, compare=False)

    @property
    def pending(self) -> bool:
        """Reserved, but the destination record is not created (or not recorded) yet."""
        return self.erp_id is None or self.crm_id is None

    def id_of(self, side: Side | str) -> str | None:
        return self.erp_id if Side(side) is Side.ERP else self.crm_id

    def modified_on(self, side: Side | str) -> dt.datetime | None:
        return self.erp_modified_on if Side(side) is Side.ERP else self.crm_modified_on

    def etag(self, side: Side | str) -> str | None:
        return self.erp_etag if Side(side) is Side.ERP else self.crm_etag

    def record_synced(self, side: Side | str, *, modified_on: dt.datetime | None, etag: str | None) -> None:
        """Remember one side's modified-on and etag as of the last sync."""
        if Side(side) is Side.ERP:
            self.erp_modified_on, self.erp_etag = modified_on, etag
        else:
            self.crm_modified_on, self.crm_etag = modified_on, etag


def row_key(side: Side | str, record_id: str) -> str:
    return f"{Side(side).value}:{encode_key(record_id)}"


def to_entity(c: Coupling, side: Side) -> dict[str, Any]:
    record_id = c.id_of(side)
    assert record_id is not None, "a coupling row needs its side's id"
    entity: dict[str, Any] = {"PartitionKey": encode_key(c.mapping), "RowKey": row_key(side, record_id),
                              "mapping": c.mapping, "side": side.value, "skipped": c.skipped,
                              "attempts": int(c.attempts)}
    if c.reserved_by is not None:
        entity["reserved_by"] = Side(c.reserved_by).value
    for name in _TEXTS:
        if (value := getattr(c, name)) is not None:
            entity[name] = str(value)
    for name in _TIMES:
        if (value := aware(getattr(c, name), f"Coupling.{name}")) is not None:
            entity[name] = value
    if c.snapshot is not None:
        entity.update(pack_json("snapshot", c.snapshot, f"snapshot of coupling {record_id} in {c.mapping}"))
        entity["snapshot_hash"] = json_hash(c.snapshot)
    if c.intent:
        entity.update(pack_json("intent", c.intent, f"write intent of coupling {record_id} in {c.mapping}"))
    return entity


def from_entity(entity: Any) -> Coupling:
    c = Coupling(mapping=entity.get("mapping") or decode_key(entity["PartitionKey"]))
    for name in _TEXTS:
        setattr(c, name, entity.get(name))
    for name in _TIMES:
        setattr(c, name, read_time(entity.get(name)))
    c.reserved_by = Side(entity["reserved_by"]) if entity.get("reserved_by") else None
    c.skipped = bool(entity.get("skipped", False))
    c.attempts = int(entity.get("attempts", 0))
    c.snapshot = unpack_json("snapshot", entity)
    c.snapshot_hash = entity.get("snapshot_hash")
    c.intent = unpack_json("intent", entity)
    c.row_side = Side(entity["side"])
    c.row_etag = entity.metadata["etag"]
    return c
