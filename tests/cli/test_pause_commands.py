"""`dualsync pause` / `resume`, here and through a deployed app (`--remote`, the local host over HTTP), against
both emulators and Azurite: the state shown by `mappings`, what refuses to run while paused (and says why),
what runs around it, and the catch-up on resume."""

from __future__ import annotations

import getpass
import json

from tests.cli.conftest import dualsync, rows


def state(*args: str) -> dict[str, dict]:
    result = dualsync(*args, "mappings", "--json")
    assert result.exit_code == 0, result.output
    return {m["name"]: m for m in json.loads(result.stdout)["mappings"]}


def test_pause_refuse_skip_and_resume_here(cli_env, bc_admin, dv_admin):
    chf = next(c for c in rows(bc_admin, "currencies") if c["code"] == "CHF")
    created = dualsync("sync", "record", "-m", "currencies", "-d", "to-crm", chf["id"], "--create", "--json")
    assert created.exit_code == 0, created.output
    franc = json.loads(created.stdout)["results"][0]["destination_id"]

    paused = dualsync("pause", "currencies", "--reason", "checking the exchange rates")
    assert paused.exit_code == 0, paused.output
    assert "currencies: paused since" in paused.stdout and "checking the exchange rates" in paused.stdout
    assert "dualsync resume currencies" in paused.stdout
    shown = state()["currencies"]
    assert (shown["state"], shown["paused"]["reason"]) == ("paused", "checking the exchange rates")
    assert shown["paused"]["by"] == f"local:{getpass.getuser()}"
    table = dualsync("mappings")
    assert "paused since" in table.stdout and "running" in table.stdout

    # Named, it is refused with the reason and what to do (exit 1: not a mistake in the command line).
    refused = dualsync("sync", "full", "-m", "currencies")
    assert refused.exit_code == 1
    assert "is paused" in refused.stderr and "checking the exchange rates" in refused.stderr
    assert "dualsync resume currencies" in refused.stderr
    assert dualsync("sync", "modified", "-m", "currencies").exit_code == 1
    assert dualsync("couple", "-m", "currencies", "--match").exit_code == 1
    # "Every mapping" leaves it out, and says so.
    everything = dualsync("sync", "modified", "--json")
    assert "currencies skipped: paused since" in everything.stderr
    synced = {r["mapping"] for r in json.loads(everything.stdout)["runs"]}
    assert "currencies" not in synced and "customers" in synced

    # A change made in BC while paused arrives with the catch-up on resume.
    edited = bc_admin.patch(f"/_admin/tables/currencies/{chf['id']}", params={"as": "bc-user-annie"},
                            json={"displayName": "Franc suisse"})
    assert edited.status_code == 200, edited.text
    assert dv_admin.get(f"/_admin/tables/transactioncurrencies/{franc}").json()["currencyname"] != "Franc suisse"
    resumed = dualsync("resume", "currencies")
    assert resumed.exit_code == 0, resumed.output
    assert "currencies: running" in resumed.stdout and "catch-up · currencies" in resumed.stdout
    assert state()["currencies"]["state"] == "running"
    assert dv_admin.get(f"/_admin/tables/transactioncurrencies/{franc}").json()["currencyname"] == "Franc suisse"
    # Both acts are in the job history, with who did them.
    jobs = json.loads(dualsync("jobs", "-m", "currencies", "--json").stdout)["jobs"]
    assert {(j["message"].split(":")[0], j["started_by"]) for j in jobs if j["trigger"] == "operator"} == {
        ("pause", f"local:{getpass.getuser()}"), ("resume", f"local:{getpass.getuser()}")}


def test_pause_and_resume_remotely(remote):
    paused = dualsync("--remote", remote, "pause", "customers", "--json")
    assert paused.exit_code == 0, paused.output
    doc = json.loads(paused.stdout)
    assert (doc["state"], doc["paused"]["reason"], doc["paused"]["by"]) == (
        "paused", "paused by an operator", "automation:function key")
    assert state("--remote", remote)["customers"]["state"] == "paused"
    assert state()["customers"]["state"] == "paused"  # one state, two doors
    refused = dualsync("--remote", remote, "sync", "full", "-m", "customers")
    assert refused.exit_code == 1 and "HTTP 409, MappingPaused" in refused.stderr
    resumed = dualsync("--remote", remote, "resume", "customers", "--no-catch-up", "--json")
    assert resumed.exit_code == 0, resumed.output
    assert (json.loads(resumed.stdout)["state"], json.loads(resumed.stdout)["catch_up"]) == ("running", None)
    unknown = dualsync("--remote", remote, "pause", "no-such-mapping")
    assert unknown.exit_code == 2 and "no mapping 'no-such-mapping'" in unknown.stderr
