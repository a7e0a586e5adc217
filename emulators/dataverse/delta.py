"""Change tracking (Microsoft Learn, "Use change tracking to synchronize data with external systems"):
a delta token names a point in the store's change log; following the delta link returns the records
created or updated since (their current state, once each) and then `$deletedEntity` rows, and a new link.
Tokens look like the service's (`<version>!<MM/dd/yyyy HH:mm:ss>`) and expire after `delta_token_days`.

Refusals use the service's codes ("Web service error codes"): an expired token is ExpiredVersionStamp
0x80044352 "Version stamp associated with the client has expired. Please perform a full sync."; a table whose
change tracking is off (`untracked_tables`) is ChangeTrackingNotEnabledForEntity 0x80072491. Both as 400
(unconfirmed: the status the Web API gives them; the codes and texts are documented)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from emulators.dataverse.annotations import Annotations, Formatter
from emulators.dataverse.errors import BAD_PROPERTY, DataverseError
from emulators.dataverse.expand import currency_column

if TYPE_CHECKING:
    from emulators.dataverse.api import ApiRequest
    from emulators.dataverse.core import Emulator
    from emulators.dataverse.schema import TableDef

_FORMAT = "%m/%d/%Y %H:%M:%S"
# Below this sequence number tokens predate the last reseed and are refused as expired.
MIN_SEQ_KEY = "delta_min_seq"
EXPIRED_VERSION_STAMP = "0x80044352"
NOT_TRACKED = "0x80072491"
EXPIRED_MESSAGE = "Version stamp associated with the client has expired. Please perform a full sync."


def check_tracked(emu: Emulator, table: TableDef) -> None:
    """Change tracking is a per-table setting (EntityMetadata.ChangeTrackingEnabled); off, delta reads fail."""
    if table.entity_set in emu.settings.untracked_tables:
        raise DataverseError(400, NOT_TRACKED, f"Entity {table.logical} isn't enabled for change tracking.")


def reject_query_options(query: Mapping[str, str]) -> None:
    """Only `$select` goes with change tracking (and the service's own `$deltatoken` / `$skiptoken`)."""
    bad = [p for p in ("$filter", "$orderby", "$top", "$count", "$expand", "$apply", "fetchXml") if p in query]
    if bad:
        # (unconfirmed wording) the service refuses these together with change tracking.
        raise DataverseError(400, BAD_PROPERTY, f"The query parameter {bad[0]} is not supported with change "
                             "tracking (Prefer: odata.track-changes or $deltatoken).")


def make_token(seq: int, now: dt.datetime | None = None) -> str:
    return f"{seq}!{(now or dt.datetime.now(dt.UTC)).strftime(_FORMAT)}"


def delta_link(req: ApiRequest, table: TableDef, select: list[str] | None, seq: int) -> str:
    sel = f"$select={','.join(select)}&" if select else ""
    return f"{req.base}/{table.entity_set}?{sel}$deltatoken={quote(make_token(seq), safe='')}"


def parse_token(emu: Emulator, token: str) -> int:
    seq_text, _, stamp = token.partition("!")
    try:
        seq = int(seq_text)
        issued = dt.datetime.strptime(stamp, _FORMAT).replace(tzinfo=dt.UTC)
    except ValueError:
        raise DataverseError(400, BAD_PROPERTY, f"The delta token '{token}' is not valid.") from None
    if seq > emu.store.current_seq():
        raise DataverseError(400, BAD_PROPERTY, f"The delta token '{token}' is not valid.")
    # A token from before a reseed names change-log entries that no longer exist: as a token past the
    # retention period, whose entries were cleaned up.
    too_old = dt.datetime.now(dt.UTC) - issued > dt.timedelta(days=emu.settings.delta_token_days)
    if too_old or seq < getattr(emu, MIN_SEQ_KEY, 0):
        raise DataverseError(400, EXPIRED_VERSION_STAMP, EXPIRED_MESSAGE)
    return seq


def read_changes(emu: Emulator, req: ApiRequest, table: TableDef, size: int,
                 annotate: Annotations | None) -> dict[str, Any]:
    """The changes since the request's `$deltatoken`, rows annotated as `annotate` asks (None: none)."""
    from emulators.dataverse.reads import _decode_skiptoken, _encode_skiptoken, context, select_of

    since = parse_token(emu, req.query["$deltatoken"])
    select = select_of(req, table)
    state = _decode_skiptoken(req.query.get("$skiptoken"))
    upper = int(state.get("u", emu.store.current_seq()))
    last: dict[str, str] = {}
    for change in emu.store.changes_since(since, table.entity_set):
        if change.seq <= upper:
            last.pop(change.record_id, None)  # re-insert so the order follows each record's latest change
            last[change.record_id] = change.kind
    store_table = emu.store.table(table.entity_set)
    fmt = Formatter(emu, annotate) if annotate else None
    extra = currency_column(table, select)
    items: list[dict[str, Any]] = []
    for rid, kind in last.items():
        row = store_table.find(rid)
        if kind != "deleted" and row is not None:
            items.append(emu.render(table, row, select, fmt is not None, fmt, extra))
    deleted_ctx = f"{req.base}/$metadata#{table.entity_set}/$deletedEntity"
    items += [{"@odata.context": deleted_ctx, "id": rid, "reason": "deleted"}
              for rid, kind in last.items() if kind == "deleted"]
    offset = int(state.get("o", 0))
    body: dict[str, Any] = {"@odata.context": context(req, table, select, "/$delta"),
                            "value": items[offset:offset + size]}
    if offset + size < len(items):
        token = _encode_skiptoken({"u": upper, "o": offset + size})
        sel = f"$select={','.join(select)}&" if select else ""
        body["@odata.nextLink"] = (f"{req.base}/{table.entity_set}?{sel}$deltatoken="
                                   f"{quote(req.query['$deltatoken'], safe='')}&$skiptoken={token}")
    else:
        body["@odata.deltaLink"] = delta_link(req, table, select, upper)
    return body

