"""The admin API's functions, called as the host calls them (`func.HttpRequest`), against the emulators and
Azurite: function-level auth, 400 with a clear JSON error for bad input, and each route's happy path."""

from __future__ import annotations

import functools
import json
from typing import Any

import azure.functions as func
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette

from shared.cli.remote import AdminClient, RemoteError
from shared.mapping import Side, load_pack
from tests.functions.runtime import installed
from tests.sync import conftest as fixtures
from tests.sync.conftest import ROOT, World, bc_customer, coupled_customer, crm_account

pack, bc_app, dv_app, state, engine_options, world = (fixtures.pack, fixtures.bc_app, fixtures.dv_app, fixtures.state,
                                                      fixtures.engine_options, fixtures.world)


@functools.cache
def _indexed() -> dict[str, Any]:
    from function_app import build_app

    app = build_app(load_pack(ROOT / "templates" / "bc-sales.yaml"))
    return {f.get_function_name(): f for f in app.get_functions()}


async def call(name: str, method: str = "GET", *, body: Any = None, params: dict[str, str] | None = None,
               route: dict[str, str] | None = None, raw: bytes | None = None) -> tuple[int, Any]:
    """Call the admin function `name` with a request as the host would build it; (status, JSON body)."""
    content = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    request = func.HttpRequest(method, f"http://localhost/api/{name}", headers={"content-type": "application/json"},
                               params=params or {}, route_params=route or {}, body=content)
    response = await _indexed()[name].get_user_function()(request)
    assert response.mimetype == "application/json"
    return response.status_code, json.loads(response.get_body())


# ----- indexing and auth
def test_every_admin_route_needs_a_function_key_and_none_starts_with_admin() -> None:
    admin = {n: f for n, f in _indexed().items() if n.startswith("manage_")}
    assert len(admin) == 16
    for name, function in admin.items():
        trigger = next(b for b in function.get_bindings() if b.type == "httpTrigger")
        assert trigger.auth_level == func.AuthLevel.FUNCTION, name
        assert trigger.route.startswith("manage/"), trigger.route  # the host reserves admin/…
    assert not any(n.lower().startswith("admin") for n in _indexed())


# ----- bad input: 400 with a clear message, nothing touched
@pytest.mark.parametrize(("name", "method", "kwargs", "message"), [
    ("manage_couple", "POST", {"raw": b"{not json", "route": {"mapping": "customers"}}, "not valid JSON"),
    ("manage_couple", "POST", {"body": ["a"], "route": {"mapping": "customers"}}, "must be a JSON object"),
    ("manage_couple", "POST", {"body": {"erp_id": "x"}, "route": {"mapping": "customers"}}, "'crm_id' is required"),
    ("manage_uncouple", "POST", {"body": {"erp_id": "x", "crm_id": "y"}, "route": {"mapping": "customers"}},
     "exactly one of"),
    ("manage_sync_record", "POST", {"body": {"direction": "sideways", "source_id": "x"},
                                    "route": {"mapping": "customers"}}, "'direction' must be to_crm or to_erp"),
    ("manage_sync_record", "POST", {"body": {"direction": "to_crm"}, "route": {"mapping": "customers"}},
     "'source_id' or 'source_ids'"),
    ("manage_sync_record", "POST", {"body": {"direction": "to_crm", "source_id": 5}, "route": {"mapping": "customers"}},
     "'source_id' must be a string"),
    ("manage_sync_record", "POST", {"body": {"direction": "to_crm", "source_id": "x", "force": "maybe"},
                                    "route": {"mapping": "customers"}}, "'force' must be true or false"),
    ("manage_full_sync", "POST", {"params": {"dry_run": "perhaps"}}, "'dry_run' must be true or false"),
    ("manage_list_jobs", "GET", {"params": {"since": "yesterday"}}, "'since' takes an age"),
    ("manage_list_jobs", "GET", {"params": {"limit": "0"}}, "'limit' must be between 1 and 1000"),
    ("manage_list_errors", "GET", {"params": {"skipped": "2"}}, "'skipped' must be true or false"),
    ("manage_retry_error", "POST", {"body": {"mapping": "customers", "direction": "to_crm"}},
     "'source_id' is required"),
    ("manage_skip_error", "POST", {"body": {"mapping": " ", "direction": "to_crm", "source_id": "x"}},
     "'mapping' is required"),
    ("manage_reconcile", "POST", {"body": {"mappings": [1, 2]}}, "list of mapping names"),
])
async def test_bad_input_is_a_400_naming_what_is_wrong(name: str, method: str, kwargs: dict[str, Any],
                                                       message: str) -> None:
    status, body = await call(name, method, **kwargs)  # no runtime installed: parsing fails before any I/O
    assert status == 400, body
    assert body["error"]["code"] == "BadRequest" and message in body["error"]["message"]


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.one_of(st.binary(max_size=40), st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(
        ["direction", "source_id", "source_ids", "create", "force"]), inner, max_size=4), max_leaves=8)))
