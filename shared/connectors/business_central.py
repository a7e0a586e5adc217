"""Business Central API v2.0 connector (PROTOCOLS.md §3): the ERP side.

Everything lives under `…/v2.0/{tenant}/{environment}/api/v2.0/companies({id})/`. PATCH and DELETE always
carry `If-Match` (the record's etag, or `*`): BC refuses them without one. The API has no alternate keys,
so there is no upsert (`supports_upsert = False`): find the record by its number, then create or update.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
from azure.core.credentials_async import AsyncTokenCredential

from shared.connectors.base import Aborted, ConnectorError, NotFound, PermanentError, Record, WriteOp, WriteResult
from shared.connectors.errors import error_from_parts, error_from_request_error
from shared.connectors.odata import (
    check_guid,
    check_identifier,
    format_datetime,
    to_record,
)
from shared.connectors.reads import ODataReads
from shared.connectors.service import ServiceClient, body_of, check_op, run_in_chunks
from shared.http.auth import make_credential
from shared.http.limits import BUSINESS_CENTRAL, ConcurrencyLimiter
from shared.http.redact import Redactor
from shared.http.retry import RequestError, RetryExecutor
from shared.mapping.types import Side, System
from shared.settings import ErpSettings

DEFAULT_BASE_URL = "https://api.businesscentral.dynamics.com/v2.0"
DEFAULT_SCOPE = "https://api.businesscentral.dynamics.com/.default"
MAX_BATCH = 100  # operations per JSON $batch
# Document lines carry no lastModifiedDateTime (API v2.0 reference): they are caught up by content.
NO_MODIFIED = frozenset({"salesOrderLines", "salesInvoiceLines", "salesQuoteLines", "salesCreditMemoLines",
                         "purchaseInvoiceLines", "purchaseOrderLines"})
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
                 environment: str, company_id: str, base_url: str = DEFAULT_BASE_URL, scope: str = DEFAULT_SCOPE,
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
        self.company_id = check_guid(company_id, "company id")
        # Batch operation URLs are relative to the API root, as in Microsoft's examples.
        self.company_path = f"companies({self.company_id})/"
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
            authority=settings.authority, http=http)
        return cls(http, credential, tenant_id=settings.tenant_id, environment=settings.environment,
                   company_id=settings.company_id or "", base_url=settings.api_base_url, scope=settings.effective_scope,
                   limiter=limiter, retry=retry, redactor=Redactor([settings.client_secret]),
                   max_concurrency=settings.max_concurrency, batch_size=settings.batch_size,
                   page_size=settings.page_size)

    # ----- addressing
    def path(self, entity: str, record_id: str | None = None) -> str:
        """`companies(<id>)/customers` or `companies(<id>)/customers(<guid>)`, relative to the API root."""
        base = self.company_path + check_identifier(entity)
        return base if record_id is None else f"{base}({check_guid(record_id)})"

    def key_fields(self, entity: str) -> tuple[str, ...]:
        return ("id",)

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

    def record(self, entity: str, body: Mapping[str, Any]) -> Record:
        return to_record(entity, body, id_field="id", modified_field=self.modified_field)

    # ----- single writes
    async def create(self, entity: str, payload: Mapping[str, Any]) -> Record:
        body = await self.svc.json("POST", self.url(entity), json=dict(payload), headers=JSON_BODY,
                                   context=f"create {entity}")
        return self.record(entity, body)

    async def update(self, entity: str, record_id: str, payload: Mapping[str, Any], *,
                     etag: str | None = None) -> Record:
        body = await self.svc.json("PATCH", self.url(entity, record_id), json=dict(payload),
                                   headers={**JSON_BODY, "If-Match": etag or "*"},
                                   context=f"update {entity}({record_id})")
        return self.record(entity, body)

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
            return {"method": "POST", "id": str(n), "url": self.path(op.entity), "headers": JSON_BODY,
                    "body": dict(op.payload)}
        assert op.id is not None
        request: dict[str, Any] = {"id": str(n), "url": self.path(op.entity, op.id),
                                   "headers": {"If-Match": op.etag or "*"}}
        if op.method == "delete":
            return {"method": "DELETE", **request}
        request["headers"].update(JSON_BODY)
        return {"method": "PATCH", **request, "body": dict(op.payload)}

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
        return WriteResult(op, record=self.record(op.entity, body))


def _status(answer: Mapping[str, Any]) -> int:
    try:
        return int(answer.get("status", 0))
    except (TypeError, ValueError):
        return 0
