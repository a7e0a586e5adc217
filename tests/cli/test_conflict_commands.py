"""`dualsync conflicts` and `dualsync conflicts reverse`, locally and through `--remote`, against both emulators
over HTTP and Azurite: a customer's city is changed on both sides, customers are erp_wins, the operator lists
the settled conflict and reverses it."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.cli.conftest import Emulators, crm_user, dualsync


def edit(admin: httpx.Client, table: str, record_id: str, changes: dict[str, Any], who: str) -> None:
    response = admin.patch(f"/_admin/tables/{table}/{record_id}", params={"as": who}, json=changes)
    assert response.status_code == 200, response.text


def settled_conflict(customer: dict[str, Any], emulators: Emulators, bc_admin: httpx.Client,
                     dv_admin: httpx.Client) -> str:
    """Sync the customer to a new account, change its city on both sides, sync: ERP wins. The account id."""
    user = crm_user(emulators, dv_admin)
    assert dualsync("couple", "-m", "salespeople", customer["salesperson"]["id"], user).exit_code == 0
    created = dualsync("sync", "record", "-m", "customers", "-d", "to-crm", customer["id"], "--create", "--json")
    assert created.exit_code == 0, created.output
    account_id = json.loads(created.stdout)["results"][0]["destination_id"]
    edit(bc_admin, "customers", customer["id"], {"city": "ERP-city"}, "bc-user-annie")
    edit(dv_admin, "accounts", account_id, {"address1_city": "CRM-city"}, user)
    synced = dualsync("sync", "record", "-m", "customers", "-d", "to-crm", customer["id"])
    assert synced.exit_code == 0, synced.output
    return account_id


def cities(bc_admin: httpx.Client, dv_admin: httpx.Client, customer_id: str, account_id: str) -> tuple[str, str]:
    return (bc_admin.get(f"/_admin/tables/customers/{customer_id}").json()["city"],
            dv_admin.get(f"/_admin/tables/accounts/{account_id}").json()["address1_city"])


def test_conflicts_lists_the_settled_conflict_and_reverse_undoes_it_once(failing_customer, emulators, bc_admin,
                                                                         dv_admin):
    account_id = settled_conflict(failing_customer, emulators, bc_admin, dv_admin)
    assert cities(bc_admin, dv_admin, failing_customer["id"], account_id) == ("ERP-city", "ERP-city")
    listed = dualsync("conflicts", "-m", "customers", "--json")
    assert listed.exit_code == 0, listed.output
    doc = json.loads(listed.stdout)
    [entry] = doc["conflicts"]
    assert doc["total"] == 1
    assert {k: entry[k] for k in ("mapping", "kind", "erp_id", "crm_id", "field", "erp_value", "crm_value",
                                  "base_value", "winner", "policy", "reversible", "reversed_at")} == {
        "mapping": "customers", "kind": "update", "erp_id": failing_customer["id"], "crm_id": account_id,
        "field": "city ⇄ address1_city", "erp_value": "ERP-city", "crm_value": "CRM-city", "base_value": "Malmö",
        "winner": "erp", "policy": "erp_wins", "reversible": True, "reversed_at": None}
    table = dualsync("conflicts")
    assert table.exit_code == 0 and entry["id"] in table.stdout and "erp_wins" in table.stdout
    assert "'CRM-city'" in table.stdout and "reversible" in table.stdout

    done = dualsync("conflicts", "reverse", entry["id"])
    assert done.exit_code == 0, done.output
    assert "'CRM-city'" in done.stdout and "both sides" in done.stdout
    assert cities(bc_admin, dv_admin, failing_customer["id"], account_id) == ("CRM-city", "CRM-city")
    [after] = json.loads(dualsync("conflicts", "--reversed", "--json").stdout)["conflicts"]
    assert after["reversed_at"] and not after["reversible"]
    assert json.loads(dualsync("conflicts", "--open", "--json").stdout)["conflicts"] == []

    again = dualsync("conflicts", "reverse", entry["id"])
    assert again.exit_code == 1 and "reversed already" in again.stderr
    unknown = dualsync("conflicts", "reverse", "20200101T000000-0000000000")
    assert unknown.exit_code == 1 and "no conflict entry" in unknown.stderr
    assert dualsync("conflicts", "-m", "nope").exit_code == 2


def test_conflicts_remotely_give_the_local_documents(remote, failing_customer, emulators, bc_admin, dv_admin):
    account_id = settled_conflict(failing_customer, emulators, bc_admin, dv_admin)
    here = dualsync("conflicts", "--json")
    there = dualsync("--remote", remote, "conflicts", "--json")
    assert here.exit_code == there.exit_code == 0, there.output
    assert json.loads(here.stdout) == json.loads(there.stdout)
    [entry] = json.loads(there.stdout)["conflicts"]
    done = dualsync("--remote", remote, "conflicts", "reverse", entry["id"], "--json")
    assert done.exit_code == 0, done.output
    answer = json.loads(done.stdout)
    assert answer["ok"] and answer["conflict"]["reversed_at"] and answer["result"]["outcome"] == "modified"
    assert cities(bc_admin, dv_admin, failing_customer["id"], account_id) == ("CRM-city", "CRM-city")
    refused = dualsync("--remote", remote, "conflicts", "reverse", entry["id"])
    assert refused.exit_code == 1 and "AlreadyReversed" in refused.stderr
