"""The alerts of infra/modules/alerts.bicep, parsed with pycep: an action group whose e-mail and webhook receivers
are parameters (webhook URLs secure), and rules for auto-pause, dead letters, error rate and end-to-end lag that
look at what the app really emits — event names found in the code's `events.emit` calls, metric names from
shared.telemetry.instruments, the lag threshold given to the app as DUALSYNC_ALERTS__LAG_SECONDS."""

from __future__ import annotations

import os
import re
from typing import Any

import pytest

from shared.settings import load_settings
from shared.telemetry import instruments
from tests.infra.bicep import (
    MAIN,
    ROOT,
    Evaluator,
    body,
    dotted,
    module_template,
    parameter_values,
    resources_of,
    template,
)
from tests.infra.test_bicep import KNOWN, app_settings, resolved_env

ALERTS = module_template("alerts")
LOG_RULE = "Microsoft.Insights/scheduledQueryRules"
METRIC_RULE = "Microsoft.Insights/metricAlerts"
MODULE_PARAMS = template(MAIN)["modules"]["alerts"]["config"]["params"]


def emitted_events() -> set[str]:
    """Every event name the app's code emits (`events.emit("<name>", …)`)."""
    names: set[str] = set()
    for path in [*ROOT.joinpath("shared").rglob("*.py"), *ROOT.joinpath("functions").rglob("*.py")]:
        names |= set(re.findall(r"\bemit\(\s*\"([a-z_]+)\"", path.read_text(encoding="utf-8")))
    return names


def log_rules() -> dict[str, dict[str, Any]]:
    return {name: body(r) for name, r in resources_of(ALERTS, LOG_RULE).items()}


def criterion(rule: dict[str, Any]) -> dict[str, Any]:
    [only] = rule["properties"]["criteria"]["allOf"]
    return only


def query_of(rule: dict[str, Any]) -> str:
    """The rule's KQL with the module's variables put in (`${events}` is the event filter's start)."""
    variables = {name: v["value"] for name, v in ALERTS["variables"].items() if isinstance(v["value"], str)}
    return re.sub(r"\$\{(\w+)\}", lambda m: variables.get(m.group(1), m.group(0)), criterion(rule)["query"])


def test_the_action_group_takes_its_email_and_webhook_receivers_from_parameters() -> None:
    (group,) = resources_of(ALERTS, "Microsoft.Insights/actionGroups").values()
    props = body(group)["properties"]
    assert body(group)["location"].lower() == "global" and props["enabled"] is True
    emails, hooks = props["emailReceivers"], props["webhookReceivers"]
    assert emails["loop_type"]["detail"]["array_name"] == "alertEmails"
    assert emails["config"]["emailAddress"] == emails["loop_type"]["detail"]["item_name"]
    assert hooks["loop_type"]["detail"]["array_name"]["function"] == {"type": "items",
                                                                     "parameters": {"arg_1": "alertWebhooks"}}
    assert dotted(hooks["config"]["serviceUri"]) == "hook.value" and dotted(hooks["config"]["name"]) == "hook.key"
    assert emails["config"]["useCommonAlertSchema"] is True and hooks["config"]["useCommonAlertSchema"] is True
    # A webhook URL often carries a key: secure here and in main.bicep, never in the parameters file.
    for doc in (ALERTS, template(MAIN)):
        assert {"type": "secure"} in doc["parameters"]["alertWebhooks"]["decorators"]
    assert "alertWebhooks" not in parameter_values()
    assert (MODULE_PARAMS["alertEmails"], MODULE_PARAMS["alertWebhooks"]) == ("alertEmails", "alertWebhooks")
    assert template(MAIN)["parameters"]["alertEmails"]["default"] == []
    short = Evaluator(KNOWN).reference("baseName")[:12]
    assert 1 <= len(short) <= 12  # groupShortName's limit


def test_every_rule_is_enabled_and_calls_the_action_group() -> None:
    rules = {**log_rules(), **{n: body(r) for n, r in resources_of(ALERTS, METRIC_RULE).items()}}
    assert set(rules) == {"autoPaused", "deadLetterEvents", "deadLetterQueue", "errorRate", "lagHigh"}
    for name, rule in rules.items():
        props = rule["properties"]
        assert props["enabled"] is True and props["severity"] in (0, 1, 2, 3, 4), name
        actions = props["actions"]
        if name == "deadLetterQueue":
            assert [dotted(a["actionGroupId"]) for a in actions] == ["actionGroup.id"]
        else:
            assert actions == "actions"
    assert [dotted(g) for g in ALERTS["variables"]["actions"]["value"]["actionGroups"]] == ["actionGroup.id"]


