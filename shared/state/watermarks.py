"""Watermarks: how far the modified-records sync of a mapping and direction has read.

A watermark only moves forward. The caller stores the value *capped at its run's start* (changes written
during the run are read again next time, with an overlap, and deduplicated by key), so a watermark that
went backwards would mean two runs disagree about time: refused loudly instead of silently re-reading or,
worse, skipping changes.

The same table keeps, per mapping and Dataverse table, the change-tracking delta link the modified sync
follows to learn of deletions (`shared.sync.vanished`).
"""

from __future__ import annotations

import datetime as dt

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from shared.state.exceptions import ConcurrentUpdate, NotFound, WatermarkBackwards
from shared.state.keys import aware, encode_key, read_time

# Row keys of delta links: `delta~<entity set>` (no direction is spelled so; full-sync checkpoints use
# `fullsync~`).
DELTA = "delta~"


class WatermarkStore:
    def __init__(self, table: TableClient) -> None:
        self.table = table

    async def find_watermark(self, mapping: str, direction: str) -> dt.datetime | None:
        try:
            entity = await self.table.get_entity(encode_key(mapping), encode_key(str(direction)))
        except ResourceNotFoundError:
            return None
        return read_time(entity["reached"])

    async def get_watermark(self, mapping: str, direction: str) -> dt.datetime:
        """The modified-on reached so far; raises `NotFound` before the first modified-records sync."""
        found = await self.find_watermark(mapping, direction)
        if found is None:
            raise NotFound(f"no watermark yet for mapping {mapping!r} direction {direction}")
        return found

    async def advance_watermark(self, mapping: str, direction: str, reached: dt.datetime) -> dt.datetime:
        """Move the watermark to `reached` (timezone-aware). Equal is a no-op; earlier raises
        `WatermarkBackwards`. Safe under concurrent callers (ETag-guarded, re-read on conflict)."""
        reached = aware(reached, "watermark")  # type: ignore[assignment]
        pk, rk = encode_key(mapping), encode_key(str(direction))
        entity = {"PartitionKey": pk, "RowKey": rk, "mapping": mapping, "direction": str(direction),
                  "reached": reached}
        for _ in range(10):
            try:
                current = await self.table.get_entity(pk, rk)
            except ResourceNotFoundError:
                try:
                    await self.table.create_entity(entity)
                    return reached
                except ResourceExistsError:
                    continue
            previous = read_time(current["reached"])
            assert previous is not None
            if reached < previous:
                raise WatermarkBackwards(f"watermark of {mapping!r} {direction} is at {previous.isoformat()}; "
                                         f"refusing to move it back to {reached.isoformat()}")
            if reached == previous:
                return previous
            try:
                await self.table.update_entity(entity, mode=UpdateMode.REPLACE, etag=current.metadata["etag"],
                                               match_condition=MatchConditions.IfNotModified)
                return reached
            except (ResourceModifiedError, ResourceNotFoundError):
                continue
        raise ConcurrentUpdate(f"watermark of {mapping!r} {direction} kept changing; try again")

    # ----- Dataverse change tracking: the delta link a mapping's modified sync follows next, per source entity
    async def find_delta_link(self, mapping: str, entity: str) -> str | None:
        try:
            entity_row = await self.table.get_entity(encode_key(mapping), encode_key(DELTA + entity))
        except ResourceNotFoundError:
            return None
        return entity_row.get("delta_link") or None

    async def store_delta_link(self, mapping: str, entity: str, link: str) -> None:
        """Keep `link` for the next run. Last writer wins: each link was issued by a complete read, so any of
        them is a correct place to continue from (an older one only repeats changes already handled)."""
        await self.table.upsert_entity({"PartitionKey": encode_key(mapping), "RowKey": encode_key(DELTA + entity),
                                        "mapping": mapping, "entity": entity, "delta_link": link},
                                       mode=UpdateMode.REPLACE)

    async def delete_delta_link(self, mapping: str, entity: str) -> None:
        """Forget the link (the next run starts change tracking again). Succeeds when absent."""
        await self.table.delete_entity(encode_key(mapping), encode_key(DELTA + entity))

    async def delete_watermark(self, mapping: str, direction: str) -> None:
        """Forget the watermark (the next modified-records sync reads everything). Succeeds when absent."""
        await self.table.delete_entity(encode_key(mapping), encode_key(str(direction)))
