"""The emulated environment: one store with a table per entity set, companies, number series, etags.

Company-scoped records carry a hidden `_companyId` (and `_modifiedBy`, the user id of the last writer); fields
starting with `_` never reach the API.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
from collections.abc import Iterator
from typing import Any

from emulators.business_central.enums import to_wire
from emulators.business_central.schema import COMPANY, ENTITY_SETS, EntitySet, format_number
from emulators.business_central.settings import BusinessCentralSettings
from emulators.common.faults import FaultInjector
from emulators.common.identity import Client, Identity
from emulators.common.store import Actor, Store
from emulators.common.throttle import Throttle

SYSTEM_ACTOR = Actor("00000000-0000-0000-0000-000000000001", "ADMIN")


def bc_timestamp(moment: dt.datetime) -> str:
    """UTC ISO 8601 at BC's precision (milliseconds), e.g. 2018-10-26T12:54:26.057Z."""
    moment = moment.astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def make_etag(version: int) -> str:
    """A BC-looking weak etag: base64 of a quoted version string, e.g. W/"JzIwOzAw…Oyc=".

    Real BC etags (W/"JzE5OzE0NTQ1NjE0NjMxMjY3ODg0ODUxOzAwOyc=") decode to '19;14545614631267884851;00;'; the
    emulator derives the middle part from the store's per-record version, so every write changes it.
    """
    inner = f"'20;{version:020d};00;'"
    return f'W/"{base64.b64encode(inner.encode()).decode()}"'


class Environment:
    """Everything one emulated BC environment holds; `app.state.emulator` in the ASGI app."""

    def __init__(self, settings: BusinessCentralSettings) -> None:
        self.settings = settings
        self.identity = Identity([Client(c.client_id, c.secret, c.user_id, c.name) for c in settings.clients])
        self.throttle = Throttle(settings.limits.model_copy())
        self.faults = FaultInjector(settings.faults.model_copy())
        self.store = self._new_store()
        self.number_series: dict[tuple[str, str], int] = {}
        self.webhooks: Any = None  # the notification dispatcher, attached by the app

    def _new_store(self) -> Store:
        store = Store(self._stamp)
        store.add_table("companies", "id")
        for name in ENTITY_SETS:
            store.add_table(name, "id")
        store.add_table("subscriptions", "subscriptionId")
        return store

    @property
    def write_lock(self) -> asyncio.Lock:
        """Serialises writes against `Isolation: snapshot` batches (which hold it for their whole run)."""
        return self.store.write_lock

    # --- store hooks
    def _stamp(self, table: str, row: dict[str, Any], actor: Actor, now: dt.datetime, version: int,
               created: bool) -> None:
        ts = bc_timestamp(now)
        entity = ENTITY_SETS.get(table)
        if entity is not None and entity.stamped:
            row["lastModifiedDateTime"] = ts
        if table in ("companies", "subscriptions"):
            row["systemModifiedAt"], row["systemModifiedBy"] = ts, actor.user_id
            if created:
                row["systemCreatedAt"], row["systemCreatedBy"] = ts, actor.user_id
        if table == "subscriptions":
            row["lastModifiedDateTime"] = ts
        if table == "companies":
            row["systemVersion"] = str(version)
        row["@odata.etag"] = make_etag(version)
        row["_modifiedBy"] = actor.user_id

    def render(self, row: dict[str, Any], entity: EntitySet) -> dict[str, Any]:
        """A stored row as the API returns it: etag first, hidden fields dropped, enum captions as their
        member names (enums.py), and every field of the entity present — BC never omits one; a row put in by
        the admin route without some (seeding) shows their defaults, as a record created in the UI would."""
        out = {"@odata.etag": row.get("@odata.etag")}
        if "id" in row:
            out["id"] = row["id"]
        out.update((k, v) for k, v in row.items() if not k.startswith("_") and k not in out)
        for name, spec in entity.fields.items():
            if name not in out:
                out[name] = spec.default
        return to_wire(entity, out)

    # --- lookups
    def users(self) -> dict[str, Actor]:
        return {c.user_id.lower(): c.actor for c in self.identity.clients.values()}

    def company(self, company_id: str) -> dict[str, Any] | None:
        return self.store.table("companies").find(company_id)

    def rows(self, entity: str, company_id: str) -> Iterator[dict[str, Any]]:
        cid = company_id.lower()
        return (r for r in self.store.table(entity).all() if r.get(COMPANY) == cid)

    def find(self, entity: str, company_id: str, record_id: str) -> dict[str, Any] | None:
        row = self.store.table(entity).find(record_id)
        return row if row is not None and row.get(COMPANY) == company_id.lower() else None

    def find_by(self, entity: str, company_id: str, field: str, value: Any) -> dict[str, Any] | None:
        found = self.store.table(entity).lookup((COMPANY, field), (company_id.lower(), value))
        return found[0] if found else None

    def next_number(self, entity: EntitySet, company_id: str) -> str:
        """The next free value of the entity's number series in this company."""
        assert entity.series is not None
        _, first, step = entity.series
        key = (company_id.lower(), entity.name)
        n = self.number_series.get(key, first - step)
        while True:
            n += step
            number = format_number(entity, n)
            if self.find_by(entity.name, company_id, "number", number) is None:
                self.number_series[key] = n
                return number
