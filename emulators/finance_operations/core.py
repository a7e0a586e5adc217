"""The emulated F&O environment: tables per entity set, row versions and ETags (the store's `stamp` hook),
legal entities and their number sequences, rendering rows in wire form and locating records by key.
Route handlers, `$batch`, data events and the admin routes share one instance."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from emulators.common.identity import Client, Identity
from emulators.common.store import Actor, Store
from emulators.finance_operations import keys
from emulators.finance_operations.schema import ENTITIES, NUMBER_FORMATS, PARTY_FORMAT, EntityDef
from emulators.finance_operations.settings import FinanceOperationsSettings

API_PREFIX = "/data"
KEY_FIELD = "_rid"  # the store's record id: the canonical key predicate (keys.canonical)
VERSION_FIELD = "_version"
SYSTEM_ACTOR = Actor("00000000-0000-0000-0000-000000000000", "Admin")  # seeds and number fixes


class Emulator:
    def __init__(self, settings: FinanceOperationsSettings) -> None:
        self.settings = settings
        self.entities: dict[str, EntityDef] = ENTITIES
        self.store = Store(self._stamp)
        for name in self.entities:
            self.store.add_table(name, KEY_FIELD)
        origin = settings.environment_url.rstrip("/")
        self.identity = Identity([Client(c.client_id, c.secret, c.object_id.lower(), c.name)
                                  for c in settings.clients],
                                 resources=lambda request: {origin, str(request.base_url)})
        self.integration = next(iter(self.identity.clients.values())).actor
        self.write_lock = self.store.write_lock
        # (company, number field) → last number used; "party" → last party number.
        self.sequences: dict[tuple[str, str], int] = {}
        # Set by the app: the data-event dispatcher, the FaultInjector and the Throttle in use.
        self.events: Any = None
        self.faults: Any = None
        self.throttle: Any = None

    # ----- system fields
    def _stamp(self, name: str, row: dict[str, Any], actor: Actor, now: dt.datetime, version: int,
               created: bool) -> None:
        row[VERSION_FIELD] = version
        if name == "CustomersV3":
            # A computed (virtual) display field: derived on every write, never stored by F&O.
            parts = [row.get("AddressStreet"), " ".join(p for p in (row.get("AddressZipCode"), row.get("AddressCity"))
                                                        if p), row.get("AddressCountryRegionId")]
            row["FullPrimaryAddress"] = "\n".join(p for p in parts if p)

    # ----- legal entities and number sequences
    def companies(self) -> set[str]:
        return {r["LegalEntityId"].lower() for r in self.store.table("LegalEntities").rows.values()}

    def next_number(self, company: str, field: str) -> str:
        """The next free value of a company's number sequence (gaps allowed, as non-continuous sequences)."""
        entity = next(e for e in self.entities.values() if e.numbering == field)
        table = self.store.table(entity.entity_set)
        while True:
            n = self.sequences.get((company, field), 0) + 1
            self.sequences[(company, field)] = n
            value = NUMBER_FORMATS[field].format(co=company[:2].upper(), n=n)
            if table.find(keys.canonical(entity, {"dataAreaId": company, field: value})) is None:
                return value

    def next_party(self) -> str:
        n = self.sequences.get(("", "party"), 0) + 1
        self.sequences[("", "party")] = n
        return PARTY_FORMAT.format(n=n)

    # ----- wire form
    def etag(self, row: dict[str, Any]) -> str:
        # F&O's look like W/"JzEsNTYzNzE0NDU3Nic=": base64 of a quoted "1,<RecVersion>"; opaque to clients.
        return 'W/"' + base64.b64encode(f"'1,{row[VERSION_FIELD]}'".encode()).decode() + '"'

    def render(self, entity: EntityDef, row: dict[str, Any], select: list[str] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"@odata.etag": self.etag(row)}
        names = entity.props if select is None else [*select]
        for name in names:
            out[name] = row.get(name)
        return out

    def key_url(self, base: str, entity: EntityDef, row: dict[str, Any]) -> str:
        from urllib.parse import quote

        predicate = ",".join(f"{k}={keys.format_literal(row.get(k))}" for k in entity.keys)
        return f"{base}/{entity.entity_set}({quote(predicate, safe=chr(39) + '=,-_.~')})"

    # ----- records
    def locate(self, entity: EntityDef, key_text: str) -> dict[str, Any] | None:
        values = keys.parse_key(entity, key_text)
        return self.find(entity, values)

    def find(self, entity: EntityDef, values: dict[str, Any]) -> dict[str, Any] | None:
        return self.store.table(entity.entity_set).find(keys.canonical(entity, values))

    def users(self) -> dict[str, Actor]:
        return {c.actor.user_id: c.actor for c in self.identity.clients.values()}
