"""The trace context across the queue: W3C `traceparent` / `tracestate` in a Service Bus message's application
properties, so the processor's span is a child of the webhook's and one trace follows one change.

The senders (`shared.queue.sender`, the local host's) add `trace_properties()` to every message they send or
schedule; the processor's span starts from `context_from(properties)`. With telemetry off the current span is
invalid and nothing is added: messages stay as they were.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

KEYS = ("traceparent", "tracestate")
_W3C = TraceContextTextMapPropagator()


def trace_properties() -> dict[str, str]:
    """The current span's context as application properties (empty when nothing is being traced)."""
    carrier: dict[str, str] = {}
    _W3C.inject(carrier)
    return carrier


def context_from(properties: Mapping[str, Any] | None) -> Context | None:
    """The context a message carries (None: none, or not readable — the processor then starts a new trace).
    Service Bus may hand string properties back as bytes."""
    if not properties:
        return None
    carrier = {}
    for key in KEYS:
        value = properties.get(key)
        if isinstance(value, bytes | bytearray):
            value = bytes(value).decode("ascii", "replace")
        if isinstance(value, str) and value:
            carrier[key] = value
    if "traceparent" not in carrier:
        return None
    return _W3C.extract(carrier)
