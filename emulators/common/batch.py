"""The OData v4 `$batch` runner the emulators share (OData 4.0 Part 1 §11.7; Microsoft Learn, "Execute batch
operations using the Web API"). A batch is read whole under a request limit; top-level operations run one by
one; change sets run atomically (the store's write lock held and `store.transaction()` open for the whole set,
so a failure rolls the set back and its answer is the failing operation's response alone). Inside a change
set `$n` refers to an earlier operation's entity (Content-ID). Without `Prefer: odata.continue-on-error`
processing stops at the first failure. A malformed part answers 400 like a failed request, never a 500.

What differs per service is a `BatchDialect` (error shape, which header names a created entity, the status of
a stopped batch); how an operation URL becomes a request and is handled is the caller's `operation`."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from emulators.common.faults import FaultInjector
from emulators.common.multipart import (
    HttpMessage,
    MultipartError,
    Part,
    boundary_of,
    changeset_part,
    multipart,
    parse_request,
    response_part,
    split_parts,
)
from emulators.common.store import Store


class BatchResponse(Protocol):
    """An emulator's operation response (its `api.ApiResponse`)."""

    status: int
    headers: dict[str, str]
    body: Any

    def content(self) -> bytes: ...


E = TypeVar("E", bound=Exception)
# (operation message, its URL with any `$n` reference resolved, the change set's references or None at top level)
Operation = Callable[[HttpMessage, str, "dict[str, str] | None"], Awaitable[BatchResponse]]


@dataclass(frozen=True)
class BatchDialect(Generic[E]):
    error: type[E]  # the emulator's request error; raised by an operation, it becomes that operation's answer
    bad_request: Callable[[str], E]  # a 400 in the emulator's own error shape
    error_response: Callable[[E], BatchResponse]
    parse_prefer: Callable[[dict[str, str]], Mapping[str, str | None]]
    entity_header: str  # the response header naming a created entity, which `$n` then stands for
    missing_ref: str  # the message for an unknown `$n`, with `{ref}`
    failure_status: bool  # a stopped batch answers with the failure's status (else 200)

    async def run(self, headers: dict[str, str], body: bytes, *, store: Store, lock: asyncio.Lock, limit: int,
                  faults: FaultInjector, operation: Operation) -> tuple[int, dict[str, str], bytes]:
        """The batch's (status, headers, body); `headers` are the batch request's, lower-case names; `lock` is
        the emulator's write lock, which its own writers take unless inside a change set."""
        return await _Batch(self, store, lock, faults, operation).run(headers, body, limit)


class _ChangeSetFailed(Exception):
    def __init__(self, response: BatchResponse, content_id: str | None) -> None:
        self.response = response
        self.content_id = content_id


@dataclass
class _Batch(Generic[E]):
    dialect: BatchDialect[E]
    store: Store
    lock: asyncio.Lock
    faults: FaultInjector
    operation: Operation

    async def run(self, headers: dict[str, str], body: bytes, limit: int) -> tuple[int, dict[str, str], bytes]:
        try:
            items = self._read(headers, body, limit)
        except self.dialect.error as exc:
            err = self.dialect.error_response(exc)
            # A batch that cannot be read is answered as a plain JSON error, not a multipart one.
            plain = {"Content-Type": "application/json", "OData-Version": "4.0"}
            return err.status, plain, json.dumps(err.body).encode()
        continue_on_error = "odata.continue-on-error" in self.dialect.parse_prefer(headers)
        boundary = f"batchresponse_{uuid.uuid4()}"
        out: list[bytes] = []
        status = 200
        for item in items:
            failure: BatchResponse | None
            if isinstance(item, Part):
                resp = await self._guarded(self._op(item, None))
                out.append(response_part(resp.status, resp.headers, resp.content()))
                failure = resp if resp.status >= 400 else None
            else:
                part, failure = await self._changeset(item)
                out.append(part)
            if failure is not None and not continue_on_error:
                status = failure.status if self.dialect.failure_status else 200
                break
        answer = {"Content-Type": f"multipart/mixed; boundary={boundary}", "OData-Version": "4.0"}
        if continue_on_error:
            answer["Preference-Applied"] = "odata.continue-on-error"
        return status, answer, multipart(boundary, out)

    def _read(self, headers: dict[str, str], body: bytes, limit: int) -> list[Part | list[Part]]:
        bad = self.dialect.bad_request
        boundary = boundary_of(headers.get("content-type", ""))
        if boundary is None:
            raise bad("The batch request must have a Content-Type of multipart/mixed with a boundary.")
        try:
            items: list[Part | list[Part]] = []
            for part in split_parts(body, boundary):
                inner = boundary_of(part.headers.get("content-type", ""))
                items.append(split_parts(part.body, inner) if inner else part)
        except MultipartError as exc:
            raise bad(f"The batch request body is not valid: {exc}") from None
        count = sum(len(i) if isinstance(i, list) else 1 for i in items)
        if count > limit:
            raise bad(f"The number of requests in the batch ({count}) exceeds the limit of {limit}.")
        return items

    async def _op(self, part: Part, refs: dict[str, str] | None) -> BatchResponse:
        await self.faults.batch_op_delay()
        msg = parse_request(part.body)
        url = msg.url
        if url.startswith("$") and refs is not None:
            ref, _, rest = url.partition("/")
            if ref not in refs:
                raise self.dialect.bad_request(self.dialect.missing_ref.format(ref=ref))
            url = refs[ref] + ("/" + rest if rest else "")
        if msg.method == "GET" and refs is not None:
            raise self.dialect.bad_request("GET requests are not allowed inside a change set.")
        return await self.operation(msg, url, refs)

    async def _changeset(self, parts: list[Part]) -> tuple[bytes, BatchResponse | None]:
        """The change set's answer and, when it failed, the failing response."""
        refs: dict[str, str] = {}
        done: list[bytes] = []
        header = self.dialect.entity_header
        try:
            async with self.lock:
                with self.store.transaction():
                    for part in parts:
                        cid = part.headers.get("content-id")
                        resp = await self._guarded(self._op(part, refs))
                        if resp.status >= 400:
                            raise _ChangeSetFailed(resp, cid)
                        if cid and header in resp.headers:
                            refs[f"${cid}"] = resp.headers[header]
                            # Clients follow `Location` for the created entity whichever header the service names.
                            resp.headers.setdefault("Location", resp.headers[header])
                        done.append(response_part(resp.status, resp.headers, resp.content(), cid))
        except _ChangeSetFailed as failure:
            # The whole change set is rolled back; the answer is the failing operation's response alone.
            r = failure.response
            return response_part(r.status, r.headers, r.content(), failure.content_id), r
        return changeset_part(f"changesetresponse_{uuid.uuid4()}", done), None

    async def _guarded(self, op: Coroutine[Any, Any, BatchResponse]) -> BatchResponse:
        """An operation's response; malformed parts and bad references answer 400 like a failed request."""
        try:
            return await op
        except self.dialect.error as exc:
            return self.dialect.error_response(exc)
        except MultipartError as exc:
            return self.dialect.error_response(self.dialect.bad_request(f"The batch operation is not valid: {exc}"))
