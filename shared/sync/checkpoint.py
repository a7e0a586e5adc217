"""Where a full sync got to, so a crashed or interrupted run resumes instead of starting over.

One row per (mapping, direction) in the watermarks table (row key `fullsync~<direction>`, which no
watermark uses): the last source key completely processed (pages are read in key order), and the jobs of
this full sync so far (a resumed run takes over the reservations those jobs left pending). The row exists
only while a full sync is unfinished; a finished run removes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from shared.state.keys import encode_key

PREFIX = "fullsync~"


@dataclass
class Checkpoint:
    mapping: str
    direction: str
    last_key: str | None = None  # the last source key whose page was completely processed
    job_ids: list[str] = field(default_factory=list)
    pages: int = 0


class CheckpointStore:
    """Checkpoints of unfinished full syncs, in the (injected) watermarks table."""

    def __init__(self, table: TableClient) -> None:
        self.table = table

    async def find(self, mapping: str, direction: str) -> Checkpoint | None:
        try:
            e = await self.table.get_entity(encode_key(mapping), encode_key(PREFIX + direction))
        except ResourceNotFoundError:
            return None
        jobs = [j for j in str(e.get("job_ids") or "").split(",") if j]
        return Checkpoint(mapping, direction, e.get("last_key"), jobs, int(e.get("pages", 0)))

    async def save(self, cp: Checkpoint) -> None:
        entity = {"PartitionKey": encode_key(cp.mapping), "RowKey": encode_key(PREFIX + cp.direction),
                  "mapping": cp.mapping, "direction": cp.direction, "job_ids": ",".join(cp.job_ids),
                  "pages": cp.pages}
        if cp.last_key is not None:
            entity["last_key"] = cp.last_key
        await self.table.upsert_entity(entity, mode=UpdateMode.REPLACE)

    async def clear(self, mapping: str, direction: str) -> None:
        try:
            await self.table.delete_entity(encode_key(mapping), encode_key(PREFIX + direction))
        except ResourceNotFoundError:
            return
