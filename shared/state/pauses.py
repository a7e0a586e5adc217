"""Paused mappings: which mappings an operator (or the auto-pause) has stopped, why, by whom and since when.

One row per mapping in the watermarks table (partition = mapping, row key `pause~`, which no watermark,
delta link or full-sync checkpoint uses), like the full-sync checkpoints: per-mapping run state, a handful of
rows, no table of its own to create, deploy and name. Resuming keeps the row with state `running` and the
time it was resumed, so the auto-pause counts only failures after the last resume (a failure burst that
caused a pause must not pause the mapping again the moment it is resumed).

The processor asks for every message whether its mapping is paused. Reading the row each time would add a
Table transaction to every live change (issue 12 allows two in all), so `paused()` answers from a snapshot
of every pause row, read with one query and kept `max_age` seconds (10 by default): a pause or resume made
on another instance takes effect here within that time; one made through this store, at once. `get()` and
`list()` always read the table (the admin API and the console show the truth, not a cache).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from shared.state.exceptions import ConcurrentUpdate
from shared.state.keys import decode_key, encode_key, read_time

ROW = "pause~"
PAUSED, AUTO_PAUSED, RUNNING = "paused", "auto-paused", "running"
MAX_REASON_CHARS = 1000
State = Literal["paused", "auto-paused"]


@dataclass(frozen=True)
class Pause:
    """A pause in force. `state` is `paused` (an operator's) or `auto-paused` (too many failures); `by` is who
    paused it (the admin API's caller, or `auto-pause`). `fresh` is True when the call that returned it put
    it in force (False: the mapping was already paused, and an automatic pause left it as it was)."""

    mapping: str
    state: State
    reason: str
    by: str
    at: dt.datetime
    fresh: bool = field(default=False, compare=False)

    @property
    def auto(self) -> bool:
        return self.state == AUTO_PAUSED


@dataclass(frozen=True)
class _Row:
    pause: Pause | None          # None: running
    resumed_at: dt.datetime | None
    etag: str


def _from_entity(e: Any) -> _Row:
    mapping = e.get("mapping") or decode_key(e["PartitionKey"])
    state = e.get("state", RUNNING)
    pause = None
    if state in (PAUSED, AUTO_PAUSED):
        pause = Pause(mapping, state, e.get("reason", ""), e.get("by", ""), read_time(e["at"]))  # type: ignore[arg-type]
    return _Row(pause, read_time(e.get("resumed_at")), e.metadata["etag"])


def _clip(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_REASON_CHARS else text[:MAX_REASON_CHARS - 1] + "…"


class PauseStore:
    """Pause state per mapping in `table` (the watermarks table). One per event loop, as every store."""

    def __init__(self, table: TableClient, *, max_age: float = 10.0,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        self.table = table
        self.max_age = max_age
        self.clock = clock
        self._snapshot: dict[str, _Row] = {}
        self._read_at: float | None = None  # monotonic time of the snapshot
        self._lock: asyncio.Lock | None = None

    # ----- reading
    async def _find(self, mapping: str) -> _Row | None:
        try:
            return _from_entity(await self.table.get_entity(encode_key(mapping), ROW))
        except ResourceNotFoundError:
            return None

    async def get(self, mapping: str) -> Pause | None:
        """The pause of `mapping` as stored now; None when it runs."""
        row = await self._find(mapping)
        self._remember(mapping, row)
        return row.pause if row else None

    async def list(self) -> dict[str, Pause]:
        """Every paused mapping (name → pause), read now."""
        rows = await self._read_all()
        return {name: row.pause for name, row in rows.items() if row.pause is not None}

    async def _read_all(self) -> dict[str, _Row]:
        rows = {}
        async for e in self.table.query_entities("RowKey eq @row", parameters={"row": ROW}):
            row = _from_entity(e)
            rows[e.get("mapping") or decode_key(e["PartitionKey"])] = row
        self._snapshot, self._read_at = rows, time.monotonic()
        return rows

    async def _cached(self) -> dict[str, _Row]:
        if self._read_at is not None and time.monotonic() - self._read_at < self.max_age:
            return self._snapshot
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # one query for all the messages that arrive while it runs
            if self._read_at is None or time.monotonic() - self._read_at >= self.max_age:
                await self._read_all()
        return self._snapshot

    async def paused(self, mapping: str) -> Pause | None:
        """The pause of `mapping` from a snapshot at most `max_age` seconds old (what the processor asks)."""
        row = (await self._cached()).get(mapping)
        return row.pause if row else None

    async def resumed_at(self, mapping: str) -> dt.datetime | None:
        """When `mapping` was last resumed (from the snapshot); None when never, or while paused."""
        row = (await self._cached()).get(mapping)
        return row.resumed_at if row and row.pause is None else None

    def _remember(self, mapping: str, row: _Row | None) -> None:
        if self._read_at is None:
            return  # no snapshot yet: the first `paused()` reads everything
        if row is None:
            self._snapshot.pop(mapping, None)
        else:
            self._snapshot[mapping] = row

    # ----- changing
    async def pause(self, mapping: str, *, reason: str, by: str, auto: bool = False) -> Pause:
        """Pause `mapping`. An operator's pause (`auto=False`) replaces any pause in force with its own reason;
        an automatic one never replaces a pause in force: the pause returned is then the existing one, with
        `fresh` False. Safe under concurrent callers (ETag-guarded)."""
        state: State = AUTO_PAUSED if auto else PAUSED
        pause = Pause(mapping, state, _clip(reason), by, self.clock(), fresh=True)
        entity = {"PartitionKey": encode_key(mapping), "RowKey": ROW, "mapping": mapping, "state": state,
                  "reason": pause.reason, "by": by, "at": pause.at}
        for _ in range(10):
            row = await self._find(mapping)
            if row is not None and row.pause is not None and auto:
                self._remember(mapping, row)
                return row.pause
            try:
                if row is None:
                    await self.table.create_entity(entity)
                else:
                    if row.resumed_at is not None:
                        entity["resumed_at"] = row.resumed_at
                    await self.table.update_entity(entity, mode=UpdateMode.REPLACE, etag=row.etag,
                                                   match_condition=MatchConditions.IfNotModified)
            except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
                continue
            self._remember(mapping, _Row(pause, row.resumed_at if row else None, ""))
            return pause
        raise ConcurrentUpdate(f"the pause of mapping {mapping!r} kept changing; try again")

    async def resume(self, mapping: str, *, by: str) -> Pause | None:
        """Let `mapping` run again; returns the pause lifted, None when it was not paused (nothing changes)."""
        for _ in range(10):
            row = await self._find(mapping)
            if row is None or row.pause is None:
                self._remember(mapping, row)
                return None
            now = self.clock()
            entity = {"PartitionKey": encode_key(mapping), "RowKey": ROW, "mapping": mapping, "state": RUNNING,
                      "resumed_at": now, "resumed_by": by}
            try:
                await self.table.update_entity(entity, mode=UpdateMode.REPLACE, etag=row.etag,
                                               match_condition=MatchConditions.IfNotModified)
            except (ResourceModifiedError, ResourceNotFoundError):
                continue
            self._remember(mapping, _Row(None, now, ""))
            return row.pause
        raise ConcurrentUpdate(f"the pause of mapping {mapping!r} kept changing; try again")