async def test_any_malformed_sync_record_body_is_a_400(payload: Any) -> None:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    body = payload if isinstance(payload, dict) else None
    well_formed = (body is not None and body.get("direction") in ("to_crm", "to_erp")
                   and isinstance(body.get("source_id"), str) and body["source_id"].strip()
                   and "source_ids" not in body)
    if well_formed:
        return  # a valid request would reach the engine; that path is tested below
    status, answer = await call("manage_sync_record", "POST", raw=raw, route={"mapping": "customers"})
    assert status == 400 and answer["error"]["message"]


# ----- happy paths against the emulators
async def test_mappings_and_their_status(world: World) -> None:
    await coupled_customer(world)
    people = await world.bc.rows("salespeoplePurchasers")
    uncoupled_person = await bc_customer(world, number="C7001", salespersonCode=people[-1]["code"] + "X")
    await world.engine.sync_record("customers", "to_crm", uncoupled_person["id"], create=True)
    with installed(world.engine):
        status, body = await call("manage_list_mappings")
        assert status == 200 and body["pack"] == "bc-sales"
        names = [m["name"] for m in body["mappings"]]
        assert names.index("currencies") < names.index("customers")
        status, one = await call("manage_get_mapping", route={"mapping": "customers"})
    assert status == 200
    assert (one["enabled"], one["direction"], one["erp_entity"], one["crm_entity"]) == (
        True, "bidirectional", "customers", "accounts")
    assert one["last_job"]["trigger"] == "record" and one["errors"] == 1 and one["skipped"] == 0
    with installed(world.engine):
        status, missing = await call("manage_get_mapping", route={"mapping": "nope"})
    assert status == 404 and missing["error"]["code"] == "UnknownMapping"


async def test_couple_uncouple_and_sync_record(world: World) -> None:
    await world.couple_salespeople()
    customer = await bc_customer(world)
    account = await crm_account(world, accountnumber=customer["number"], name=customer["displayName"])
    route = {"mapping": "customers"}
    with installed(world.engine):
        status, body = await call("manage_couple", "POST", body={"erp_id": customer["id"],
                                                                 "crm_id": account["accountid"]}, route=route)
        assert status == 200 and body["coupled"]
        status, again = await call("manage_couple", "POST", body={"erp_id": customer["id"],
                                                                  "crm_id": account["accountid"]}, route=route)
        assert status == 409 and again["error"]["code"] == "AlreadyCoupled"
        status, ghost = await call("manage_couple", "POST", body={
            "erp_id": customer["id"], "crm_id": "00000000-0000-0000-0000-0000000000aa"}, route=route)
        assert status == 404 and ghost["error"]["code"] == "RecordNotFound"

        await world.bc.edit("customers", customer["id"], {"city": "Visby"})
        status, synced = await call("manage_sync_record", "POST", route=route,
                                    body={"direction": "to-crm", "source_id": customer["id"]})
        assert status == 200 and synced["ok"] and synced["results"][0]["outcome"] == "modified"
        assert (await world.dv.row("accounts", account["accountid"]))["address1_city"] == "Visby"
        status, wrong_way = await call("manage_sync_record", "POST", route={"mapping": "salespeople"},
                                       body={"direction": "to_crm", "source_id": customer["id"]})
        assert status == 400 and "does not sync to_crm" in wrong_way["error"]["message"]

        status, gone = await call("manage_uncouple", "POST", body={"crm_id": account["accountid"]}, route=route)
        assert status == 200 and gone["erp_id"] == customer["id"]
        assert await world.coupling("customers", Side.ERP, customer["id"]) is None
        status, none = await call("manage_uncouple", "POST", body={"crm_id": account["accountid"]}, route=route)
        assert status == 404 and none["error"]["code"] == "NotCoupled"


async def test_full_sync_is_a_dry_run_unless_told_otherwise_and_match_couples(world: World) -> None:
    await world.couple_salespeople()
    customer = await bc_customer(world)
    await crm_account(world, accountnumber=customer["number"], name=customer["displayName"])
    with installed(world.engine):
        mark = world.traffic.mark()
        status, dry = await call("manage_full_sync", "POST", body={"mappings": ["customers"]})
        assert status == 200 and dry["dry_run"] is True
        # Nothing is written: not the mapping's records, nor the dependencies a real run would sync first.
        assert world.traffic.writes_since(mark) == []
        assert await world.coupling("customers", Side.ERP, customer["id"]) is None
        assert sum(r["planned"].get("couple", 0) for r in dry["runs"]) >= 1

        status, matched = await call("manage_match", "POST", route={"mapping": "customers"})
        assert status == 200 and matched["dry_run"] is False
        assert (await world.coupling("customers", Side.ERP, customer["id"])) is not None

        status, real = await call("manage_full_sync", "POST", params={"dry_run": "false", "mapping": "currencies"})
        assert status == 200 and real["dry_run"] is False and all(r["job_id"] for r in real["runs"])


