"""The couplings this process read or wrote last: the live path's first read of a coupling can come from here.

A live change costs a Table transaction to hold its pair and one to settle it (`shared.sync.lease`); reading
the coupling first would be a third. The copy kept here is as this process last saw it. It may be stale —
another instance synced the pair since — and that is safe: every decision to write is guarded by the hold, a
compare-and-swap on the coupling's ETag, which fails on a stale copy and sends the sync back to read everything
fresh (and `sync_one` reads fresh for every attempt after the first). A stale copy that leads to writing
nothing says what it said when it was fresh: the records are as that settlement left them (their etags match
it), so there is nothing to carry. A copy is marked `recent`: the one irreversible step not guarded by the
hold, applying a deletion rule when the counterpart is gone, is taken only on a fresh read (the pair may have
been coupled to another record since). Absent and pending couplings are never remembered (a record seen for the
first time is always looked up), and every write path of the store other than `update_coupling` forgets the
pair.
"""

from __future__ import annotations

import copy
from collections import OrderedDict

from shared.mapping import Side
from shared.state.coupling_model import Coupling

DEFAULT_SIZE = 4096  # couplings; a few MB with their snapshots


class RecentCouplings:
    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, Side, str], Coupling] = OrderedDict()

    def get(self, mapping: str, side: Side | str, record_id: str) -> Coupling | None:
        key = (mapping, Side(side), record_id)
        found = self._items.get(key)
        if found is None:
            return None
        self._items.move_to_end(key)
        known = copy.deepcopy(found)  # callers mutate what they get
        known.recent = True
        return known

    def remember(self, coupling: Coupling) -> None:
        """Keep `coupling` under the row it was read from or written through (whose ETag it carries)."""
        side = coupling.row_side
        record_id = coupling.id_of(side) if side is not None else None
        if self.size <= 0 or side is None or record_id is None or coupling.row_etag is None or coupling.pending:
            return
        key = (coupling.mapping, Side(side), record_id)
        self._items[key] = kept = copy.deepcopy(coupling)
        kept.recent = False
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def forget(self, coupling: Coupling) -> None:
        for side in Side:
            if (record_id := coupling.id_of(side)) is not None:
                self._items.pop((coupling.mapping, side, record_id), None)
