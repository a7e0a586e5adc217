"""Finding the counterpart an earlier, interrupted attempt may already have created, so that a crash or a lost
answer between creating a record and storing its coupling never leaves a duplicate — also for targets without
a natural or alternate key.

- Dataverse takes a primary key chosen by the client on create ("Set primary key value", Create a table row
  using the Web API). The id of a counterpart is derived from its source record (mapping, side, id), so every
  attempt — a retry after a timed-out POST that did succeed, the taker of a crashed worker's reservation —
  creates the same row: the second create answers "duplicate" and the row is coupled instead.
- Business Central and Finance and Operations assign their own ids. A target without a natural key there is
  searched by content: an uncoupled record changed since the earlier attempt started whose mapped plain fields
  equal what we are about to write is that attempt's record. Only asked when an earlier attempt may have
  written (a taken-over reservation, or an error recorded for the record), so a normal create costs nothing.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from shared.connectors import NotFound, Record
from shared.mapping import Side, System, TableMapping, read_name, same

if TYPE_CHECKING:
    from shared.sync.engine import SyncEngine

# Fixed forever: changing it would make every pending recovery create a second row.
_NAMESPACE = uuid.UUID("5b0c8a52-7a8e-4c3f-9d36-0f3e1f2a6c11")
# An earlier attempt's record was written after its attempt started; allow for clock skew between us and the API.
SKEW = dt.timedelta(minutes=2)


def chosen_id(engine: SyncEngine, mapping: TableMapping, target: Side, source: Side, source_id: str) -> str | None:
    """The primary key every attempt uses to create `source_id`'s counterpart (None: the target picks ids)."""
    if engine.pack.systems.get(target) is not System.DATAVERSE:
        return None
    return str(uuid.uuid5(_NAMESPACE, f"{mapping.name}\x1f{source.value}\x1f{source_id}"))


async def uncoupled(engine: SyncEngine, mapping: TableMapping, side: Side, record: Record | None) -> Record | None:
    if record is None or await engine.state.couplings.find_coupling(mapping.name, side, record.id) is not None:
        return None
    return record


async def by_chosen_id(engine: SyncEngine, mapping: TableMapping, target: Side, record_id: str) -> Record | None:
    """The uncoupled target record an earlier attempt created with `record_id`, if any."""
    try:
        found = await engine.connector(target).get(mapping.entity(target).entity, record_id,
                                                   select=engine.select(mapping, target))
    except NotFound:
        return None
    return await uncoupled(engine, mapping, target, found)


def _plain(mapping: TableMapping, side: Side, payload: Mapping[str, Any]) -> dict[str, Any]:
    """The payload's fields that read back under the same name (no lookups, no binds): comparable as read."""
    out = {}
    for f in mapping.fields:
        name = f.name(side) if f.enabled and not f.sourceless else None
        if name and name in payload and read_name(mapping, f, side) == name and f.lookup is None:
            out[name] = payload[name]
    return out


async def by_content(engine: SyncEngine, mapping: TableMapping, target: Side, payload: Mapping[str, Any],
                     since: dt.datetime) -> Record | None:
    """The one uncoupled target record changed since `since` whose plain mapped fields equal `payload`'s."""
    field = engine.modified_field(mapping, target)
    wanted = _plain(mapping, target, payload)
    if field is None or not wanted:
        return None
    stamp = (since - SKEW).astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    text = f"{field} ge {stamp}"
    hits: list[Record] = []
    async for page in engine.connector(target).list(mapping.entity(target).entity, filter=text,
                                                    select=engine.select(mapping, target)):
        hits += [r for r in page if all(same(r.values.get(k), v) for k, v in wanted.items())]
    free = [r for r in hits if await uncoupled(engine, mapping, target, r) is not None]
    return free[0] if len(free) == 1 else None
