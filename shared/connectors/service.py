"""The HTTP seam both connectors send through: bearer token, the service's standard headers, the one retry
executor and the per-target concurrency slot; failures leave as `ConnectorError`s, redacted.

The injected `httpx.AsyncClient` is never reconfigured (it may be shared with other code): auth and headers
are passed per request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

import httpx
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import AzureError, ClientAuthenticationError

from shared.connectors.base import ConnectorError, PermanentError, TransientError, WriteOp, WriteResult
from shared.connectors.errors import error_from_request_error
from shared.http.auth import BearerAuth
from shared.http.limits import ConcurrencyLimiter, client_id_of, target_key
from shared.http.paging import NextLinkPager, PagingError, iterate_pages
from shared.http.redact import Redactor
from shared.http.retry import RequestError, RetryExecutor

log = logging.getLogger(__name__)


class ServiceClient:
    """Sends one service's requests. `limiter` is shared by every connector of one event loop; when none is
    given, the connector gets its own. Either way `max_concurrency` caps `target`, and the limiter's budget is
    the service's and this client's user (`user`, else the credential's client id when it tells)."""

    def __init__(self, http: httpx.AsyncClient, credential: AsyncTokenCredential, *, scope: str, target: str,
                 headers: Mapping[str, str], max_concurrency: int, limiter: ConcurrencyLimiter | None = None,
                 retry: RetryExecutor | None = None, redactor: Redactor | None = None,
                 user: str | None = None) -> None:
        self.http = http
        self.auth = BearerAuth(credential, scope)
        self.target = target
        self.headers = dict(headers)
        self.limiter = limiter or ConcurrencyLimiter({target: max_concurrency})
        self.limiter.restrict(target, max_concurrency)  # the setting holds on a shared limiter too
        self.limit_key = target_key(target, user or client_id_of(credential))
        self.retry = retry or RetryExecutor()
        self.redactor = redactor or Redactor()

    def describe(self, method: str, url: str) -> str:
        return f"{method} {self.redactor.url(url)}"

    async def send_raw(self, method: str, url: str, *, headers: Mapping[str, str] | None = None,
                       json: Any = None, content: bytes | None = None) -> httpx.Response:
        """The successful response; raises the executor's `RequestError`s (for callers that read failed
        answers themselves, like `$batch`) or a `ConnectorError` when no token could be had."""
        merged = {**self.headers, **(headers or {})}

        async def attempt() -> httpx.Response:
            # Every attempt's answer (inside its slot) tells the limiter how much the service takes right now.
            try:
                response = await self.http.request(method, url, headers=merged, json=json, content=content,
                                                   auth=self.auth)
            except (httpx.HTTPError, OSError, TimeoutError):
                self.limiter.observe(self.limit_key, None)
                raise
            self.limiter.observe_response(self.limit_key, response)
            return response

        try:
            return await self.retry.run(attempt, slot=lambda: self.limiter.slot(self.limit_key),
                                        describe=self.describe(method, url))
        except ClientAuthenticationError as exc:
            # The credential already retried transient token-endpoint failures; what is left is configuration.
            raise PermanentError(self.redactor.text(f"{self.describe(method, url)}: no access token: {exc}"),
                                 status=401, code="AuthenticationFailed") from None
        except AzureError as exc:
            # The token endpoint could not be reached or answered 5xx after azure-core's own retries: transient.
            raise TransientError(self.redactor.text(f"{self.describe(method, url)}: no access token yet: {exc}"),
                                 code="TokenEndpointUnavailable") from None

    async def send(self, method: str, url: str, *, headers: Mapping[str, str] | None = None,
                   json: Any = None, content: bytes | None = None, context: str | None = None) -> httpx.Response:
        """The successful response, or a `ConnectorError` subclass chosen by the classifier."""
        try:
            return await self.send_raw(method, url, headers=headers, json=json, content=content)
        except RequestError as exc:
            error = error_from_request_error(exc, context or self.describe(method, url), self.redactor)
            log.info("%s", error.message)
            raise error from None

    async def json(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        response = await self.send(method, url, **kwargs)
        return body_of(response, self.describe(method, url))

    async def pages(self, url: str, *, headers: Mapping[str, str]) -> AsyncIterator[Mapping[str, Any]]:
        """Every page of a collection read, following `@odata.nextLink` verbatim (with the same headers:
        the page-size preference must be sent again on each request)."""

        async def fetch(page_url: str) -> Mapping[str, Any]:
            return await self.json("GET", page_url, headers=headers)

        try:
            async for body in iterate_pages(fetch, url, pager=NextLinkPager(url)):
                yield body
        except PagingError as exc:
            raise PermanentError(self.redactor.text(f"GET {url}: {exc}"), code="UnexpectedResponse") from None


def body_of(response: httpx.Response, context: str) -> dict[str, Any]:
    """A JSON object body, or a clear error when the service answered something else."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise PermanentError(f"{context}: expected a JSON object, got {response.headers.get('content-type')!r}",
                             status=response.status_code, code="UnexpectedResponse")
    return body


def check_op(op: WriteOp) -> ConnectorError | None:
    """Why an operation cannot be sent (missing id, key or payload), or None when it is well formed."""
    if op.method in ("update", "delete") and not op.id:
        return PermanentError(f"{op.method} of {op.entity} needs the record id", code="InvalidArgument")
    if op.method == "upsert" and not op.key:
        return PermanentError(f"upsert of {op.entity} needs alternate-key values", code="InvalidArgument")
    if op.method not in ("create", "update", "upsert", "delete"):
        return PermanentError(f"unknown write method {op.method!r}", code="InvalidArgument")
    return None


ChunkRunner = Callable[[Sequence[WriteOp]], Awaitable[list[WriteResult]]]


async def run_in_chunks(ops: Sequence[WriteOp], size: int, atomic: bool, run_chunk: ChunkRunner) -> list[WriteResult]:
    """Split `ops` into batches of at most `size` and run them concurrently (the limiter bounds how many are in
    flight). Results come back one per op, in the order of `ops`.

    An atomic write must fit one batch: two batches cannot be one transaction, and quietly committing half
    of an "atomic" set would be worse than refusing it.
    """
    if not ops:
        return []
    if atomic and len(ops) > size:
        raise ValueError(f"an atomic batch of {len(ops)} operations exceeds the batch size {size}; "
                         "split it into independent sets or raise the batch size")
    chunks = [ops[i:i + size] for i in range(0, len(ops), size)]
    done = await asyncio.gather(*(run_chunk(chunk) for chunk in chunks))
    return [result for chunk in done for result in chunk]
