"""End to end through HTTP only: people's edits on the emulators (their `/_admin` routes, `?as=<person>`),
webhooks into the local Functions host, the queue and processor, the admin API. No engine call anywhere:
what is asserted is what each system holds afterwards."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from emulators.sandbox import Sandbox

BC_DELAY_S = 0.2


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s"
        await asyncio.sleep(0.02)


async def quiet(sb: Sandbox) -> None:
    """Every notification BC still holds has been sent, and the queue is empty."""
    await asyncio.sleep(BC_DELAY_S + 0.3)
    await sb.settle()


async def test_the_whole_story_through_http() -> None:
    async with Sandbox(records=0, notification_delay_ms=BC_DELAY_S * 1000, dataverse_delay_ms=150,
                       register_webhooks=False) as sb:
        adatum = await sb.bc_create("customers", {"number": "C10001", "displayName": "Adatum", "type": "Company",
                                                  "city": "Atlanta", "blocked": " ", "creditLimit": 0})
        await sb.bc_create("customers", {"number": "C10002", "displayName": "Trey Research", "type": "Company",
                                         "blocked": " ", "creditLimit": 0})
        await sb.dv_create("accounts", {"accountnumber": "C10001", "name": "Adatum", "address1_city": "Atlanta",
                                        "customertypecode": 3, "creditlimit": 0})
        await sb.register_webhooks()
        assert {s["resource"].rsplit("/", 1)[-1] for s in sb.subscriptions} >= {"customers", "contacts", "items"}

        # Full sync of customers (dry run first: nothing written), then for real: couples Adatum, creates Trey.
        plan = await sb.manage("POST", "full-sync", params={"mapping": "customers"})
        assert {r["direction"]: r["planned"] for r in plan["runs"]} == {
            "to_crm": {"couple": 1, "create": 1}, "to_erp": {"couple": 1}}
        assert len(await sb.dv_rows("accounts")) == 1
        done = await sb.manage("POST", "full-sync", params={"mapping": "customers", "dry_run": "false"})
        counts = {r["direction"]: r["counts"] for r in done["runs"]}
        assert counts["to_crm"] == {"coupled": 1, "inserted": 1}, done
        accounts = {a["accountnumber"]: a for a in await sb.dv_rows("accounts")}
        assert set(accounts) == {"C10001", "C10002"} and accounts["C10002"]["name"] == "Trey Research"
        account_id = accounts["C10001"]["accountid"]
        await quiet(sb)

        # BC → Sales, and the echo of our write to Dataverse writes nothing anywhere.
        await sb.bc_edit("customers", adatum["id"], {"phoneNumber": "+1 404 555 0199"})
        await eventually(lambda: _is(sb.dv_row("accounts", account_id), "telephone1", "+1 404 555 0199"), "BC → DV")
        await quiet(sb)
        account, customer = await sb.dv_row("accounts", account_id), await sb.bc_row("customers", adatum["id"])

        # Sales → BC; BC's notification of our own write comes back and is dropped without a write.
        await sb.dv_edit("accounts", account_id, {"name": "Adatum Corp."})
        await eventually(lambda: _is(sb.bc_row("customers", adatum["id"]), "displayName", "Adatum Corp."), "DV → BC")
        await quiet(sb)
        after = await sb.dv_row("accounts", account_id)
        assert after["versionnumber"] == account["versionnumber"] + 1  # Anna's edit only, no write of ours
        assert after["_modifiedby_value"] != sb.dv_app.state.emulator.integration.user_id
        customer_after = await sb.bc_row("customers", adatum["id"])
        assert customer_after["displayName"] == "Adatum Corp." and customer_after["phoneNumber"] == customer[
            "phoneNumber"]

        # A conflict: both change the city before either is synchronised; customers are erp_wins.
        await sb.dv_edit("accounts", account_id, {"address1_city": "Savannah"})
        await sb.bc_edit("customers", adatum["id"], {"city": "Macon"})
        await quiet(sb)
        await eventually(lambda: _is(sb.dv_row("accounts", account_id), "address1_city", "Macon"), "ERP winning")
        assert (await sb.bc_row("customers", adatum["id"]))["city"] == "Macon"

        report = await sb.manage("GET", "reconcile", params={"mapping": "customers"})
        assert report["clean"] is True, report
        assert report["reports"][0]["checked"] == {"erp": 2, "crm": 2}

        # And reconcile does see drift when there is some: an edit made while nobody listens.
        await sb.dv_edit("accounts", account_id, {"websiteurl": "https://adatum.example"}, who="dualsync-integration")
        await sb.settle()
        drift = await sb.manage("GET", "reconcile", params={"mapping": "customers"})
        assert drift["clean"] is False and [d["kind"] for d in drift["reports"][0]["drift"]] == ["differs"]


async def _is(row: Awaitable[dict[str, Any]], field: str, value: Any) -> bool:
    return (await row).get(field) == value
