"""Business Central API v2.0 connector (PROTOCOLS.md §3): the ERP side.

Everything lives under `…/v2.0/{tenant}/{environment}/api/v2.0/companies({id})/`. PATCH and DELETE always
carry `If-Match` (the record's etag, or `*`): BC refuses them without one. The API has no alternate keys,
so there is no upsert (`supports_upsert = False`): find the record by its number, then create or update.

Several companies (one deployment, one Dataverse environment): a record's id is then `<company>/<record>` and
its values carry the company as `companyId` — dualsync's field, which BC does not have: the pack's `companies`
declaration stripes by it. Reads go company by company with every `companyId` condition of the filter decided
for that company (`odata.pin_field`); writes go to the company of the id or of the payload. With one company,
ids are BC's GUIDs and records carry nothing extra.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import httpx
from azure.core.credentials_async import AsyncTokenCredential

from shared.connectors.base import Aborted, ConnectorError, NotFound, PermanentError, Record, WriteOp, WriteResult
from shared.connectors.errors import error_from_parts, error_from_request_error
from shared.connectors.odata import (
    check_guid,
    check_identifier,
    format_datetime,
    invalid,
    query_string,
    to_record,
    with_fields,
)
from shared.connectors.reads import ODataReads
from shared.connectors.service import ServiceClient, body_of, check_op, run_in_chunks
from shared.http.auth import make_credential
from shared.http.limits import BUSINESS_CENTRAL, ConcurrencyLimiter
from shared.http.redact import Redactor
from shared.http.retry import RequestError, RetryExecutor
from shared.mapping.types import Side, System
from shared.odata import format_filter, parse_filter, pin_field
from shared.settings import ErpSettings

DEFAULT_BASE_URL = "https://api.businesscentral.dynamics.com/v2.0"
DEFAULT_SCOPE = "https://api.businesscentral.dynamics.com/.default"
MAX_BATCH = 100  # operations per JSON $batch
COMPANY_FIELD = "companyId"  # the company of a record, when several are synced (not a BC field)
GLOBAL = frozenset({"companies"})  # entity sets at the API root, not under a company
# Document lines and companies carry no lastModifiedDateTime (API v2.0 reference): caught up by content.
NO_MODIFIED = frozenset({"salesOrderLines", "salesInvoiceLines", "salesQuoteLines", "salesCreditMemoLines",
                         "purchaseInvoiceLines", "purchaseOrderLines", "companies"})
MAX_PAGE = 20000
HEADERS = {"Accept": "application/json"}
JSON_BODY = {"Content-Type": "application/json"}


def no_upsert(entity: str) -> PermanentError:
    return PermanentError(f"upsert of {entity}: the Business Central API has no alternate keys; read the record "
                          "by `$filter` on its number, then create or update it", code="NotSupported")


class BusinessCentralConnector(ODataReads):
    """Reads and writes one company's records through the BC API v2.0. See `shared.connectors.base.Connector`."""

    system = System.BUSINESS_CENTRAL
    side = Side.ERP
    modified_field = "lastModifiedDateTime"
    required_fields = ("id", "lastModifiedDateTime")
    max_page = MAX_PAGE
    supports_upsert = False

    def __init__(self, http: httpx.AsyncClient, credential: AsyncTokenCredential, *, tenant_id: str,
                 environment: str, company_id: str = "", company_ids: Sequence[str] = (),
                 base_url: str = DEFAULT_BASE_URL, scope: str = DEFAULT_SCOPE,
                 limiter: ConcurrencyLimiter | None = None, retry: RetryExecutor | None = None,
                 redactor: Redactor | None = None, max_concurrency: int = 5, batch_size: int = MAX_BATCH,
                 page_size: int = 1000) -> None:
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"Business Central batch_size must be 1…{MAX_BATCH}, got {batch_size}")
        if not 1 <= page_size <= MAX_PAGE:
            raise ValueError(f"Business Central page_size must be 1…{MAX_PAGE}, got {page_size}")
        if not tenant_id or not environment or "/" in tenant_id + environment:
            raise ValueError("Business Central needs a tenant id and an environment name (without '/')")
        self.api_root = f"{base_url.rstrip('/')}/{tenant_id}/{environment}/api/v2.0/"
        ids = list(company_ids) or [company_id]
        # Companies in GUID order: the order a key-order read across them goes in (`keyset`).
        self.companies = sorted({check_guid(c, "company id") for c in ids}, key=uuid.UUID)
        self.company_id = self.companies[0]
        self.several = len(self.companies) > 1
        self.svc = ServiceClient(http, credential, scope=scope, target=BUSINESS_CENTRAL, headers=HEADERS,
                                 max_concurrency=max_concurrency, limiter=limiter, retry=retry, redactor=redactor)
        self.batch_size = batch_size
        self.page_size = page_size

    @classmethod
    def from_settings(cls, settings: ErpSettings, http: httpx.AsyncClient, *,
                      credential: AsyncTokenCredential | None = None, limiter: ConcurrencyLimiter | None = None,
                      retry: RetryExecutor | None = None) -> BusinessCentralConnector:
        """A connector configured from `DUALSYNC_ERP__*` settings (client secret, or the managed identity)."""
        credential = credential or make_credential(
            tenant_id=settings.tenant_id, client_id=settings.client_id, client_secret=settings.client_secret,
            authority=settings.authority)
        return cls(http, credential, tenant_id=settings.tenant_id, environment=settings.environment,
                   company_id=settings.company_id or "", company_ids=settings.company_ids,
                   base_url=settings.api_base_url, scope=settings.effective_scope,
                   limiter=limiter, retry=retry, redactor=Redactor([settings.client_secret]),
                   max_concurrency=settings.max_concurrency, batch_size=settings.batch_size,
                   page_size=settings.page_size)

    # ----- addressing
    def striped(self, entity: str) -> bool:
        return self.several and entity not in GLOBAL

    def split_id(self, entity: str, record_id: str) -> tuple[str, str]:
        """(company, BC id) of a record id: `<company>/<guid>` when several companies are synced."""
        if not self.striped(entity):
            return self.company_id, check_guid(record_id)
        company, sep, rid = str(record_id).partition("/")
        if not sep or check_guid(company, "company id") not in self.companies:
            raise invalid(f"record id {record_id!r} of {entity} does not name one of the synced companies "
                          "(<company id>/<record id>)")
        return check_guid(company, "company id"), check_guid(rid)

    def path(self, entity: str, record_id: str | None = None, *, company: str | None = None) -> str:
        """`companies(<id>)/customers` or `companies(<id>)/customers(<guid>)`, relative to the API root (batch
        operation URLs are, as in Microsoft's examples); `companies` itself is at the root."""
        check_identifier(entity)
        if entity in GLOBAL:
            return entity if record_id is None else f"{entity}({check_guid(record_id)})"
        if record_id is None:
            return f"companies({company or self.company_id})/{entity}"
        company, rid = self.split_id(entity, record_id)
        return f"companies({company})/{entity}({rid})"

    def key_fields(self, entity: str) -> tuple[str, ...]:
        return (COMPANY_FIELD, "id") if self.striped(entity) else ("id",)

    def key_values(self, entity: str, record_id: str) -> dict[str, Any]:
        company, rid = self.split_id(entity, record_id)
        values: dict[str, Any] = {"id": uuid.UUID(rid)}
        return {COMPANY_FIELD: uuid.UUID(company), **values} if self.striped(entity) else values

    def modified_field_of(self, entity: str) -> str | None:
        return None if entity in NO_MODIFIED else self.modified_field

    def required_for(self, entity: str) -> tuple[str, ...]:
        return ("id",) if entity in NO_MODIFIED else self.required_fields

    def url(self, entity: str, record_id: str | None = None) -> str:
        return self.api_root + self.path(entity, record_id)

    @staticmethod
    def format_datetime(value: dt.datetime) -> str:
        """A `lastModifiedDateTime` literal for `$filter` (milliseconds, UTC, unquoted)."""
        return format_datetime(value, "ms")

    def record(self, entity: str, body: Mapping[str, Any], company: str | None = None) -> Record:
        """A `Record` of `company`'s `entity` (the company matters only when several are synced)."""
        found = to_record(entity, body, id_field="id", modified_field=self.modified_field)
        if not self.striped(entity):
            return found
        company = company or self.company_id
        return dataclasses.replace(found, id=f"{company}/{found.id}", values={**found.values, COMPANY_FIELD: company})

    def _company_of(self, entity: str, payload: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """The company a new record goes to (its `companyId`) and the body BC accepts (without it)."""
        body = {k: v for k, v in payload.items() if k != COMPANY_FIELD}
        if not self.striped(entity):
            return self.company_id, body
        company = payload.get(COMPANY_FIELD)
        if not company or check_guid(company, "company id") not in self.companies:
            raise invalid(f"a new {entity} record needs {COMPANY_FIELD}, one of the synced companies, "
                          f"not {company!r}")
        return check_guid(company, "company id"), body

    async def get(self, entity: str, record_id: str, *, select: Sequence[str] | None = None) -> Record:
        company, _ = self.split_id(entity, record_id)
        url = self.url(entity, record_id) + query_string(select=self._select(entity, select))
        return self.record(entity, await self.svc.json("GET", url, context=f"read {entity}({record_id})"), company)

    async def list(self, entity: str, *, filter: str | None = None, select: Sequence[str] | None = None,
                   orderby: str | None = None, page_size: int | None = None) -> AsyncIterator[list[Record]]:
        """Pages of every synced company in turn (`companyId` conditions decided per company)."""
        headers = {"Prefer": f"odata.maxpagesize={min(page_size or self.page_size, self.max_page)}"}
        order = ",".join(p for p in (orderby or "").split(",")
                         if p.strip() and p.split()[0] != COMPANY_FIELD) or None
        for company in self.companies if self.striped(entity) else [self.company_id]:
            text: str | bool | None = filter
            if filter is not None and self.striped(entity):
                pinned = pin_field(parse_filter(filter), COMPANY_FIELD, company)
                text = pinned if isinstance(pinned, bool) else format_filter(pinned)
            if text is False:
                continue
            query = query_string(select=self._select(entity, select), filter=None if text is True else text,
                                 orderby=order)
            async for body in self.svc.pages(self.api_root + self.path(entity, company=company) + query,
                                             headers=headers):
                yield [self.record(entity, item, company) for item in self.items(entity, body)]

    def _select(self, entity: str, select: Sequence[str] | None) -> list[str] | None:
        wanted = with_fields(select, self.required_for(entity))
        return None if wanted is None else [f for f in wanted if f != COMPANY_FIELD]

    # ----- single writes
    async def create(self, entity: str, payload: Mapping[str, Any]) -> Record:
        company, body = self._company_of(entity, payload)
        answer = await self.svc.json("POST", self.api_root + self.path(entity, company=company), json=body,
                                     headers=JSON_BODY, context=f"create {entity}")
        return self.record(entity, answer, company)

    async def update(self, entity: str, record_id: str, payload: Mapping[str, Any], *,
                     etag: str | None = None) -> Record:
        company, _ = self.split_id(entity, record_id)
        body = await self.svc.json("PATCH", self.url(entity, record_id),
                                   json={k: v for k, v in payload.items() if k != COMPANY_FIELD},
                                   headers={**JSON_BODY, "If-Match": etag or "*"},
                                   context=f"update {entity}({record_id})")
        return self.record(entity, body, company)

    async def upsert(self, entity: str, key: Mapping[str, Any], payload: Mapping[str, Any], *,
                     create_only: bool = False, update_only: bool = False) -> Record:
        """Not available: raises `PermanentError` (code `NotSupported`). Check `supports_upsert` first."""
        raise no_upsert(entity)

    async def delete(self, entity: str, record_id: str, *, etag: str | None = None) -> None:
        try:
            await self.svc.send("DELETE", self.url(entity, record_id), headers={"If-Match": etag or "*"},
                                context=f"delete {entity}({record_id})")
        except NotFound:
            return  # already gone: the outcome the caller wanted

    # ----- batched writes
    async def write_batch(self, ops: Sequence[WriteOp], *, atomic: bool = False) -> list[WriteResult]:
        """JSON `$batch` in chunks of `batch_size` (≤ 100). Atomic: `Isolation: snapshot`, all or nothing.
        Otherwise `Prefer: odata.continue-on-error`, so one bad record does not stop the others."""
        return await run_in_chunks(ops, self.batch_size, atomic, lambda chunk: self._batch(chunk, atomic))

    def _batch_request(self, n: int, op: WriteOp) -> dict[str, Any]:
        if op.method == "upsert":
            raise no_upsert(op.entity)
        if op.method == "create":
            company, body = self._company_of(op.entity, op.payload)
            return {"method": "POST", "id": str(n), "url": self.path(op.entity, company=company),
                    "headers": JSON_BODY, "body": body}
        assert op.id is not None
        request: dict[str, Any] = {"id": str(n), "url": self.path(op.entity, op.id),
                                   "headers": {"If-Match": op.etag or "*"}}
        if op.method == "delete":
            return {"method": "DELETE", **request}
        request["headers"].update(JSON_BODY)
        return {"method": "PATCH", **request,
                "body": {k: v for k, v in op.payload.items() if k != COMPANY_FIELD}}

    async def _batch(self, ops: Sequence[WriteOp], atomic: bool) -> list[WriteResult]:
        results: list[WriteResult | None] = [None] * len(ops)
        requests: list[dict[str, Any]] = []
        for i, op in enumerate(ops):
            try:
                bad = check_op(op)
                if bad is None:
                    requests.append(self._batch_request(i + 1, op))
            except PermanentError as exc:
                bad = exc
            if bad is not None:
                results[i] = WriteResult(op, error=bad)
        if requests and (not atomic or len(requests) == len(ops)):
            answers = await self._send_batch(requests, atomic)
            for request in requests:
                i = int(request["id"]) - 1
                results[i] = self._result(ops[i], answers[request["id"]])
        why = "not applied: another operation of the atomic set was invalid"
        return [r or WriteResult(op, error=Aborted(why, code="Aborted")) for op, r in zip(ops, results, strict=True)]

    async def _send_batch(self, requests: list[dict[str, Any]],
                          atomic: bool) -> dict[str, dict[str, Any] | ConnectorError]:
        headers = {**JSON_BODY, **({"Isolation": "snapshot"} if atomic else {"Prefer": "odata.continue-on-error"})}
        context = f"$batch of {len(requests)} operations"
        try:
            response = await self.svc.send_raw("POST", self.api_root + "$batch", headers=headers,
                                               json={"requests": requests})
        except RequestError as exc:
            error = error_from_request_error(exc, context, self.svc.redactor)
            return {r["id"]: error for r in requests}
        answers = body_of(response, context).get("responses")
        if not isinstance(answers, list) or not all(isinstance(a, dict) for a in answers):
            error = PermanentError(f"{context}: answer without a 'responses' list", code="UnexpectedResponse")
            return {r["id"]: error for r in requests}
        by_id: dict[str, dict[str, Any] | ConnectorError] = {str(a.get("id")): a for a in answers}
        failed = next((a for a in answers if _status(a) >= 400), None)
        if atomic and failed is not None:
            # Snapshot isolation reverted everything, though earlier answers still show their success.
            rolled_back = Aborted(f"not applied: the batch was rolled back after HTTP {_status(failed)} on "
                                  f"operation {failed.get('id')}", code="Aborted")
            return {r["id"]: failed if r["id"] == str(failed.get("id")) else rolled_back for r in requests}
        stopped = Aborted("not applied: the service stopped processing the batch before this operation",
                          code="Aborted")
        return {r["id"]: by_id.get(r["id"], stopped) for r in requests}

    def _result(self, op: WriteOp, answer: dict[str, Any] | ConnectorError) -> WriteResult:
        if isinstance(answer, ConnectorError):
            return WriteResult(op, error=answer)
        status, body = _status(answer), answer.get("body")
        if status >= 400:
            if op.method == "delete" and status == 404:
                return WriteResult(op)
            raw = json.dumps(body).encode() if body is not None else b""
            headers = {str(k): str(v) for k, v in (answer.get("headers") or {}).items()}
            return WriteResult(op, error=error_from_parts(status, headers, raw, f"{op.method} {op.entity}"
                                                          f"{f'({op.id})' if op.id else ''}", self.svc.redactor))
        if op.method == "delete" or not isinstance(body, dict):
            return WriteResult(op)
        company = self.split_id(op.entity, op.id)[0] if op.id else self._company_of(op.entity, op.payload)[0]
        return WriteResult(op, record=self.record(op.entity, body, company))


def _status(answer: Mapping[str, Any]) -> int:
    try:
        return int(answer.get("status", 0))
    except (TypeError, ValueError):
        return 0
