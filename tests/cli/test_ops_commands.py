"""`dualsync errors …`, `couple` / `uncouple`, against both emulators over HTTP and Azurite: a customer fails
because its salesperson is not coupled, the operator looks, skips, restores, couples the salesperson and
retries."""

from __future__ import annotations

import json
from typing import Any

from tests.cli.conftest import crm_user, dualsync, rows


def errors(*args: str) -> list[dict[str, Any]]:
    result = dualsync("errors", "list", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["errors"]


def test_errors_list_skip_restore_retry(failing_customer, emulators, dv_admin):
    cid = failing_customer["id"]
    first = dualsync("sync", "record", "-m", "customers", "-d", "to-crm", cid, "--create")
    assert first.exit_code == 1 and "dependency not coupled" in first.stdout
    [error] = errors()
    assert (error["mapping"], error["direction"], error["source_id"], error["skipped"]) == (
        "customers", "to_crm", cid, False)
    assert "salespeople" in error["message"]

    dualsync("sync", "record", "-m", "customers", "-d", "to-crm", cid, "--create")  # the same error twice
    assert [e["skipped"] for e in errors()] == [True]
    assert errors("--due") == [] and len(errors("--skipped")) == 1

    restored = dualsync("errors", "restore", cid, "-m", "customers", "-d", "to-crm")
    assert restored.exit_code == 0, restored.output
    assert [e["skipped"] for e in errors("--mapping", "customers")] == [False]
    skipped = dualsync("errors", "skip", cid, "-m", "customers", "-d", "to-crm")
    assert skipped.exit_code == 0 and [e["skipped"] for e in errors()] == [True]
    table = dualsync("errors", "list")
    assert table.exit_code == 0 and cid in table.stdout and "yes" in table.stdout

    # Retrying without fixing the cause fails again (exit 1), the error stays.
    still = dualsync("errors", "retry", cid, "-m", "customers", "-d", "to-crm", "--json")
    assert still.exit_code == 1 and json.loads(still.stdout)["result"]["outcome"] == "failed"

    # The operator couples the salesperson with a Sales user, then retries every error: the customer arrives.
    user = crm_user(emulators, dv_admin)
    coupled = dualsync("couple", "-m", "salespeople", failing_customer["salesperson"]["id"], user)
    assert coupled.exit_code == 0, coupled.output
    retried = dualsync("errors", "retry", "--all", "--json")
    assert retried.exit_code == 0, retried.output
    [done] = json.loads(retried.stdout)["results"]
    assert done["outcome"] == "inserted" and done["destination_id"]
    account = dv_admin.get(f"/_admin/tables/accounts/{done['destination_id']}").json()
    assert account["name"] == "Fabrikam Nord AB" and account["_ownerid_value"] == user
    assert errors() == []


def test_errors_commands_reject_what_does_not_exist(cli_env):
    missing = dualsync("errors", "skip", "nope", "-m", "customers", "-d", "to-crm")
    assert missing.exit_code == 1 and "no error recorded for 'nope'" in missing.stderr
    retry = dualsync("errors", "retry", "nope", "-m", "customers", "-d", "to-crm")
    assert retry.exit_code == 1 and "no error recorded" in retry.stderr
    both = dualsync("errors", "retry", "x", "--all")
    assert both.exit_code == 2 and "either SOURCE_ID" in both.stderr
    half = dualsync("errors", "retry", "x", "-m", "customers")
    assert half.exit_code == 2 and "--mapping and --direction" in half.stderr
    assert json.loads(dualsync("errors", "retry", "--all", "--json").stdout) == {
        "results": [], "retried": 0, "still_failing": 0}


def test_couple_and_uncouple(cli_env, emulators, bc_admin, dv_admin):
    person = rows(bc_admin, "salespeoplePurchasers")[1]
    user = crm_user(emulators, dv_admin)
    ok = dualsync("couple", "--mapping", "salespeople", person["id"], user, "--json")
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout) == {"mapping": "salespeople", "erp_id": person["id"], "crm_id": user,
                                     "coupled": True}

    again = dualsync("couple", "-m", "salespeople", person["id"], user)
    assert again.exit_code == 1 and "already coupled" in again.stderr

    gone = dualsync("uncouple", "-m", "salespeople", "--crm", user)
    assert gone.exit_code == 0, gone.output
    assert person["id"] in gone.stdout and user in gone.stdout
    twice = dualsync("uncouple", "-m", "salespeople", "--erp", person["id"])
    assert twice.exit_code == 1 and "is not coupled" in twice.stderr
    # Uncoupled, the pair can be coupled again.
    assert dualsync("couple", "-m", "salespeople", person["id"], user).exit_code == 0


def test_couple_refuses_records_that_do_not_exist_and_bad_arguments(cli_env, bc_admin):
    person = rows(bc_admin, "salespeoplePurchasers")[0]
    ghost = "00000000-0000-0000-0000-00000000beef"
    result = dualsync("couple", "-m", "salespeople", person["id"], ghost)
    assert result.exit_code == 1 and f"crm systemusers '{ghost}'" in result.stderr
    assert dualsync("couple", "-m", "salespeople", person["id"]).exit_code == 2
    assert dualsync("couple", "-m", "salespeople", "--match", person["id"], ghost).exit_code == 2
    assert dualsync("uncouple", "-m", "salespeople").exit_code == 2
    assert dualsync("couple", "-m", "nothing-like-it", person["id"], ghost).exit_code == 2
