"""Turning telemetry on from the environment (shared.telemetry.setup.configure): nothing by default, the console
or a JSON-lines file locally, a clear error naming the variable for a bad value; the managed identity for
Application Insights when infra/ turns local auth off."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.identity import ManagedIdentityCredential

from shared.settings import SettingsError
from shared.telemetry import instruments as names
from shared.telemetry import setup
from shared.telemetry.exporters import read_spans


@pytest.fixture(autouse=True)
def undone() -> Iterator[None]:
    yield
    setup.reset()


def test_by_default_nothing_is_recorded() -> None:
    assert setup.configure({}) == "none"
    with setup.tracer().start_as_current_span("webhook") as span:
        assert not span.is_recording()
    assert setup.lag_alert_seconds() == 300.0 and setup.activity_flush_seconds() == 5.0


def test_a_file_gets_spans_and_metrics_as_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "telemetry" / "trace.jsonl"
    env = {"DUALSYNC_TELEMETRY__EXPORTER": f"file:{path}", "DUALSYNC_ALERTS__LAG_SECONDS": "42",
           "DUALSYNC_TELEMETRY__ACTIVITY_FLUSH_S": "2"}
    assert setup.configure(env) == "file"
    assert setup.lag_alert_seconds() == 42.0 and setup.activity_flush_seconds() == 2.0
    with setup.tracer().start_as_current_span("webhook business_central/customers"), \
            setup.tracer().start_as_current_span("enqueue 1 message(s)"):
        pass
    setup.instruments().changes.add(1, {"mapping": "customers", "direction": "to_crm", "outcome": "modified"})
    setup.force_flush()
    spans = read_spans(path)
    assert [s["name"] for s in spans] == ["enqueue 1 message(s)", "webhook business_central/customers"]
    assert spans[0]["parent_id"] == spans[1]["context"]["span_id"]
    metrics = [json.loads(line) for line in path.read_text().splitlines() if "resource_metrics" in line]
    found = [m for line in metrics for rm in line["resource_metrics"] for sm in rm["scope_metrics"]
             for m in sm["metrics"] if m["name"] == names.CHANGES]
    assert found and found[-1]["data"]["data_points"][0]["value"] == 1


def test_the_console_exporter_is_chosen_by_name() -> None:
    assert setup.configure({"DUALSYNC_TELEMETRY__EXPORTER": "console"}) == "console"
    with setup.tracer().start_as_current_span("x") as span:
        assert span.is_recording()


@pytest.mark.parametrize(("name", "value"), [("DUALSYNC_TELEMETRY__EXPORTER", "jaeger"),
                                             ("DUALSYNC_TELEMETRY__EXPORTER", "file:"),
                                             ("DUALSYNC_ALERTS__LAG_SECONDS", "-5"),
                                             ("DUALSYNC_TELEMETRY__ACTIVITY_FLUSH_S", "0")])
def test_a_bad_setting_is_refused_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as info:
        setup.configure({name: value})
    assert name in str(info.value)
    if name.endswith("EXPORTER"):
        assert "must be none, console or file:PATH" in str(info.value)


def test_application_insights_is_reached_with_the_managed_identity_when_local_auth_is_off() -> None:
    # What infra/main.bicep sets: APPLICATIONINSIGHTS_AUTHENTICATION_STRING = ClientId=<identity>;Authorization=AAD
    credential = setup._entra_credential("ClientId=11111111-1111-1111-1111-111111111111;Authorization=AAD")
    assert isinstance(credential, ManagedIdentityCredential)
    assert setup._entra_credential("") is None
    assert setup._entra_credential("Authorization=Key") is None


def test_reset_leaves_nothing_recording() -> None:
    setup.configure({"DUALSYNC_TELEMETRY__EXPORTER": "console"})
    setup.reset()
    with setup.tracer().start_as_current_span("after") as span:
        assert not span.is_recording()
    from opentelemetry import trace

    with trace.get_tracer("anyone").start_as_current_span("global") as span:  # the SDK's global provider too
        assert not span.is_recording()
