"""Turning tracing and metrics on, once, at app start (`function_app.py` calls `configure()`):

- `APPLICATIONINSIGHTS_CONNECTION_STRING` set (Azure): the Azure Monitor OpenTelemetry distribution
  (`configure_azure_monitor`) exports spans, metrics and the `dualsync` loggers' records (the events the alert
  rules query) to Application Insights, signing in with the managed identity when
  `APPLICATIONINSIGHTS_AUTHENTICATION_STRING` says `Authorization=AAD` (infra/ turns local auth off).
- otherwise `DUALSYNC_TELEMETRY__EXPORTER`: `none` (the default: no SDK at all, every span and instrument is
  the API's no-op, so an unobserved app pays next to nothing), `console`, or `file:PATH` (JSON lines).

httpx is instrumented in both cases (the client spans of every read and write, with the query values left out
of the URL: they may hold record data), and so are the Azure SDKs (Table storage, Service Bus) when they can be.

Tests and the demo wire their own exporters with `install(...)` and undo it with `reset()`. Locally the SDK's
tracer provider is installed once per process as the global one (the Azure SDKs only find a global provider),
behind a switch: its span processors and sampler are swapped by `install`/`reset`, and with nothing wired the
sampler drops every span, so a process that once exported pays for nothing afterwards.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Decision, ParentBased, Sampler, SamplingResult

from shared.settings import AlertSettings, SettingsError, TelemetrySettings, load_group
from shared.telemetry.instruments import Instruments

log = logging.getLogger(__name__)
SERVICE_NAME = "dualsync"
CONNECTION_STRING = "APPLICATIONINSIGHTS_CONNECTION_STRING"
AUTHENTICATION_STRING = "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"
METRIC_INTERVAL_MS = 60_000  # Azure Monitor's own export interval; a local file gets the same rhythm


@dataclass
class _State:
    mode: str = "none"
    tracer: trace.Tracer = field(default_factory=trace.NoOpTracer)
    instruments: Instruments = field(default_factory=lambda: Instruments.on(metrics.NoOpMeter(SERVICE_NAME)))
    meter_provider: MeterProvider | None = None
    lag_alert_s: float = AlertSettings().lag_seconds
    activity_flush_s: float = TelemetrySettings().activity_flush_s


_state = _State()


def mode() -> str:
    """`none`, `azure-monitor`, `console`, `file` or `custom` (tests, the demo)."""
    return _state.mode


def tracer() -> trace.Tracer:
    return _state.tracer


def instruments() -> Instruments:
    return _state.instruments


def lag_alert_seconds() -> float:
    """End-to-end lag above which the processor emits `lag_high` (0: never)."""
    return _state.lag_alert_s


def activity_flush_seconds() -> float:
    return _state.activity_flush_s


def configure(environ: Mapping[str, str] | None = None) -> str:
    """Wire telemetry from the environment (see the module docstring); returns the mode chosen. Raises
    `SettingsError` for an invalid `DUALSYNC_TELEMETRY__*` / `DUALSYNC_ALERTS__*` setting."""
    env = os.environ if environ is None else environ
    settings = load_group("telemetry", TelemetrySettings, env)
    alerts = load_group("alerts", AlertSettings, env)
    reset()
    _state.lag_alert_s, _state.activity_flush_s = alerts.lag_seconds, settings.activity_flush_s
    if env.get(CONNECTION_STRING):
        _configure_azure_monitor(env)
        return _state.mode
    exporter = settings.exporter
    if exporter == "none":
        return _state.mode
    if exporter == "console":
        install(span_exporter=ConsoleSpanExporter(), batch=True,
                metric_readers=[PeriodicExportingMetricReader(ConsoleMetricExporter(),
                                                              export_interval_millis=METRIC_INTERVAL_MS)])
        _state.mode = "console"
        return _state.mode
    from shared.telemetry.exporters import JsonLinesMetricExporter, JsonLinesSpanExporter

    path = exporter.removeprefix("file:")
    install(span_exporter=JsonLinesSpanExporter(path), batch=True,
            metric_readers=[PeriodicExportingMetricReader(JsonLinesMetricExporter(path),
                                                          export_interval_millis=METRIC_INTERVAL_MS)])
    _state.mode = "file"
    return _state.mode


def install(*, span_exporter: SpanExporter | None = None, batch: bool = False,
            metric_readers: Sequence[MetricReader] = (), lag_alert_s: float | None = None,
            activity_flush_s: float | None = None) -> None:
    """Export spans to `span_exporter` (batched, or at once: what tests want) and metrics through
    `metric_readers` (e.g. the SDK's `InMemoryMetricReader`); replaces whatever was wired before."""
    reset(keep_settings=True)
    if lag_alert_s is not None:
        _state.lag_alert_s = lag_alert_s
    if activity_flush_s is not None:
        _state.activity_flush_s = activity_flush_s
    if span_exporter is not None:
        provider = _switched_provider()
        processor = BatchSpanProcessor(span_exporter) if batch else SimpleSpanProcessor(span_exporter)
        _SWITCH.processors = (processor,)
        _state.tracer = provider.get_tracer(SERVICE_NAME)
        _instrument_libraries(provider)
    if metric_readers:
        resource = Resource.create({"service.name": SERVICE_NAME})
        _state.meter_provider = MeterProvider(metric_readers=list(metric_readers), resource=resource)
        _state.instruments = Instruments.on(_state.meter_provider.get_meter(SERVICE_NAME))
    _state.mode = "custom"


def force_flush() -> None:
    """Export what is buffered now (the demo reads its trace file right after)."""
    for processor in _SWITCH.processors:
        processor.force_flush()
    if _state.meter_provider is not None:
        _state.meter_provider.force_flush()


def reset(*, keep_settings: bool = False) -> None:
    """Back to no telemetry (exporters flushed and shut down, libraries uninstrumented)."""
    processors, _SWITCH.processors = _SWITCH.processors, ()
    for processor in processors:
        processor.shutdown()
    if _state.meter_provider is not None:
        _state.meter_provider.shutdown()
    _uninstrument_libraries()
    fresh = _State()
    if keep_settings:
        fresh.lag_alert_s, fresh.activity_flush_s = _state.lag_alert_s, _state.activity_flush_s
    _state.__dict__.update(fresh.__dict__)


# ----- Azure Monitor


def _configure_azure_monitor(env: Mapping[str, str]) -> None:
    from azure.monitor.opentelemetry import configure_azure_monitor

    options: dict[str, Any] = {
        "connection_string": env[CONNECTION_STRING],
        # Only our own loggers (and so the `dualsync.events` the alert rules query): the Functions host already
        # ships every log line, a root handler would send each twice.
        "logger_name": "dualsync",
        # httpx is instrumented below, with the hook that keeps query values out of the spans.
        "instrumentation_options": {"httpx": {"enabled": False}},
        "resource": Resource.create({"service.name": SERVICE_NAME}),
    }
    credential = _entra_credential(env.get(AUTHENTICATION_STRING, ""))
    if credential is not None:
        options["credential"] = credential
    configure_azure_monitor(**options)
    logging.getLogger("dualsync.events").setLevel(logging.INFO)  # whatever the root level, events get out
    _state.tracer = trace.get_tracer(SERVICE_NAME)
    _state.instruments = Instruments.on(metrics.get_meter(SERVICE_NAME))
    _instrument_libraries(None)
    _state.mode = "azure-monitor"


def _entra_credential(authentication: str) -> Any:
    """The managed identity named by `ClientId=<id>;Authorization=AAD` (the setting the Functions host reads
    too), or None when telemetry is sent with the connection string alone."""
    parts = dict(p.split("=", 1) for p in authentication.split(";") if "=" in p)
    if parts.get("Authorization", "").upper() != "AAD":
        return None
    from azure.identity import ManagedIdentityCredential

    return ManagedIdentityCredential(client_id=parts.get("ClientId") or None)


# ----- the local, switchable tracer provider


class _Switch(SpanProcessor):
    """The span processors currently wired (none: nothing is recorded)."""

    processors: tuple[SpanProcessor, ...] = ()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        for processor in self.processors:
            processor.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        for processor in self.processors:
            processor.on_end(span)

    def shutdown(self) -> None:
        for processor in self.processors:
            processor.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return all(p.force_flush(timeout_millis) for p in self.processors)


class _SampleWhenWired(Sampler):
    """Records (parent-based) only while an exporter is wired: a dropped span costs almost nothing."""

    def __init__(self, switch: _Switch) -> None:
        self.switch, self.inner = switch, ParentBased(ALWAYS_ON)

    def should_sample(self, parent_context: Context | None, trace_id: int, name: str, *args: Any,
                      **kwargs: Any) -> SamplingResult:
        if not self.switch.processors:
            return SamplingResult(Decision.DROP)
        return self.inner.should_sample(parent_context, trace_id, name, *args, **kwargs)

    def get_description(self) -> str:
        return "dualsync: parent-based, on while an exporter is wired"


_SWITCH = _Switch()
_provider: TracerProvider | None = None


def _switched_provider() -> TracerProvider:
    global _provider
    if _provider is None:
        _provider = TracerProvider(sampler=_SampleWhenWired(_SWITCH),
                                   resource=Resource.create({"service.name": SERVICE_NAME}))
        _provider.add_span_processor(_SWITCH)
        if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            trace.set_tracer_provider(_provider)  # so the Azure SDKs' spans join our traces
    return _provider


# ----- libraries


_undo: list[Callable[[], None]] = []


def _instrument_libraries(provider: TracerProvider | None) -> None:
    """httpx (with the URL hook) on `provider` (None: the global one), and the Azure SDKs when the global
    provider is the one spans go to."""
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    from shared.telemetry.tracing import httpx_request_hook

    instrumentor = HTTPXClientInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(tracer_provider=provider, request_hook=httpx_request_hook,
                                async_request_hook=_async_hook)
        _undo.append(instrumentor.uninstrument)
    if provider is not None and trace.get_tracer_provider() is not provider:
        return
    try:
        from azure.core.settings import settings as azure_settings

        if azure_settings.tracing_implementation() is None:
            azure_settings.tracing_implementation = "opentelemetry"
            _undo.append(lambda: setattr(azure_settings, "tracing_implementation", None))
    except (ImportError, ValueError) as exc:  # azure-core-tracing-opentelemetry missing: no SDK spans
        log.debug("Azure SDK tracing not enabled: %s", exc)


async def _async_hook(span: Any, request: Any) -> None:
    from shared.telemetry.tracing import httpx_request_hook

    httpx_request_hook(span, request)


def _uninstrument_libraries() -> None:
    while _undo:
        _undo.pop()()


__all__ = ["SettingsError", "activity_flush_seconds", "configure", "force_flush", "install", "instruments",
           "lag_alert_seconds", "mode", "reset", "tracer"]
