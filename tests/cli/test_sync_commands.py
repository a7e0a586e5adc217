"""`dualsync sync …`, `jobs` and a missing setting, against both emulators over HTTP and Azurite."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.cli.conftest import dualsync, rows


def currency(bc_admin: httpx.Client, code: str) -> dict:
    return next(c for c in rows(bc_admin, "currencies") if c["code"] == code)


def crm_currency(dv_admin: httpx.Client, code: str) -> list[dict]:
    return [c for c in rows(dv_admin, "transactioncurrencies") if c["isocurrencycode"] == code]


def test_sync_record_creates_the_counterpart_and_counts_it_in_a_job(cli_env, bc_admin, dv_admin):
    eur = currency(bc_admin, "EUR")
    result = dualsync("sync", "record", "--mapping", "currencies", "--direction", "to-crm", eur["id"], "--create",
                      "--json")
    assert result.exit_code == 0, result.output
    [done] = json.loads(result.stdout)["results"]
    assert done["outcome"] in ("inserted", "coupled") and done["destination_id"]
    assert len(crm_currency(dv_admin, "EUR")) == 1
    # The same record again: already in step, nothing written, still one currency in Dataverse.
    again = json.loads(dualsync("sync", "record", "-m", "currencies", "-d", "to-crm", eur["id"],
                                "--json").stdout)["results"]
    assert (again[0]["outcome"], again[0]["writes"]) == ("unchanged", 0)
    assert len(crm_currency(dv_admin, "EUR")) == 1

    jobs = dualsync("jobs", "--mapping", "currencies", "--json")
    assert jobs.exit_code == 0, jobs.output
    listed = json.loads(jobs.stdout)["jobs"]
    assert [j["trigger"] for j in listed] == ["manual", "manual"]
    assert sorted(sum(j["counts"].values()) for j in listed) == [1, 1]
    assert {k for j in listed for k, v in j["counts"].items() if v} <= {"inserted", "coupled", "unchanged"}
    table = dualsync("jobs")
    assert table.exit_code == 0 and "currencies" in table.stdout and "to_crm" in table.stdout


def test_sync_record_refuses_a_direction_the_mapping_does_not_carry(cli_env, bc_admin):
    result = dualsync("sync", "record", "-m", "currencies", "-d", "to-erp", currency(bc_admin, "EUR")["id"])
    assert result.exit_code == 2
    assert "does not sync to_erp" in result.stderr
    bad = dualsync("sync", "record", "-m", "currencies", "-d", "sideways", "x")
    assert bad.exit_code == 2 and "--direction must be to-crm or to-erp, got 'sideways'" in bad.stderr
    unknown = dualsync("sync", "record", "-m", "no-such-mapping", "-d", "to-crm", "x")
    assert unknown.exit_code == 2 and "no-such-mapping" in unknown.stderr


def test_sync_record_of_a_record_that_does_not_exist_says_so(cli_env):
    result = dualsync("sync", "record", "-m", "currencies", "-d", "to-crm", "00000000-0000-0000-0000-00000000beef",
                      "--create")
    assert result.exit_code == 0, result.output
    assert "ignored" in result.stdout and "does not exist" in result.stdout


def test_sync_modified_carries_a_change_made_since_the_last_run(cli_env, bc_admin, dv_admin):
    chf = currency(bc_admin, "CHF")
    assert dualsync("sync", "record", "-m", "currencies", "-d", "to-crm", chf["id"], "--create").exit_code == 0
    first = dualsync("sync", "modified", "--mapping", "currencies", "--json")
    assert first.exit_code == 0, first.output
    [run] = json.loads(first.stdout)["runs"]
    assert run["direction"] == "to_crm" and run["watermark"] and run["failures"] == []

    edited = bc_admin.patch(f"/_admin/tables/currencies/{chf['id']}", params={"as": "bc-user-annie"},
                            json={"displayName": "Franc suisse"})
    assert edited.status_code == 200, edited.text
    second = dualsync("sync", "modified", "-m", "currencies", "--json")
    assert second.exit_code == 0, second.output
    assert json.loads(second.stdout)["runs"][0]["counts"] == {"modified": 1}
    [crm] = crm_currency(dv_admin, "CHF")
    assert crm["currencyname"] == "Franc suisse"
    # Nothing changed since: the next run writes nothing.
    third = json.loads(dualsync("sync", "modified", "-m", "currencies", "--json").stdout)["runs"]
    assert set(third[0]["counts"]) <= {"unchanged"}
    table = dualsync("sync", "modified", "-m", "currencies")
    assert table.exit_code == 0 and "currencies" in table.stdout
    wrong = dualsync("sync", "modified", "-m", "currencies", "--direction", "to-erp")
    assert wrong.exit_code == 2 and "no selected mapping syncs to_erp" in wrong.stderr


def test_a_missing_setting_names_every_missing_variable(cli_env, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("DUALSYNC_ERP__COMPANY_ID")
    monkeypatch.delenv("DUALSYNC_CRM__BASE_URL")
    for command in (["jobs"], ["sync", "modified"], ["errors", "list"]):
        result = dualsync(*command)
        assert result.exit_code == 2, result.output
        assert "DUALSYNC_ERP__COMPANY_ID: missing" in result.stderr
        assert "DUALSYNC_CRM__BASE_URL: missing" in result.stderr
        assert cli_env["DUALSYNC_ERP__CLIENT_SECRET"] not in result.output  # never a secret's value
        assert result.stdout == ""


def test_an_invalid_setting_is_named_without_its_value(cli_env, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DUALSYNC_ERP__MAX_CONCURRENCY", "50")
    result = dualsync("jobs")
    assert result.exit_code == 2
    assert "DUALSYNC_ERP__MAX_CONCURRENCY" in result.stderr
