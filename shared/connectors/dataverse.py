"""Dataverse Web API connector (PROTOCOLS.md §1): the CRM side.

Every request sends `Accept: application/json`, `OData-MaxVersion: 4.0`, `OData-Version: 4.0`; writes add
`Prefer: return=representation` so the answer carries the new etag and `modifiedon`. Updates always send
`If-Match` (the etag, or `*`): a PATCH to a key URL without it is an upsert and would quietly re-create a
record someone deleted. `write_batch` sends what it can as bulk messages (CreateMultiple, UpdateMultiple,
UpsertMultiple: `dataverse_bulk`) and the rest through multipart `$batch`. Every response's `x-ms-dop-hint` is
kept in `svc.dop_hint`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
from azure.core.credentials_async import AsyncTokenCredential

from shared.connectors.base import (
    ChangeTrackingDisabled,
    DeltaLinkExpired,
    NotFound,
    PermanentError,
    Record,
    TrackedChanges,
    WriteOp,
    WriteResult,
)
from shared.connectors.batch_writes import MultipartBatchWrites
from shared.connectors.dataverse_bulk import DEFAULT_BULK_SIZE, BulkWrites, DopHint
from shared.connectors.odata import (
    check_guid,
    check_identifier,
    format_datetime,
    key_segment,
    query_string,
    to_record,
)
from shared.connectors.odata_batch import BatchRequest
from shared.connectors.reads import ODataReads
from shared.connectors.service import ServiceClient
from shared.http.auth import make_credential
from shared.http.limits import DATAVERSE, ConcurrencyLimiter
from shared.http.paging import NextLinkPager, PagingError, iterate_pages
from shared.http.redact import Redactor
from shared.http.retry import RequestError, RetryExecutor
from shared.mapping.types import Side, System
from shared.settings import CrmSettings

DEFAULT_API_PATH = "/api/data/v9.2"
MAX_BATCH = 1000  # requests per $batch (service limit)
MAX_PAGE = 5000
MODIFIED_BY = "_modifiedby_value"
HEADERS = {"Accept": "application/json", "OData-MaxVersion": "4.0", "OData-Version": "4.0"}
WRITE_HEADERS = {"Prefer": "return=representation", "Content-Type": "application/json"}
# Primary key attribute (`<logicalname>id`) per entity set, where the plural does not simply end in "s".
PRIMARY_KEYS = {
    "transactioncurrencies": "transactioncurrencyid", "opportunities": "opportunityid",
    "uomschedules": "uomscheduleid", "productpricelevels": "productpricelevelid",
    "businessunits": "businessunitid", "activityparties": "activitypartyid",
}
_ENTITY_ID = re.compile(r"\(([0-9a-fA-F-]{36})\)\s*$")
NOT_TRACKED = "0x80072491"  # ChangeTrackingNotEnabledForEntity ("Web service error codes")


class DataverseService(ServiceClient):
    """The Web API's `ServiceClient`: also keeps the `x-ms-dop-hint` of every answer (failed ones too) in
    `dop_hint`, for whatever sizes the concurrency (`dop_hint.value`, `dop_hint.subscribe(listener)`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.dop_hint = DopHint()

    async def send_raw(self, method: str, url: str, *, headers: Mapping[str, str] | None = None,
                       json: Any = None, content: bytes | None = None) -> httpx.Response:
        try:
            response = await super().send_raw(method, url, headers=headers, json=json, content=content)
        except RequestError as exc:
            if exc.response is not None:
                self.dop_hint.observe(exc.response)
            raise
        self.dop_hint.observe(response)
        return response


class DataverseConnector(MultipartBatchWrites, ODataReads):
    """Reads and writes Dataverse tables through the Web API. See `shared.connectors.base.Connector`."""

    system = System.DATAVERSE
    side = Side.CRM
    modified_field = "modifiedon"
    required_fields = ("modifiedon", MODIFIED_BY)
    max_page = MAX_PAGE
    supports_upsert = True

    def __init__(self, http: httpx.AsyncClient, credential: AsyncTokenCredential, *, base_url: str,
                 api_path: str = DEFAULT_API_PATH, scope: str | None = None,
                 limiter: ConcurrencyLimiter | None = None, retry: RetryExecutor | None = None,
                 redactor: Redactor | None = None, max_concurrency: int = 16, batch_size: int = 200,
                 page_size: int = MAX_PAGE, primary_keys: Mapping[str, str] | None = None,
                 bulk_size: int = DEFAULT_BULK_SIZE, logical_names: Mapping[str, str] | None = None) -> None:
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"Dataverse batch_size must be 1…{MAX_BATCH}, got {batch_size}")
        if not 1 <= page_size <= MAX_PAGE:
            raise ValueError(f"Dataverse page_size must be 1…{MAX_PAGE}, got {page_size}")
        self.root = base_url.rstrip("/") + "/" + api_path.strip("/") + "/"
        self.svc = DataverseService(http, credential, scope=scope or base_url.rstrip("/") + "/.default",
                                     target=DATAVERSE, headers=HEADERS, max_concurrency=max_concurrency,
                                     limiter=limiter, retry=retry, redactor=redactor)
        self.batch_url = self.root + "$batch"
        self.batch_size = batch_size
        self.page_size = page_size
        self.primary_keys = {**PRIMARY_KEYS, **(primary_keys or {})}
        # Bulk messages: `bulk_size` targets per request (0: always `$batch`); `logical_names` (entity set →
        # logical name, as the packs declare them) spares the definition read the targets' @odata.type needs.
        self.bulk = BulkWrites(self, size=bulk_size, logical_names=logical_names)

    @classmethod
    def from_settings(cls, settings: CrmSettings, http: httpx.AsyncClient, *,
                      credential: AsyncTokenCredential | None = None, limiter: ConcurrencyLimiter | None = None,
                      retry: RetryExecutor | None = None) -> DataverseConnector:
        """A connector configured from `DUALSYNC_CRM__*` settings (client secret, or the managed identity)."""
        credential = credential or make_credential(
            tenant_id=settings.tenant_id, client_id=settings.client_id, client_secret=settings.client_secret,
            authority=settings.authority)
        return cls(http, credential, base_url=settings.base_url, api_path=settings.api_path,
                   scope=settings.effective_scope, limiter=limiter, retry=retry,
                   redactor=Redactor([settings.client_secret]), max_concurrency=settings.max_concurrency,
                   batch_size=settings.batch_size, page_size=settings.page_size, bulk_size=settings.bulk_size)

    # ----- addressing
    def primary_key(self, entity: str) -> str:
        """`accounts` → `accountid`; irregular plurals come from `PRIMARY_KEYS` / `primary_keys=`."""
        check_identifier(entity)
        if entity in self.primary_keys:
            return self.primary_keys[entity]
        singular = entity[:-3] + "y" if entity.endswith("ies") else entity.removesuffix("s")
        return singular + "id"

    def key_fields(self, entity: str) -> tuple[str, ...]:
        return (self.primary_key(entity),)

    def url(self, entity: str, record_id: str | None = None, *, key: Mapping[str, Any] | None = None) -> str:
        """`…/accounts`, `…/accounts(<guid>)` or `…/accounts(accountnumber='A''1')` (quoted, percent-encoded)."""
        base = self.root + check_identifier(entity)
        if key is not None:
            return base + key_segment(key)
        return base if record_id is None else f"{base}({check_guid(record_id)})"

    @staticmethod
    def format_datetime(value: dt.datetime) -> str:
        """A `modifiedon` literal for `$filter` (whole seconds, UTC, unquoted)."""
        return format_datetime(value, "s")

    def record(self, entity: str, body: Mapping[str, Any]) -> Record:
        return to_record(entity, body, id_field=self.primary_key(entity), modified_field=self.modified_field,
                         modified_by_field=MODIFIED_BY)


    # ----- change tracking (PROTOCOLS.md §1)
    async def track_changes(self, entity: str, delta_link: str | None = None) -> TrackedChanges:
        """Start change tracking of `entity` (`delta_link` None: the id of every record now, `Prefer:
        odata.track-changes`) or follow a delta link kept from an earlier read (the ids changed and deleted
        since). Reads ids only. The answer's new delta link replaces the old one; it is None when the service
        gave none. Raises `DeltaLinkExpired` for a link the service no longer honours and
        `ChangeTrackingDisabled` when the table does not track changes."""
        key = self.primary_key(entity)
        size = f"odata.maxpagesize={self.page_size}"
        if delta_link is None:
            url = self.url(entity) + query_string(select=[key])
            headers = {"Prefer": f"odata.track-changes,{size}"}
        else:
            url, headers = delta_link, {"Prefer": size}
        found = TrackedChanges(started=delta_link is None)
        pager = NextLinkPager(url)
        try:
            async for body in iterate_pages(lambda u: self.svc.json("GET", u, headers=headers,
                                                                     context=f"track changes of {entity}"),
                                            url, pager=pager):
                for item in self.items(entity, body):
                    if str(item.get("@odata.context", "")).endswith("/$deletedEntity"):
                        found.deleted.append(str(item.get("id") or ""))
                    elif item.get(key):
                        found.changed.append(str(item[key]))
        except PagingError as exc:
            raise PermanentError(f"track changes of {entity}: {exc}", code="UnexpectedResponse") from None
        except PermanentError as exc:
            if exc.code == NOT_TRACKED:
                raise ChangeTrackingDisabled(exc.message, status=exc.status, code=exc.code,
                                             detail=exc.detail) from None
            if delta_link is not None and exc.status == 400:
                # ExpiredVersionStamp, or a token the service no longer reads: start again from a full read.
                raise DeltaLinkExpired(exc.message, status=exc.status, code=exc.code, detail=exc.detail) from None
            raise
        found.delta_link = pager.delta_link
        return found

    # ----- single writes
    async def create(self, entity: str, payload: Mapping[str, Any]) -> Record:
        response = await self.svc.send("POST", self.url(entity), json=dict(payload), headers=WRITE_HEADERS,
                                       context=f"create {entity}")
        return await self._written(entity, response)

    async def update(self, entity: str, record_id: str, payload: Mapping[str, Any], *,
                     etag: str | None = None) -> Record:
        response = await self.svc.send("PATCH", self.url(entity, record_id), json=dict(payload),
                                       headers={**WRITE_HEADERS, "If-Match": etag or "*"},
                                       context=f"update {entity}({record_id})")
        return await self._written(entity, response)

    async def upsert(self, entity: str, key: Mapping[str, Any], payload: Mapping[str, Any], *,
                     create_only: bool = False, update_only: bool = False) -> Record:
        """PATCH to the alternate-key URL: creates or updates. `create_only` (`If-None-Match: *`) raises
        `AlreadyExists` when the key is taken; `update_only` (`If-Match: *`) raises `NotFound` when absent."""
        response = await self.svc.send("PATCH", self.url(entity, key=key), json=dict(payload),
                                       headers={**WRITE_HEADERS, **_upsert_condition(create_only, update_only)},
                                       context=f"upsert {entity}{_key_text(key)}")
        return await self._written(entity, response)

    async def delete(self, entity: str, record_id: str, *, etag: str | None = None) -> None:
        try:
            await self.svc.send("DELETE", self.url(entity, record_id), headers={"If-Match": etag} if etag else None,
                                context=f"delete {entity}({record_id})")
        except NotFound:
            return  # already gone: the outcome the caller wanted

    async def _written(self, entity: str, response: httpx.Response) -> Record:
        if response.content:
            return self.record(entity, response.json())
        # 204: the service ignored `return=representation`; read the record the OData-EntityId names.
        rid = _entity_id(response.headers)
        if rid is None:
            raise PermanentError(f"write to {entity} answered {response.status_code} without body or "
                                 "OData-EntityId", code="UnexpectedResponse")
        return await self.get(entity, rid)

    # ----- batched writes
    async def write_batch(self, ops: Sequence[WriteOp], *, atomic: bool = False) -> list[WriteResult]:
        """Bulk messages where they mean what `$batch` would (`dataverse_bulk`), `$batch` for the rest. An atomic
        set stays one `$batch` change set: a bulk request is atomic only for one table and one kind of write."""
        if atomic:
            return await self.multipart_write_batch(ops, atomic=True)
        return await self.bulk.write(ops)

    async def multipart_write_batch(self, ops: Sequence[WriteOp], *, atomic: bool = False) -> list[WriteResult]:
        """Multipart `$batch` only, in chunks of `batch_size` (continue-on-error unless atomic)."""
        return await MultipartBatchWrites.write_batch(self, ops, atomic=atomic)

    def batch_request(self, op: WriteOp) -> BatchRequest:
        if op.method == "create":
            return BatchRequest("POST", self.url(op.entity), WRITE_HEADERS, op.payload)
        if op.method == "upsert":
            assert op.key is not None
            headers = {**WRITE_HEADERS, **_upsert_condition(op.upsert_mode == "create_only",
                                                            op.upsert_mode == "update_only")}
            return BatchRequest("PATCH", self.url(op.entity, key=op.key), headers, op.payload)
        assert op.id is not None
        if op.method == "update":
            return BatchRequest("PATCH", self.url(op.entity, op.id), {**WRITE_HEADERS, "If-Match": op.etag or "*"},
                                op.payload)
        return BatchRequest("DELETE", self.url(op.entity, op.id), {"If-Match": op.etag} if op.etag else {})

    def describe_op(self, op: WriteOp) -> str:
        return f"{op.method} {op.entity}{_key_text(op.key) if op.key else f'({op.id})' if op.id else ''}"

    def id_from_headers(self, headers: Mapping[str, str]) -> str | None:
        return _entity_id(headers)


def _upsert_condition(create_only: bool, update_only: bool) -> dict[str, str]:
    if create_only and update_only:
        raise PermanentError("an upsert cannot be both create-only and update-only", code="InvalidArgument")
    if create_only:
        return {"If-None-Match": "*"}
    return {"If-Match": "*"} if update_only else {}


def _key_text(key: Mapping[str, Any] | None) -> str:
    return "(" + ",".join(f"{k}={v!r}" for k, v in (key or {}).items()) + ")"


def _entity_id(headers: Mapping[str, str]) -> str | None:
    m = _ENTITY_ID.search(headers.get("OData-EntityId") or headers.get("odata-entityid") or "")
    return m.group(1).lower() if m else None
