"""`dualsync sync full` (dry run and real), `couple --match` and `reconcile`, against the emulators and Azurite."""

from __future__ import annotations

import json

from tests.cli.conftest import dualsync, rows


def test_full_sync_dry_run_writes_nothing_then_the_real_run_leaves_no_drift(cli_env, bc_admin, dv_admin):
    before = rows(dv_admin, "transactioncurrencies")
    dry = dualsync("sync", "full", "-m", "currencies", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    [plan] = json.loads(dry.stdout)["runs"]
    assert json.loads(dry.stdout)["dry_run"] is True
    assert plan["job_id"] is None and sum(plan["planned"].values()) >= 1
    assert rows(dv_admin, "transactioncurrencies") == before
    assert json.loads(dualsync("jobs", "--json").stdout) == {"jobs": [], "total": 0}  # a dry run starts no job

    real = dualsync("sync", "full", "-m", "currencies", "--create", "--json")
    assert real.exit_code == 0, real.output
    [done] = json.loads(real.stdout)["runs"]
    assert done["job_id"] and done["failures"] == []
    codes = {c["code"] for c in rows(bc_admin, "currencies") if c["code"]}
    assert codes <= {c["isocurrencycode"] for c in rows(dv_admin, "transactioncurrencies")}

    check = dualsync("reconcile", "-m", "currencies", "--json")
    [report] = json.loads(check.stdout)["reports"]
    assert report["mapping"] == "currencies" and report["checked"]["erp"] == len(codes)
    assert [d for d in report["drift"] if d["side"] == "erp" or d["kind"] in ("duplicate", "differs")] == []


def test_reconcile_reports_drift_with_exit_1(cli_env, bc_admin):
    """Uncoupled customers exist on both sides at the start, each one a full sync would create: reconcile says
    so, with the count per kind."""
    result = dualsync("reconcile", "-m", "customers")
    assert result.exit_code == 1, result.output
    assert "never_synced" in result.stdout
    doc = json.loads(dualsync("reconcile", "-m", "customers", "--json").stdout)
    [report] = doc["reports"]
    assert report["counts"]["never_synced"] == sum(d["kind"] == "never_synced" for d in report["drift"]) > 0
    assert f"never_synced {report['counts']['never_synced']}" in result.stdout
    assert dualsync("reconcile", "-m", "nope").exit_code == 2


def test_couple_match_couples_by_the_match_fields(cli_env, bc_admin, dv_admin):
    eur = next(c for c in rows(bc_admin, "currencies") if c["code"] == "EUR")
    result = dualsync("couple", "-m", "currencies", "--match", "--json")
    assert result.exit_code == 0, result.output
    runs = json.loads(result.stdout)["runs"]
    assert runs and all(r["counts"].get("inserted", 0) == 0 for r in runs)  # coupling only, nothing created
    # EUR exists in both systems: it is coupled now, so a record sync finds its counterpart.
    again = json.loads(dualsync("sync", "record", "-m", "currencies", "-d", "to-crm", eur["id"], "--json").stdout)
    again = again["results"]
    assert again[0]["destination_id"] and again[0]["outcome"] != "ignored"