@pytest.mark.parametrize(("rule", "event", "dimensions"), [
    ("autoPaused", "mapping_auto_paused", ["mapping"]),
    ("deadLetterEvents", "message_dead_lettered", ["mapping"]),
    ("lagHigh", "lag_high", ["mapping", "direction"]),
])
def test_event_rules_query_an_event_the_app_emits_per_mapping(rule: str, event: str, dimensions: list[str]) -> None:
    found = log_rules()[rule]
    props, crit = found["properties"], criterion(found)
    assert props["scopes"] == ["appInsightsId"]
    assert dotted(MODULE_PARAMS["appInsightsId"]) == "monitoring.outputs.appInsightsId"
    assert "appInsightsId" in module_template("monitoring")["outputs"]
    query = query_of(found)
    assert f'tostring(customDimensions.event) == "{event}"' in query and query.startswith("traces |")
    assert event in emitted_events(), f"nothing in the app emits {event}"
    assert [d["name"] for d in crit["dimensions"]] == dimensions
    for name in dimensions:
        assert f"{name} = tostring(customDimensions.{name})" in query
    assert (crit["timeAggregation"], crit["operator"], crit["threshold"]) == ("Count", "GreaterThan", 0)
    assert props["evaluationFrequency"] == props["windowSize"] == "PT5M"  # every event is seen exactly once


def test_the_dead_letter_queue_rule_watches_service_bus_for_this_queue() -> None:
    (rule,) = resources_of(ALERTS, METRIC_RULE).values()
    props = body(rule)["properties"]
    assert props["scopes"] == ["serviceBusNamespaceId"]
    assert dotted(MODULE_PARAMS["serviceBusNamespaceId"]) == "serviceBus.outputs.namespaceId"
    assert dotted(MODULE_PARAMS["queueName"]) == "serviceBus.outputs.queueName"
    [crit] = props["criteria"]["allOf"]
    assert (crit["metricNamespace"], crit["metricName"]) == ("Microsoft.ServiceBus/namespaces", "DeadletteredMessages")
    assert crit["dimensions"] == [{"name": "EntityName", "operator": "Include", "values": ["queueName"]}]
    # The minimum over the window: dead letters the app drains within seconds do not fire it; a backlog does.
    assert (crit["timeAggregation"], crit["operator"], crit["threshold"]) == ("Minimum", "GreaterThan", 0)
    assert "namespaceId" in module_template("serviceBus")["outputs"]


def test_the_error_rate_rule_divides_the_apps_failure_and_change_metrics_per_mapping() -> None:
    rule = log_rules()["errorRate"]
    crit = criterion(rule)
    query = query_of(rule)
    assert query.startswith("customMetrics |")
    assert f'"{instruments.CHANGES}"' in query and f'"{instruments.FAILURES}"' in query
    assert "failure_percent = 100.0 * failed / handled" in query and "handled >= ${errorRateMinChanges}" in query
    assert (crit["metricMeasureColumn"], crit["timeAggregation"]) == ("failure_percent", "Maximum")
    assert (crit["operator"], crit["threshold"]) == ("GreaterThan", "errorRatePercent")
    assert [d["name"] for d in crit["dimensions"]] == ["mapping"]
    assert (MODULE_PARAMS["errorRatePercent"], MODULE_PARAMS["errorRateMinChanges"]) == (
        "errorRateAlertPercent", "errorRateAlertMinChanges")
    defaults = template(MAIN)["parameters"]
    assert defaults["errorRateAlertPercent"]["default"] == 10 and defaults["errorRateAlertMinChanges"]["default"] == 20


def test_the_lag_threshold_is_one_parameter_for_the_app_and_the_rule(clean_env: pytest.MonkeyPatch) -> None:
    assert MODULE_PARAMS["lagSeconds"] == "lagAlertSeconds"
    settings = app_settings(lagAlertSeconds=900)
    assert settings["DUALSYNC_ALERTS__LAG_SECONDS"] == "900"
    for name, value in resolved_env(settings).items():
        clean_env.setenv(name, value)
    assert load_settings().alerts.lag_seconds == 900.0  # the app's own start-up validation reads it
    default = template(MAIN)["parameters"]["lagAlertSeconds"]["default"]
    assert app_settings()["DUALSYNC_ALERTS__LAG_SECONDS"] == str(default) == "300"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No DUALSYNC_ variable from the machine running the tests."""
    for name in [n for n in list(os.environ) if n.upper().startswith("DUALSYNC_")]:
        monkeypatch.delenv(name)
    return monkeypatch
