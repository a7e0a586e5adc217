"""Watermarks: how far the modified-records sync of a mapping and direction has read.

A watermark only moves forward. The caller stores the value *capped at its run's start* (changes written
during the run are read again next time, with an overlap, and deduplicated by key), so a watermark that
went backwards would mean two runs disagree about time: refused loudly instead of silently re-reading or,
worse, skipping changes.
"""

from __future__ import annotations

import datetime as dt

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from shared.state.exceptions import ConcurrentUpdate, NotFound, WatermarkBackwards
from shared.state.keys import aware, encode_key, read_time


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

    async def delete_watermark(self, mapping: str, direction: str) -> None:
        """Forget the watermark (the next modified-records sync reads everything). Succeeds when absent."""
        await self.table.delete_entity(encode_key(mapping), encode_key(str(direction)))
