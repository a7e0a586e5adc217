"""The spans of one change, in the order it travels:

    webhook business_central/customers            functions/webhooks.py (the root: a change starts here)
    └ enqueue 1 message                            shared/notices/intake.py (its context goes in the message)
      └ process customers to_crm                   shared/queue/process.py (parent read from the message)
        ├ read erp customers (source)              a `TracedConnector` around each connector
        │ └ GET                                    httpx instrumentation (query values left out)
        ├ read crm accounts (target)
        └ write crm accounts (target)

Connector spans are made only under a recording span, so a full sync run with telemetry on does not open a
trace per record read. Nothing here logs or records a record's values: ids, entity names, sides and outcomes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from shared.mapping import Side
from shared.telemetry.processing import current_run
from shared.telemetry.setup import tracer


@contextlib.contextmanager
def webhook_span(system: str, entity: str) -> Iterator[Span]:
    """The root span of a webhook call. Its `traceparent` is not read from the request: whoever calls a
    webhook cannot join (or flood) our traces; a change's trace starts where dualsync hears of it."""
    with tracer().start_as_current_span(f"webhook {system}/{entity}", context=trace.set_span_in_context(
            trace.INVALID_SPAN), kind=SpanKind.SERVER, attributes={"dualsync.system": system,
                                                                  "dualsync.entity": entity}) as span:
        yield span


@contextlib.contextmanager
def enqueue_span(count: int) -> Iterator[Span]:
    with tracer().start_as_current_span(f"enqueue {count} message(s)", kind=SpanKind.PRODUCER,
                                        attributes={"messaging.batch.message_count": count}) as span:
        yield span


def httpx_request_hook(span: Span, request: Any) -> None:
    """Keep query values out of a client span's URL: `$filter=` and friends may quote a record's data, and
    some URLs carry a key (`?code=`). The parameter names stay, so the request is still recognisable."""
    if not span.is_recording():
        return
    url = httpx.URL(str(request.url))
    names = [name for name, _ in url.params.multi_items()]
    shown = f"{url.scheme}://{url.netloc.decode('ascii', 'replace')}{url.path}"
    if names:
        shown += "?" + "&".join(dict.fromkeys(names))
    present = getattr(span, "attributes", None) or {}
    for key in ("url.full", "http.url"):
        if key in present:
            span.set_attribute(key, shown)
    span.set_attribute("dualsync.http.path", url.path)


class TracedConnector:
    """A connector whose reads and writes are spans (`read erp customers`, `write crm accounts`), marked
    source or target of the change being processed; it also tells the processor when the source record it read
    was last modified (the start of the change's end-to-end lag). Everything else is the connector's own."""

    def __init__(self, inner: Any, side: Side) -> None:
        self.__dict__["_inner"], self.__dict__["_side"] = inner, Side(side)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._inner, name, value)

    @property
    def inner(self) -> Any:
        return self._inner

    async def get(self, entity: str, record_id: str, **kwargs: Any) -> Any:
        with _span("read", self._side, entity, record_id):
            record = await self._inner.get(entity, record_id, **kwargs)
        run = current_run()
        if run is not None and run.source_side is self._side and record_id.lower() == run.source_id.lower():
            run.source_modified = getattr(record, "modified_on", None) or run.source_modified
        return record

    async def get_many(self, entity: str, ids: Sequence[str], **kwargs: Any) -> Any:
        with _span("read", self._side, entity, count=len(ids)):
            return await self._inner.get_many(entity, ids, **kwargs)

    async def create(self, entity: str, *args: Any, **kwargs: Any) -> Any:
        with _span("write", self._side, entity, operation="create"):
            return await self._inner.create(entity, *args, **kwargs)

    async def update(self, entity: str, record_id: str, *args: Any, **kwargs: Any) -> Any:
        with _span("write", self._side, entity, record_id, operation="update"):
            return await self._inner.update(entity, record_id, *args, **kwargs)

    async def upsert(self, entity: str, *args: Any, **kwargs: Any) -> Any:
        with _span("write", self._side, entity, operation="upsert"):
            return await self._inner.upsert(entity, *args, **kwargs)

    async def delete(self, entity: str, record_id: str, **kwargs: Any) -> Any:
        with _span("write", self._side, entity, record_id, operation="delete"):
            return await self._inner.delete(entity, record_id, **kwargs)

    async def write_batch(self, ops: Sequence[Any], **kwargs: Any) -> Any:
        entity = getattr(ops[0], "entity", "batch") if ops else "batch"
        with _span("write", self._side, str(entity), operation="batch", count=len(ops)):
            return await self._inner.write_batch(ops, **kwargs)


def instrument_engine(engine: Any) -> Any:
    """Wrap the engine's connectors in `TracedConnector`s (once); returns the engine."""
    engine.connectors = {side: c if isinstance(c, TracedConnector) else TracedConnector(c, side)
                         for side, c in engine.connectors.items()}
    return engine


@contextlib.contextmanager
def _span(verb: str, side: Side, entity: str, record_id: str | None = None, *, operation: str | None = None,
          count: int | None = None) -> Iterator[None]:
    if not trace.get_current_span().is_recording():
        yield
        return
    run = current_run()
    role = None if run is None else ("source" if side is run.source_side else "target")
    attributes: dict[str, Any] = {"dualsync.side": side.value, "dualsync.entity": entity}
    for key, value in (("dualsync.role", role), ("dualsync.record_id", record_id), ("dualsync.operation", operation),
                       ("dualsync.count", count)):
        if value is not None:
            attributes[key] = value
    name = f"{verb} {side.value} {entity}" + (f" ({role})" if role else "")
    with tracer().start_as_current_span(name, kind=SpanKind.CLIENT, attributes=attributes, record_exception=False,
                                        set_status_on_exception=False) as span:
        try:
            yield
        except Exception as exc:
            # A record not found is an answer (a deleted record), not a failure of the call.
            span.set_attribute("dualsync.error", type(exc).__name__)
            if type(exc).__name__ != "NotFound":
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