async def test_sync_mapping_jobs_and_reconcile(world: World) -> None:
    customer, account_id = await coupled_customer(world)
    await world.bc.edit("customers", customer["id"], {"city": "Umeå"})
    with installed(world.engine):
        status, body = await call("manage_sync_mapping", "POST", route={"mapping": "customers"},
                                  params={"direction": "to_crm"})
        assert status == 200 and body["ok"] and [r["direction"] for r in body["runs"]] == ["to_crm"]
        assert body["runs"][0]["counts"] == {"modified": 1}
        job_id = body["runs"][0]["job_id"]
        status, jobs = await call("manage_list_jobs", params={"mapping": "customers", "since": "1h", "limit": "1"})
        assert status == 200 and jobs["total"] >= 2 and [j["job_id"] for j in jobs["jobs"]] == [job_id]
        status, one = await call("manage_get_job", route={"mapping": "customers", "job_id": job_id})
        assert status == 200 and one["status"] == "finished" and one["trigger"] == "manual"
        status, none = await call("manage_get_job", route={"mapping": "customers", "job_id": "nope"})
        assert status == 404 and none["error"]["code"] == "NotFound"
        status, report = await call("manage_reconcile", params={"mapping": "customers"})
    assert status == 200 and [r["mapping"] for r in report["reports"]] == ["customers"]
    differs = [d for d in report["reports"][0]["drift"] if d["kind"] == "differs"]
    assert not any(account_id in d["ids"] for d in differs)


async def test_errors_list_skip_restore_retry_and_retry_all(world: World) -> None:
    people = await world.bc.rows("salespeoplePurchasers")
    failing = [await bc_customer(world, number=f"C60{i}", salespersonCode=people[0]["code"]) for i in range(2)]
    for c in failing:
        await world.engine.sync_record("customers", "to_crm", c["id"], create=True)
    one = {"mapping": "customers", "direction": "to_crm", "source_id": failing[0]["id"]}
    with installed(world.engine):
        status, listed = await call("manage_list_errors", params={"mapping": "customers"})
        assert status == 200 and listed["total"] == 2
        assert "dependency not coupled" in listed["errors"][0]["message"]
        status, skipped = await call("manage_skip_error", "POST", body=one)
        assert status == 200 and skipped["skipped"] is True
        status, only = await call("manage_list_errors", params={"skipped": "true"})
        assert [e["source_id"] for e in only["errors"]] == [failing[0]["id"]]
        status, restored = await call("manage_restore_error", "POST", body=one)
        assert status == 200 and restored["skipped"] is False
        status, missing = await call("manage_skip_error", "POST", body={**one, "source_id": "nobody"})
        assert status == 404 and "no error recorded" in missing["error"]["message"]

        await world.couple_salespeople()
        status, retried = await call("manage_retry_error", "POST", body=one)
        assert status == 200 and retried["ok"] and retried["result"]["outcome"] == "inserted"
        status, rest = await call("manage_retry_all_errors", "POST", body={"mapping": "customers"})
        assert status == 200 and rest["retried"] == 1 and rest["still_failing"] == 0
        status, after = await call("manage_list_errors")
    assert after["total"] == 0


# ----- the CLI's remote client, over real HTTP routing with function keys (the local host's HTTP bridge)
def _served(keys: dict[str, str]) -> Starlette:
    from emulators.functions_host.http import http_route

    routes = [http_route(f, keys) for name, f in _indexed().items() if name.startswith("manage_")]
    return Starlette(routes=routes)  # the host's routes carry the /api/ prefix


async def test_the_remote_client_drives_the_admin_api_with_the_function_key(world: World) -> None:
    customer, account_id = await coupled_customer(world)
    keys = {"function": "fn-key-123", "master": "master-key-456"}
    transport = httpx.ASGITransport(app=_served(keys))
    async with httpx.AsyncClient(transport=transport) as http:
        with installed(world.engine):
            async with AdminClient("http://dualsync.test/api", "wrong", http=http) as stranger:
                with pytest.raises(RemoteError) as refused:
                    await stranger.mappings()
            assert refused.value.status == 401 and "DUALSYNC_ADMIN_KEY" in refused.value.message

            admin = AdminClient("http://dualsync.test", keys["function"], http=http)
            listed = await admin.mappings()
            assert "customers" in [m["name"] for m in listed["mappings"]]
            await world.bc.edit("customers", customer["id"], {"city": "Falun"})
            synced = await admin.sync_record("customers", "to-crm", [customer["id"]])
            assert synced["results"][0]["outcome"] == "modified"
            assert (await world.dv.row("accounts", account_id))["address1_city"] == "Falun"
            dry = await admin.full_sync(["customers"])
            assert dry["dry_run"] is True
            jobs = await admin.jobs("customers", since="1h", limit=5)
            assert jobs["jobs"][0]["trigger"] == "manual"
            with pytest.raises(RemoteError) as unknown:
                await admin.mapping("nope")
            assert (unknown.value.status, unknown.value.code) == (404, "UnknownMapping")
            with pytest.raises(RemoteError) as bad:
                await admin.sync_record("customers", "sideways", ["x"])
            assert bad.value.status == 400 and "direction" in bad.value.message


def test_the_remote_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="http"):
        AdminClient("dualsync.azurewebsites.net", None)
    assert AdminClient("https://a.example/api/", None).root == "https://a.example/api/manage/"
