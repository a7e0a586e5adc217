"""Finance and Operations OData connector (PROTOCOLS.md §5): the ERP side of dual-write and Prospect to cash.

Data entities live under `https://{env}.operations.dynamics.com/data/`; entity set names are case-sensitive.
Records have no GUID: an entity's key is `dataAreaId` (the legal entity) plus its natural key for
company-specific entities, or the natural key alone for global ones. A record's id here is that key's
canonical predicate text, `dataAreaId='usmf',CustomerAccount='US-001'` (`odata.key_predicate`): encoded once,
here, and carried unchanged through queue messages, couplings, error records and the admin API. Collection
reads always ask `cross-company=true` (otherwise F&O answers with the caller's default company only); a `$filter`
on `dataAreaId` narrows them. Most entities carry no modified-on field (`modified_field` is empty): the
modified-records sync catches up by comparing content instead (`shared.sync.modified`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote

import httpx
from azure.core.credentials_async import AsyncTokenCredential

from shared.connectors.base import NotFound, PermanentError, Record, WriteOp
from shared.connectors.batch_writes import MultipartBatchWrites
from shared.connectors.odata import (
    check_identifier,
    format_datetime,
    is_odata_annotation,
    key_predicate,
    key_segment,
    parse_key_predicate,
)
from shared.connectors.odata_batch import BatchRequest
from shared.connectors.reads import ODataReads
from shared.connectors.service import ServiceClient, body_of
from shared.http.auth import make_credential
from shared.http.limits import FINANCE_OPERATIONS, ConcurrencyLimiter
from shared.http.redact import Redactor
from shared.http.retry import RetryExecutor
from shared.mapping import Pack
from shared.mapping.types import Side, System
from shared.settings import ErpSettings

MAX_PAGE = 10000
MAX_BATCH = 1000
HEADERS = {"Accept": "application/json", "OData-MaxVersion": "4.0", "OData-Version": "4.0"}
# `return=representation` makes a PATCH answer with the entity (new etag) instead of 204 (unconfirmed on a
# tenant); when the service ignores it, the record is read back.
WRITE_HEADERS = {"Content-Type": "application/json", "Prefer": "return=representation"}
COMPANY = "dataAreaId"
# Key properties of the standard entities the packs use, in the order F&O declares them (public documentation
# of each data entity; "(unconfirmed)" ones follow dual-write's naming). Others come from `keys=`.
KNOWN_KEYS: dict[str, tuple[str, ...]] = {
    "LegalEntities": ("LegalEntityId",),
    "Currencies": ("CurrencyCode",),
    "CustomerGroups": (COMPANY, "CustomerGroupId"),
    "VendorGroups": (COMPANY, "VendorGroupId"),
    "PaymentTerms": (COMPANY, "Name"),
    "CustomersV3": (COMPANY, "CustomerAccount"),
    "VendorsV2": (COMPANY, "VendorAccountNumber"),
    "ContactPersonsV2": (COMPANY, "ContactPersonId"),
    "CDSReleasedDistinctProducts": (COMPANY, "ProductNumber"),
    "SalesQuotationHeadersV2": (COMPANY, "SalesQuotationNumber"),
    "SalesQuotationLines": (COMPANY, "InventoryLotId"),
    "SalesOrderHeadersV2": (COMPANY, "SalesOrderNumber"),
    "SalesOrderLines": (COMPANY, "InventoryLotId"),
    "SalesInvoiceHeadersV2": (COMPANY, "InvoiceNumber"),
    "SalesInvoiceLines": (COMPANY, "InvoiceNumber", "LineNumber"),
}


def pack_keys(pack: Pack) -> dict[str, tuple[str, ...]]:
    """Key properties of every F&O entity set `pack` reads or writes: the documented ones (`KNOWN_KEYS`), else
    the mapping's `erp.key` after the company field when the mapping is company-specific."""
    if pack.systems.erp is not System.FINANCE_OPERATIONS:
        return {}
    keys: dict[str, tuple[str, ...]] = {}
    for m in pack.mappings:
        entity = m.erp.entity
        if entity in KNOWN_KEYS:
            keys[entity] = KNOWN_KEYS[entity]
        else:
            company = m.company.erp_field if m.company is not None else None
            keys.setdefault(entity, (company, m.erp.key) if company and company != m.erp.key else (m.erp.key,))
    return keys


