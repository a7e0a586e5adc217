"""`dualsync --remote URL …`: every command family driving the Function App served by the local host over
real HTTP (function key in `x-functions-key`), and the same `--json` document as the local command gives for
the same state (both are the admin API's answer)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.cli.conftest import Emulators, crm_user, dualsync, rows


def both(url: str, *args: str, code: int = 0) -> tuple[Any, Any]:
    """The JSON of `dualsync ARGS --json` run here and through `url`; each must exit with `code`."""
    here, there = dualsync(*args, "--json"), dualsync("--remote", url, *args, "--json")
    assert here.exit_code == code, here.output
    assert there.exit_code == code, there.output
    return json.loads(here.stdout), json.loads(there.stdout)


def keys(document: Any) -> Any:
    """The shape of a document: its keys, recursively (lists by their first item; values left out)."""
    if isinstance(document, dict):
        return {k: keys(v) for k, v in document.items()}
    if isinstance(document, list):
        return [keys(document[0])] if document else []
    return "value"


def currency(bc_admin: httpx.Client, code: str) -> dict[str, Any]:
    return next(c for c in rows(bc_admin, "currencies") if c["code"] == code)


def test_sync_family_remotely_with_the_local_documents(remote, bc_admin, dv_admin):
    eur, chf = currency(bc_admin, "EUR"), currency(bc_admin, "CHF")
    # A dry run writes nothing: here and there see the same state and plan the same.
    plan_here, plan_there = both(remote, "sync", "full", "-m", "currencies", "--dry-run")
    assert plan_here == plan_there and plan_there["dry_run"] is True and plan_there["runs"][0]["planned"]

    created = dualsync("--remote", remote, "sync", "record", "-m", "currencies", "-d", "to-crm", eur["id"],
                       "--create", "--json")
    assert created.exit_code == 0, created.output
    remote_doc = json.loads(created.stdout)
    assert remote_doc["ok"] and remote_doc["results"][0]["outcome"] in ("inserted", "coupled")
    assert len([c for c in rows(dv_admin, "transactioncurrencies") if c["isocurrencycode"] == "EUR"]) == 1
    local = dualsync("sync", "record", "-m", "currencies", "-d", "to-crm", chf["id"], "--create", "--json")
    assert local.exit_code == 0, local.output
    assert keys(json.loads(local.stdout)) == keys(remote_doc)

    # The remote run's watermark is the one the local run starts from: one state, two doors.
    first = dualsync("--remote", remote, "sync", "modified", "-m", "currencies", "--json")
    assert first.exit_code == 0, first.output
    [run] = json.loads(first.stdout)["runs"]
    second = dualsync("sync", "modified", "-m", "currencies", "--json")
    since = json.loads(second.stdout)["runs"][0]["since"]  # the remote run's watermark, less the overlap
    assert since is not None and run["watermark"] is not None and since < run["watermark"]
    assert keys(json.loads(second.stdout)) == keys(json.loads(first.stdout))

    jobs_here, jobs_there = both(remote, "jobs", "-m", "currencies")
    assert jobs_here == jobs_there and jobs_there["total"] == 4  # 2 records + 2 modified runs
    mappings_here, mappings_there = both(remote, "mappings")
    assert mappings_here == mappings_there
    assert {m["name"]: m["last_job"]["trigger"] for m in mappings_there["mappings"] if m["last_job"]} == {
        "currencies": "manual"}

    table = dualsync("--remote", remote, "jobs")
    assert table.exit_code == 0 and "currencies" in table.stdout and "to_crm" in table.stdout
    status = dualsync("--remote", remote, "mappings")
    assert status.exit_code == 0 and "bc-sales" in status.stdout and "accounts" in status.stdout
    wrong_way = dualsync("--remote", remote, "sync", "record", "-m", "currencies", "-d", "to-erp", eur["id"])
    assert wrong_way.exit_code == 2 and "does not sync to_erp" in wrong_way.stderr
    unknown = dualsync("--remote", remote, "sync", "full", "-m", "no-such-mapping")
    assert unknown.exit_code == 2 and "no-such-mapping" in unknown.stderr


def test_errors_and_couple_families_remotely(remote, failing_customer, emulators: Emulators, dv_admin):
    cid = failing_customer["id"]
    for runner in ((), ("--remote", remote)):  # the same error twice (once each way) → skipped
        failed = dualsync(*runner, "sync", "record", "-m", "customers", "-d", "to-crm", cid, "--create")
        assert failed.exit_code == 1 and "dependency not coupled" in failed.stdout
    listed_here, listed_there = both(remote, "errors", "list")
    assert listed_here == listed_there
    assert [(e["source_id"], e["skipped"]) for e in listed_there["errors"]] == [(cid, True)]

    restored = dualsync("--remote", remote, "errors", "restore", cid, "-m", "customers", "-d", "to-crm", "--json")
    assert restored.exit_code == 0 and json.loads(restored.stdout)["skipped"] is False
    missing = dualsync("--remote", remote, "errors", "skip", "nope", "-m", "customers", "-d", "to-crm")
    assert missing.exit_code == 1 and "no error recorded for 'nope'" in missing.stderr
    assert "HTTP 404" in missing.stderr

    user = crm_user(emulators, dv_admin)
    person = failing_customer["salesperson"]["id"]
    coupled = dualsync("--remote", remote, "couple", "-m", "salespeople", person, user, "--json")
    assert coupled.exit_code == 0, coupled.output
    assert json.loads(coupled.stdout) == {"mapping": "salespeople", "erp_id": person, "crm_id": user, "coupled": True}
    again = dualsync("--remote", remote, "couple", "-m", "salespeople", person, user)
    assert again.exit_code == 1 and "already coupled" in again.stderr and "HTTP 409" in again.stderr

    retried = dualsync("--remote", remote, "errors", "retry", "--all", "--json")
    assert retried.exit_code == 0, retried.output
    done = json.loads(retried.stdout)
    assert (done["retried"], done["still_failing"], done["results"][0]["outcome"]) == (1, 0, "inserted")
    assert both(remote, "errors", "list") == ({"errors": [], "total": 0},) * 2

    match_here, match_there = both(remote, "couple", "-m", "currencies", "--match", "--dry-run")
    assert match_here == match_there and match_there["dry_run"] is True
    gone = dualsync("--remote", remote, "uncouple", "-m", "salespeople", "--crm", user)
    assert gone.exit_code == 0 and person in gone.stdout
    twice = dualsync("--remote", remote, "uncouple", "-m", "salespeople", "--erp", person)
    assert twice.exit_code == 1 and "is not coupled" in twice.stderr


def test_reconcile_remotely_reports_the_same_drift(remote):
    """Uncoupled customers exist on both sides at the start: both doors report the same drift, exit 1."""
    here, there = both(remote, "reconcile", "-m", "customers", code=1)
    assert here == there and there["clean"] is False
    assert {d["kind"] for d in there["reports"][0]["drift"]} >= {"never_synced"}
    assert dualsync("--remote", remote, "reconcile", "-m", "nope").exit_code == 2


def test_remote_mode_needs_no_local_settings_and_says_what_is_wrong(remote, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DUALSYNC_REMOTE", remote)  # the environment's way to say --remote
    for name in ("DUALSYNC_STORAGE__CONNECTION_STRING", "DUALSYNC_ERP__COMPANY_ID", "DUALSYNC_CRM__BASE_URL"):
        monkeypatch.delenv(name)
    listed = dualsync("jobs", "--json")
    assert listed.exit_code == 0 and json.loads(listed.stdout) == {"jobs": [], "total": 0}

    monkeypatch.setenv("DUALSYNC_ADMIN_KEY", "not-the-key")
    refused = dualsync("errors", "list")
    assert refused.exit_code == 2 and "DUALSYNC_ADMIN_KEY" in refused.stderr and "not-the-key" not in refused.output
    monkeypatch.delenv("DUALSYNC_ADMIN_KEY")
    assert dualsync("jobs").exit_code == 2

    bad_since = dualsync("jobs", "--since", "yesterday")  # refused here, before any request
    assert bad_since.exit_code == 2 and "--since takes an age" in bad_since.stderr
    nowhere = dualsync("--remote", "http://127.0.0.1:9", "jobs")
    assert nowhere.exit_code == 1 and "cannot reach http://127.0.0.1:9/api/manage/" in nowhere.stderr
    not_http = dualsync("--remote", "dualsync.azurewebsites.net", "jobs")
    assert not_http.exit_code == 2 and "http(s) URL" in not_http.stderr


async def test_the_client_sends_the_key_and_token_in_headers_never_in_the_url() -> None:
    from shared.cli.remote import AdminClient

    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        await AdminClient("https://app.example", "the-key", token="the-token", http=http).uncouple("m", erp_id="1")
        await AdminClient("https://app.example", "the-key", http=http).jobs()
    first, second = seen
    assert (first.headers["x-functions-key"], first.headers["authorization"]) == ("the-key", "Bearer the-token")
    assert "authorization" not in second.headers and second.headers["x-functions-key"] == "the-key"
    assert all("the-key" not in str(r.url) and "the-token" not in str(r.url) for r in seen)
