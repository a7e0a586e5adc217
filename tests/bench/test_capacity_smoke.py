"""The capacity benchmark's harness: the bound is what the settings allow, counts add up on a small run, and
the generated section of the results file is replaced in place. The 200-record run takes well under a minute."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest

from bench import capacity
from bench.harness import ServiceModel, capacity_bound, write_section

DATAVERSE = {"faults": {"latency_ms": 50.0, "batch_op_latency_ms": 2.0}, "max_batch": 1000,
             "limits": {"enabled": True, "window_seconds": 300.0, "window_requests": 6000,
                        "window_execution_ms": 1_200_000, "max_concurrent": 52}}
BUSINESS_CENTRAL = {"faults": {"latency_ms": 0.0, "batch_op_latency_ms": 2.0}, "max_batch": 100,
                    "limits": {"enabled": True, "window_seconds": 300.0, "window_requests": 6000,
                               "window_execution_ms": None, "max_concurrent": 5}}


def test_the_bound_spreads_few_records_over_every_slot_the_service_allows() -> None:
    bound = capacity_bound(ServiceModel.of("Dataverse", DATAVERSE), 10_000)
    # 52 requests of ceil(10 000 / 52) = 193 operations, one wave of (50 + 193 × 2) ms
    assert (bound.batch, bound.requests, bound.in_flight) == (193, 52, 52)
    assert bound.binding == "concurrency" and bound.rate == pytest.approx(10_000 / 0.436)


def test_a_million_creates_wait_for_the_next_execution_window() -> None:
    bound = capacity_bound(ServiceModel.of("Dataverse", DATAVERSE), 1_000_000)
    # 1000 full batches of 2.05 s are 2 050 000 ms of execution: more than one window's 1 200 000 ms
    assert bound.batch == 1000 and bound.seconds["concurrency"] == pytest.approx(20 * 2.05)
    assert bound.binding == "execution window" and bound.rate == pytest.approx(1_000_000 / 302.05)


def test_business_central_is_bound_by_its_five_requests_at_once() -> None:
    bound = capacity_bound(ServiceModel.of("BC", BUSINESS_CENTRAL), 100_000)
    assert bound.binding == "concurrency" and bound.rate == pytest.approx(5 * 100 / 0.2)
    unprotected = {**BUSINESS_CENTRAL, "limits": {**BUSINESS_CENTRAL["limits"], "enabled": False}}
    assert list(capacity_bound(ServiceModel.of("BC", unprotected), 100_000).seconds) == ["concurrency"]
    free = {**BUSINESS_CENTRAL, "faults": {"latency_ms": 0.0, "batch_op_latency_ms": 0.0}}
    assert math.isinf(capacity_bound(ServiceModel.of("BC", free), 10).rate)


def test_the_section_is_replaced_between_its_markers_and_nothing_else_moves(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text("# Results\n\n<!-- chaos:begin -->\nchaos\n<!-- chaos:end -->\n", encoding="utf-8")
    write_section("capacity-200", "first", results)
    write_section("capacity-200", "second", results)
    text = results.read_text(encoding="utf-8")
    assert text.count("<!-- capacity-200:begin -->") == 1 and "second" in text and "first" not in text
    assert text.startswith("# Results\n\n<!-- chaos:begin -->\nchaos\n<!-- chaos:end -->")


@pytest.mark.azurite
def test_a_small_run_adds_up(tmp_path: Path) -> None:
    args = capacity.parse(["--records", "200", "--baseline-records", "20", "--flows", "to_crm",
                           "--latency-ms", "0", "--no-write"])
    [cell] = asyncio.run(capacity.run_matrix(args))
    assert cell.checks == []  # 200 inserted, then 200 unchanged, then 20 modified and 180 unchanged
    runs = cell.runs
    assert runs["first"]["counts"] == {"inserted": 200}
    assert runs["changed"]["counts"] == {"modified": 20, "unchanged": 180}
    # the baseline reads one page and creates one record per request: every call is counted, nothing else
    assert runs["baseline"]["calls"] == 21 and runs["baseline"]["table"] == 0
    # the measured bound sends exactly the requests the computed one assumes, at the service's concurrency
    bound = runs["bound"]["computed"]
    assert runs["bound"]["calls"] == bound.requests and runs["bound"]["in_flight"] == 52
    assert cell.computed.service.latency_ms == 0 and cell.computed.service.protected
    assert runs["first"]["table"] > 0 and 50 < runs["first"]["rss_peak_mb"] < 2000
    results = tmp_path / "RESULTS.md"
    results.write_text("# Results\n", encoding="utf-8")
    write_section("capacity-200", capacity.render([cell], args, "python -m bench.capacity …"), results)
    text = results.read_text(encoding="utf-8")
    assert "<!-- capacity-200:begin -->" in text and "| BC → Dataverse | 0 | 200 |" in text