def synced_companies(pack: Pack) -> frozenset[str] | None:
    """The legal entities a pack limits itself to (`companies.only`, lower-case), or None for all."""
    only = next((m.company.only for m in pack.mappings if m.company is not None), None)
    return frozenset(c.lower() for c in only) if only else None


class FinanceOperationsConnector(MultipartBatchWrites, ODataReads):
    """Reads and writes F&O data entities across legal entities. See `shared.connectors.base.Connector`."""

    system = System.FINANCE_OPERATIONS
    side = Side.ERP
    modified_field = ""  # no common modified-on field: see the module docstring
    required_fields: tuple[str, ...] = ()
    max_page = MAX_PAGE
    supports_upsert = False  # keys are natural keys: create with the key, or find it and update

    def __init__(self, http: httpx.AsyncClient, credential: AsyncTokenCredential, *, base_url: str,
                 scope: str | None = None, keys: Mapping[str, Sequence[str]] | None = None,
                 limiter: ConcurrencyLimiter | None = None, retry: RetryExecutor | None = None,
                 redactor: Redactor | None = None, max_concurrency: int = 8, batch_size: int = 100,
                 page_size: int = 1000) -> None:
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"Finance and Operations batch_size must be 1…{MAX_BATCH}, got {batch_size}")
        if not 1 <= page_size <= MAX_PAGE:
            raise ValueError(f"Finance and Operations page_size must be 1…{MAX_PAGE}, got {page_size}")
        self.root = base_url.rstrip("/") + "/data/"
        self.svc = ServiceClient(http, credential, scope=scope or base_url.rstrip("/") + "/.default",
                                 target=FINANCE_OPERATIONS, headers=HEADERS, max_concurrency=max_concurrency,
                                 limiter=limiter, retry=retry, redactor=redactor)
        self.batch_url = self.root + "$batch"
        self.batch_size = batch_size
        self.page_size = page_size
        self.keys = {**KNOWN_KEYS, **{entity: tuple(fields) for entity, fields in (keys or {}).items()}}

    @classmethod
    def from_settings(cls, settings: ErpSettings, http: httpx.AsyncClient, *,
                      keys: Mapping[str, Sequence[str]] | None = None, credential: AsyncTokenCredential | None = None,
                      limiter: ConcurrencyLimiter | None = None,
                      retry: RetryExecutor | None = None) -> FinanceOperationsConnector:
        """A connector configured from `DUALSYNC_ERP__*` settings with `KIND=finance_operations`."""
        credential = credential or make_credential(
            tenant_id=settings.tenant_id, client_id=settings.client_id, client_secret=settings.client_secret,
            authority=settings.authority)
        return cls(http, credential, base_url=settings.api_base_url, scope=settings.effective_scope, keys=keys,
                   limiter=limiter, retry=retry, redactor=Redactor([settings.client_secret]),
                   max_concurrency=settings.max_concurrency, batch_size=settings.batch_size,
                   page_size=min(settings.page_size, MAX_PAGE))

    # ----- keys and addressing
    def key_fields(self, entity: str) -> tuple[str, ...]:
        check_identifier(entity)
        try:
            return self.keys[entity]
        except KeyError:
            raise PermanentError(f"the key properties of F&O entity set {entity!r} are not known; declare them "
                                 "in the pack (erp.key, plus the company field for company-specific mappings)",
                                 code="InvalidArgument") from None

    def record_id(self, entity: str, values: Mapping[str, Any]) -> str:
        """The id of the record of `entity` whose values are `values` (its key properties, canonical order)."""
        fields = self.key_fields(entity)
        missing = [f for f in fields if values.get(f) in (None, "")]
        if missing:
            raise PermanentError(f"{entity} record without its key propert{'ies' if len(missing) > 1 else 'y'} "
                                 f"{', '.join(missing)}", code="UnexpectedResponse")
        return key_predicate({f: values[f] for f in fields})

    def key_values(self, entity: str, record_id: str) -> dict[str, Any]:
        return self.key_of(entity, record_id)

    def key_of(self, entity: str, record_id: str) -> dict[str, Any]:
        """The key a record id names, checked against the entity's key properties."""
        key = parse_key_predicate(record_id)
        if set(key) != set(self.key_fields(entity)):
            raise PermanentError(f"record id {record_id!r} does not name the key of {entity} "
                                 f"({', '.join(self.key_fields(entity))})", code="InvalidArgument")
        return key

    def url(self, entity: str, record_id: str | None = None) -> str:
        base = self.root + check_identifier(entity)
        return base if record_id is None else base + key_segment(self.key_of(entity, record_id))

    def collection_url(self, entity: str, query: str) -> str:
        return self.url(entity) + query + ("&" if query else "?") + "cross-company=true"

    def required_for(self, entity: str) -> tuple[str, ...]:
        return self.key_fields(entity)

    @staticmethod
    def format_datetime(value: dt.datetime) -> str:
        return format_datetime(value, "s")

    def record(self, entity: str, body: Mapping[str, Any]) -> Record:
        values = {k: v for k, v in body.items() if not is_odata_annotation(k)}
        etag = body.get("@odata.etag")
        return Record(entity=entity, id=self.record_id(entity, values), values=values,
                      etag=etag if isinstance(etag, str) else None)

    def id_from_headers(self, headers: Mapping[str, str]) -> str | None:
        """The record id from a `Location` / `OData-EntityId` header (`…/CustomersV3(dataAreaId='usmf',…)`)."""
        link = headers.get("location") or headers.get("Location") or headers.get("odata-entityid") or ""
        start, end = link.find("("), link.rfind(")")
        if start < 0 or end <= start:
            return None
        try:
            return key_predicate(parse_key_predicate(unquote(link[start + 1:end])))
        except PermanentError:
            return None

    # ----- single writes
    async def create(self, entity: str, payload: Mapping[str, Any]) -> Record:
        body = await self.svc.json("POST", self.url(entity), json=dict(payload), headers=WRITE_HEADERS,
                                   context=f"create {entity}")
        return self.record(entity, body)

    async def update(self, entity: str, record_id: str, payload: Mapping[str, Any], *,
                     etag: str | None = None) -> Record:
        response = await self.svc.send("PATCH", self.url(entity, record_id), json=dict(payload),
                                       headers={**WRITE_HEADERS, "If-Match": etag or "*"},
                                       context=f"update {entity}({record_id})")
        if response.content:
            return self.record(entity, body_of(response, f"update {entity}({record_id})"))
        return await self.get(entity, record_id)  # 204: read the new etag and the values F&O settled on

    async def upsert(self, entity: str, key: Mapping[str, Any], payload: Mapping[str, Any], *,
                     create_only: bool = False, update_only: bool = False) -> Record:
        """Not offered (check `supports_upsert`): F&O's keys are the natural keys, so the engine finds the record
        by its key and creates or updates it."""
        raise PermanentError(f"upsert of {entity}: use create or update; Finance and Operations keys are natural "
                             "keys", code="NotSupported")

    async def delete(self, entity: str, record_id: str, *, etag: str | None = None) -> None:
        try:
            await self.svc.send("DELETE", self.url(entity, record_id), headers={"If-Match": etag or "*"},
                                context=f"delete {entity}({record_id})")
        except NotFound:
            return  # already gone: the outcome the caller wanted

    # ----- batched writes (MultipartBatchWrites.write_batch)
    def batch_request(self, op: WriteOp) -> BatchRequest:
        if op.method == "upsert":
            raise PermanentError(f"upsert of {op.entity}: not offered by Finance and Operations", code="NotSupported")
        if op.method == "create":
            return BatchRequest("POST", self.url(op.entity), WRITE_HEADERS, op.payload)
        assert op.id is not None
        headers = {"If-Match": op.etag or "*"}
        if op.method == "delete":
            return BatchRequest("DELETE", self.url(op.entity, op.id), headers)
        return BatchRequest("PATCH", self.url(op.entity, op.id), {**WRITE_HEADERS, **headers}, op.payload)
