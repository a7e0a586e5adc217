"""The admin API's pause and resume routes, called as the host calls them, against the emulators and Azurite:
who paused is recorded, a paused mapping's full sync, match and modified sync are refused with 409, bad input
is a 400, an unknown mapping a 404, and resume answers with the catch-up it ran."""

from __future__ import annotations

import pytest

from tests.functions.runtime import installed
from tests.functions.test_admin import EASY_AUTH, OPERATOR, VIEWER, call
from tests.sync import conftest as fixtures
from tests.sync.conftest import World, coupled_customer

pack, bc_app, dv_app, state, engine_options, world = (fixtures.pack, fixtures.bc_app, fixtures.dv_app, fixtures.state,
                                                      fixtures.engine_options, fixtures.world)
CUSTOMERS = {"mapping": "customers"}


async def test_pause_refuse_and_resume(world: World) -> None:
    customer, account_id = await coupled_customer(world)
    with installed(world.engine, EASY_AUTH):
        status, doc = await call("manage_pause_mapping", "POST", route=CUSTOMERS, headers=OPERATOR,
                                 body={"reason": "  BC upgrade\ntonight "})
        assert status == 200, doc
        assert (doc["name"], doc["state"]) == ("customers", "paused")
        assert (doc["paused"]["reason"], doc["paused"]["by"]) == ("BC upgrade tonight", "user:olga@contoso.example")
        assert (await call("manage_get_mapping", route=CUSTOMERS, headers=VIEWER))[1]["state"] == "paused"
        listed = (await call("manage_list_mappings", headers=VIEWER))[1]["mappings"]
        assert {m["name"]: m["state"] for m in listed}["contacts"] == "running"

        # What would write on it is refused, with a message that says why and what to do.
        refused = [
            await call("manage_full_sync", "POST", params={"dry_run": "false"}, body={"mappings": ["customers"]},
                       headers=OPERATOR),
            await call("manage_full_sync", "POST", params={"dry_run": "false"}, headers=OPERATOR),  # every mapping
            await call("manage_match", "POST", route=CUSTOMERS, headers=OPERATOR),
            await call("manage_sync_mapping", "POST", route=CUSTOMERS, headers=OPERATOR),
        ]
        for status, doc in refused:
            assert status == 409 and doc["error"]["code"] == "MappingPaused", doc
        assert "resume it first (dualsync resume customers)" in refused[0][1]["error"]["message"]
        assert "BC upgrade tonight" in refused[0][1]["error"]["message"]
        # A dry run writes nothing: it still runs.
        status, dry = await call("manage_full_sync", "POST", body={"mappings": ["customers"]}, headers=VIEWER)
        assert status == 200 and dry["dry_run"] is True
        # Other mappings run.
        status, _ = await call("manage_sync_mapping", "POST", route={"mapping": "currencies"}, headers=OPERATOR)
        assert status == 200

        await world.bc.edit("customers", customer["id"], {"city": "Lund"})
        status, doc = await call("manage_resume_mapping", "POST", route=CUSTOMERS, headers=OPERATOR)
        assert status == 200, doc
        assert (doc["state"], doc["paused"]) == ("running", None)
        assert doc["catch_up"]["ok"] and {r["direction"] for r in doc["catch_up"]["runs"]} == {"to_crm", "to_erp"}
        assert (await world.dv.row("accounts", account_id))["address1_city"] == "Lund"
        # Resuming a running mapping changes nothing and runs nothing.
        status, again = await call("manage_resume_mapping", "POST", route=CUSTOMERS, headers=OPERATOR)
        assert (status, again["state"], again["catch_up"]) == (200, "running", None)
        status, _ = await call("manage_sync_mapping", "POST", route=CUSTOMERS, headers=OPERATOR)
        assert status == 200

        # Both are in the audit trail, with who did it.
        jobs = (await call("manage_list_jobs", params={"mapping": "customers"}, headers=VIEWER))[1]["jobs"]
        audit = sorted((j["message"], j["started_by"]) for j in jobs if j["trigger"] == "operator")
        assert audit == [("pause: BC upgrade tonight", "user:olga@contoso.example"),
                         ("resume: resumed", "user:olga@contoso.example")]


async def test_resume_can_leave_the_catch_up_to_the_timer(world: World) -> None:
    with installed(world.engine, EASY_AUTH):
        assert (await call("manage_pause_mapping", "POST", route=CUSTOMERS, headers=OPERATOR))[0] == 200
        status, doc = await call("manage_resume_mapping", "POST", route=CUSTOMERS, params={"catch_up": "false"},
                                 headers=OPERATOR)
    assert (status, doc["state"], doc["catch_up"]) == (200, "running", None)
    assert not [j async for j in world.state.jobs.list_jobs("customers") if j.trigger == "resume"]


@pytest.mark.parametrize(("route", "body", "raw", "headers", "expected"), [
    ("manage_pause_mapping", None, None, VIEWER, (403, "Forbidden")),
    ("manage_resume_mapping", None, None, VIEWER, (403, "Forbidden")),
    ("manage_pause_mapping", None, b"{not json", OPERATOR, (400, "BadRequest")),
    ("manage_pause_mapping", {"reason": 42}, None, OPERATOR, (400, "BadRequest")),
    ("manage_pause_mapping", {"reason": "x" * 1001}, None, OPERATOR, (400, "BadRequest")),
    ("manage_resume_mapping", {"catch_up": "perhaps"}, None, OPERATOR, (400, "BadRequest")),
])
async def test_refused_requests(world: World, route: str, body: object, raw: bytes | None,
                                headers: dict[str, str], expected: tuple[int, str]) -> None:
    with installed(world.engine, EASY_AUTH):
        status, doc = await call(route, "POST", route=CUSTOMERS, body=body, raw=raw, headers=headers)
    assert (status, doc["error"]["code"]) == expected
    assert await world.state.pauses.get("customers") is None


@pytest.mark.parametrize(("mapping", "expected"), [("no-such-mapping", (404, "UnknownMapping")),
                                                   ("payment-terms", (400, "BadRequest"))])
async def test_pausing_an_unknown_or_an_option_mapping(world: World, mapping: str, expected: tuple[int, str]) -> None:
    with installed(world.engine, EASY_AUTH):
        status, doc = await call("manage_pause_mapping", "POST", route={"mapping": mapping}, headers=OPERATOR)
        assert (status, doc["error"]["code"]) == expected
        if expected[0] == 404:
            status, doc = await call("manage_resume_mapping", "POST", route={"mapping": mapping}, headers=OPERATOR)
            assert (status, doc["error"]["code"]) == expected
