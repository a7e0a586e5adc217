"""The emulated environment: tables, system fields (the store's `stamp` hook), rendering rows in wire form
and resolving record references. Route handlers, `$batch`, webhooks and the admin routes share one instance."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any
from urllib.parse import unquote, urlsplit

from emulators.common.identity import Client, Identity
from emulators.common.store import Actor, Store
from emulators.dataverse.annotations import ALL, Annotations, Formatter
from emulators.dataverse.errors import BAD_PAYLOAD, DataverseError, not_found
from emulators.dataverse.keys import key_not_found, parse_key, split_path
from emulators.dataverse.payload import LOGICAL_ANNOTATION, format_datetime
from emulators.dataverse.schema import TableDef, build_tables, by_logical
from emulators.dataverse.settings import DataverseSettings

API_PREFIX = "/api/data/v9.2"
# Ids of seeded users derive from the client id alone, so tokens keep acting as the same user after a reseed.
USER_NAMESPACE = uuid.UUID("8b0c1f3e-5d7a-4e59-9c43-0d8f2b6a9e10")


def user_id_for(client_id: str) -> str:
    return str(uuid.uuid5(USER_NAMESPACE, client_id))


class Emulator:
    def __init__(self, settings: DataverseSettings) -> None:
        self.settings = settings
        self.tables: dict[str, TableDef] = build_tables()
        self.logical: dict[str, TableDef] = by_logical(self.tables)
        self.store = Store(self._stamp)
        for name, t in self.tables.items():
            self.store.add_table(name, t.key)
        self.identity = Identity([Client(c.client_id, c.secret, user_id_for(c.client_id), c.name)
                                  for c in settings.clients])
        self.integration = next(iter(self.identity.clients.values())).actor
        # Change sets hold the store's write lock for their whole run so no other write interleaves with them.
        self.write_lock = self.store.write_lock
        # Set by the app: webhooks.WebhookDispatcher, the FaultInjector and the Throttle in use.
        self.webhooks: Any = None
        self.faults: Any = None
        self.throttle: Any = None

    # ----- system fields
    def _stamp(self, name: str, row: dict[str, Any], actor: Actor, now: dt.datetime, version: int,
               created: bool) -> None:
        table = self.tables[name]
        ts = format_datetime(now)
        row["modifiedon"] = ts
        _set_lookup(row, "modifiedby", actor.user_id, "systemuser")
        if created:
            row["createdon"] = ts
            _set_lookup(row, "createdby", actor.user_id, "systemuser")
            if "ownerid" in table.attrs and not row.get("_ownerid_value"):
                _set_lookup(row, "ownerid", actor.user_id, "systemuser")
            for attr in table.attrs.values():
                row.setdefault(attr.field, None)
            if table.states and row.get("statecode") is None:
                row["statecode"] = next(iter(table.states))
        if table.states and row.get("statuscode") is None:
            row["statuscode"] = table.states[row["statecode"]][0]
        if "fullname" in table.attrs:
            row["fullname"] = " ".join(p for p in (row.get("firstname"), row.get("lastname")) if p) or None
        row["versionnumber"] = version

    def check_state(self, table: TableDef, row: dict[str, Any], changes: dict[str, Any]) -> None:
        """statecode/statuscode must form a valid pair; a new statecode alone takes its default status."""
        if not table.states or not ({"statecode", "statuscode"} & set(changes)):
            return
        state = changes.get("statecode", row.get("statecode", next(iter(table.states))))
        if "statecode" in changes and "statuscode" not in changes:
            changes["statuscode"] = table.states[state][0]
        status = changes.get("statuscode")
        if status is not None and status not in table.states.get(state, ()):
            raise DataverseError(400, "0x8004431a", f"{status} is not a valid status code for state code "
                                 f"{table.logical}State.{state} on {table.logical} with Id {row.get(table.key)}.")

    # ----- wire form
    def etag(self, row: dict[str, Any]) -> str:
        return f'W/"{row["versionnumber"]}"'

    def render(self, table: TableDef, row: dict[str, Any], select: list[str] | None = None,
               annotations: Annotations | bool | None = None, formatter: Formatter | None = None,
               extra: tuple[str, ...] = ()) -> dict[str, Any]:
        """A row in wire form: `@odata.etag`, the selected fields (all when None) plus the key and `extra`, and
        the requested annotations (annotations.py). Stored annotation keys never pass through: the requested
        ones are computed, so a row carries exactly what the `Prefer` header asked for."""
        out: dict[str, Any] = {"@odata.etag": self.etag(row)}
        if select is None:
            for k, v in row.items():
                if "@" not in k:
                    out[k] = v
        else:
            for k in (*select, *extra, table.key):
                if k in row:
                    out[k] = row[k]
        if annotations:
            fmt = formatter or Formatter(self, ALL if annotations is True else annotations)
            return fmt.annotate(table, row, out)
        return out

    def entity_url(self, base: str, table: TableDef, rid: str) -> str:
        return f"{base}/{table.entity_set}({rid})"

    # ----- records
    def locate(self, table: TableDef, key_segment: str) -> tuple[dict[str, Any] | None, str | dict[str, Any]]:
        """The record a key segment names (or None) and the parsed key."""
        key = parse_key(key_segment, table, self.settings.alternate_keys.get(table.entity_set, []))
        store_table = self.store.table(table.entity_set)
        if isinstance(key, str):
            return store_table.find(key), key
        found = store_table.lookup(tuple(key), tuple(key.values()))
        return (found[0] if found else None), key

    def resolve_bind(self, value: str, target: str, refs: dict[str, str] | None = None) -> str:
        """`/accounts(<id>)`, `accounts(<id>)`, an absolute URL, an alternate key, or `$n` in a change set."""
        if value.startswith("$") and refs is not None:
            if value not in refs:
                raise DataverseError(400, BAD_PAYLOAD, f"Content-ID Reference: '{value}' does not exist in the "
                                     "batch context.")
            value = refs[value]
        path = urlsplit(value).path if "://" in value else value
        path = unquote(path)
        if API_PREFIX in path:
            path = path.split(API_PREFIX, 1)[1]
        set_name, key = split_path(path.strip("/"))
        table = self.tables.get(set_name)
        if table is None or key is None:
            raise DataverseError(400, BAD_PAYLOAD, f"The URL '{value}' in the request body is not a valid entity "
                                 "reference.")
        if table.logical != target:
            raise DataverseError(400, BAD_PAYLOAD, f"The entity reference '{value}' points at a "
                                 f"'{table.logical}' record but the navigation property expects '{target}'.")
        row, parsed = self.locate(table, key)
        if row is None:
            raise not_found(table.logical, parsed) if isinstance(parsed, str) else key_not_found(table)
        return row[table.key]

    def users(self) -> dict[str, Actor]:
        rows = self.store.table("systemusers").rows.values()
        return {r["systemuserid"]: Actor(r["systemuserid"], r.get("fullname") or "") for r in rows}

    def actor_for(self, client: Client) -> Actor:
        return client.actor


def _set_lookup(row: dict[str, Any], name: str, rid: str, logical: str) -> None:
    row[f"_{name}_value"] = rid
    row[f"_{name}_value{LOGICAL_ANNOTATION}"] = logical
