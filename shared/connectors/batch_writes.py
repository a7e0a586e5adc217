"""Batched writes over OData v4 multipart `$batch`, shared by the Dataverse and Finance and Operations connectors.

Both services answer a batch the same way (`odata_batch`): an atomic set is one change set, rolled back as a
whole and answered by the failing operation alone; without `Prefer: odata.continue-on-error` processing stops at
the first failure. What differs per service is only how one `WriteOp` becomes a request (URL, key, headers) and
how a written record is read from an answer — the connector's `batch_request` and `record`/`id_from_headers`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shared.connectors.base import Aborted, ConnectorError, PermanentError, Record, WriteOp, WriteResult
from shared.connectors.errors import error_from_parts, error_from_request_error
from shared.connectors.odata_batch import (
    BatchFormatError,
    BatchRequest,
    BatchResponse,
    boundary_of,
    build_batch,
    parse_batch_response,
)
from shared.connectors.service import ServiceClient, check_op, run_in_chunks
from shared.http.retry import RequestError


class MultipartBatchWrites:
    """Mixin: `write_batch` over multipart `$batch`. The connector supplies `svc`, `batch_url`, `batch_size`,
    `batch_request(op)`, `record(entity, body)`, `id_from_headers(headers)` and `describe_op(op)`."""

    svc: ServiceClient
    batch_url: str
    batch_size: int

    def batch_request(self, op: WriteOp) -> BatchRequest:
        raise NotImplementedError

    def record(self, entity: str, body: Mapping[str, Any]) -> Record:
        raise NotImplementedError

    def id_from_headers(self, headers: Mapping[str, str]) -> str | None:
        """The written record's id from `OData-EntityId` / `Location` when the answer has no body."""
        return None

    def describe_op(self, op: WriteOp) -> str:
        return f"{op.method} {op.entity}{f'({op.id})' if op.id else ''}"

    async def write_batch(self, ops: Sequence[WriteOp], *, atomic: bool = False) -> list[WriteResult]:
        """Multipart `$batch` in chunks of `batch_size`. Atomic: one change set (all or nothing). Otherwise
        `Prefer: odata.continue-on-error`, so one bad record does not stop the others."""
        return await run_in_chunks(ops, self.batch_size, atomic, lambda chunk: self._batch(chunk, atomic))

    async def _batch(self, ops: Sequence[WriteOp], atomic: bool) -> list[WriteResult]:
        results: list[WriteResult | None] = [None] * len(ops)
        sendable: list[tuple[int, BatchRequest]] = []
        for i, op in enumerate(ops):
            try:
                bad = check_op(op)
                if bad is None:
                    sendable.append((i, self.batch_request(op)))
            except PermanentError as exc:
                bad = exc
            if bad is not None:
                results[i] = WriteResult(op, error=bad)
        if sendable and (not atomic or len(sendable) == len(ops)):
            answers = await self._send_batch([r for _, r in sendable], atomic, len(ops))
            for (i, _), answer in zip(sendable, answers, strict=True):
                results[i] = self._result(ops[i], answer)
        why = "not applied: another operation of the atomic set was invalid"
        return [r or WriteResult(op, error=Aborted(why, code="Aborted")) for op, r in zip(ops, results, strict=True)]

    async def _send_batch(self, requests: list[BatchRequest], atomic: bool,
                          count: int) -> list[BatchResponse | ConnectorError]:
        content_type, body = build_batch(requests, atomic=atomic)
        headers = {"Content-Type": content_type}
        if not atomic:
            headers["Prefer"] = "odata.continue-on-error"
        context = f"$batch of {count} operations"
        try:
            response = await self.svc.send_raw("POST", self.batch_url, headers=headers, content=body)
        except RequestError as exc:
            # Without continue-on-error the batch answers with the failure's status, still listing each answer.
            if exc.response is None or boundary_of(exc.response.headers.get("content-type")) is None:
                error = error_from_request_error(exc, context, self.svc.redactor)
                return [error] * len(requests)
            response = exc.response
        try:
            parts = parse_batch_response(response.headers.get("content-type"), response.content)
        except BatchFormatError as exc:
            return [PermanentError(f"{context}: {exc}", code="UnexpectedResponse")] * len(requests)
        return match_answers(parts, len(requests), atomic)

    def _result(self, op: WriteOp, answer: BatchResponse | ConnectorError) -> WriteResult:
        if isinstance(answer, ConnectorError):
            return WriteResult(op, error=answer)
        if answer.status >= 400:
            if op.method == "delete" and answer.status == 404:
                return WriteResult(op)
            return WriteResult(op, error=error_from_parts(answer.status, answer.headers, answer.body,
                                                          self.describe_op(op), self.svc.redactor))
        if op.method == "delete":
            return WriteResult(op)
        body = answer.json()
        if isinstance(body, dict):
            return WriteResult(op, record=self.record(op.entity, body))
        rid = self.id_from_headers(answer.headers) or op.id
        return WriteResult(op, record=Record(op.entity, rid, {}) if rid else None)


def match_answers(parts: list[BatchResponse], count: int, atomic: bool) -> list[BatchResponse | ConnectorError]:
    """One answer (or error) per request. A failed change set is answered by the failing part alone: that
    request gets it, the rest were rolled back. Requests the service never reached were not applied."""
    if atomic:
        failed = next((p for p in parts if p.status >= 400), None)
        if failed is None and len(parts) == count:
            by_id = {p.content_id: p for p in parts if p.content_id}
            return [by_id.get(str(n), parts[n - 1]) for n in range(1, count + 1)]
        cause = f"HTTP {failed.status} on operation {failed.content_id}" if failed else "an incomplete answer"
        rolled_back = Aborted(f"not applied: the change set was rolled back after {cause}", code="Aborted")
        return [failed if failed is not None and failed.content_id == str(n) else rolled_back
                for n in range(1, count + 1)]
    stopped = Aborted("not applied: the service stopped processing the batch before this operation",
                      code="Aborted")
    return [parts[n] if n < len(parts) else stopped for n in range(count)]
