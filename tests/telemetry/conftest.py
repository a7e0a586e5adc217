"""Telemetry wired to the SDK's in-memory exporter and reader for one test (`shared.telemetry.setup.install`),
and undone after it, so no other test records anything."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from azure.data.tables.aio import TableServiceClient
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.state import StateStore, TableNames
from shared.telemetry import setup
from shared.telemetry.trace_view import as_dicts


@dataclass
class Recorded:
    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader

    def spans(self) -> list[dict[str, Any]]:
        return as_dicts(self.exporter.get_finished_spans())

    def points(self, name: str) -> list[Any]:
        """The data points of metric `name` collected now (each with `.attributes`)."""
        data = self.reader.get_metrics_data()
        return [p for rm in (data.resource_metrics if data else []) for sm in rm.scope_metrics
                for m in sm.metrics if m.name == name for p in m.data.data_points]

    def total(self, name: str, **attributes: str) -> float:
        """Sum of a counter's points (or a histogram's counts) whose attributes include `attributes`."""
        return sum(getattr(p, "value", None) if hasattr(p, "value") else p.count
                   for p in self.points(name) if attributes.items() <= dict(p.attributes).items())


@pytest.fixture
def recorded() -> Iterator[Recorded]:
    exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
    setup.install(span_exporter=exporter, metric_readers=[reader], lag_alert_s=0)
    try:
        yield Recorded(exporter, reader)
    finally:
        setup.reset()


@pytest.fixture
async def store(table_connection_string: str, table_prefix: str) -> AsyncIterator[StateStore]:
    async with TableServiceClient.from_connection_string(table_connection_string) as service:
        state = StateStore(service, TableNames.with_prefix(table_prefix))
        await state.ensure_tables()
        yield state
