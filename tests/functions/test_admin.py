"""The admin API's functions, called as the host calls them (`func.HttpRequest`), against the emulators and
Azurite: who may call (function keys; Easy Auth identities and their app roles), 400 with a clear JSON error
for bad input, each route's happy path, who is recorded, and that no coupling snapshot outlives its coupling."""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Iterator
from typing import Any

import azure.functions as func
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette

from shared.admin.identity import OPERATOR_ROLE, VIEWER_ROLE
from shared.app_runtime import AppRuntime, install
from shared.cli.remote import AdminClient, RemoteError
from shared.mapping import Side, load_pack
from shared.settings import SettingsError, load_auth
from shared.state import encode_key
from tests.functions.runtime import app_settings, installed
from tests.sync import conftest as fixtures
from tests.sync.conftest import ROOT, World, bc_customer, coupled_customer, crm_account

pack, bc_app, dv_app, state, engine_options, world = (fixtures.pack, fixtures.bc_app, fixtures.dv_app, fixtures.state,
                                                      fixtures.engine_options, fixtures.world)


@functools.cache
def _indexed() -> dict[str, Any]:
    from function_app import build_app

    app = build_app(load_pack(ROOT / "templates" / "bc-sales.yaml"))
    return {f.get_function_name(): f for f in app.get_functions()}


KEY = {"x-functions-key": "the-key-the-host-checked"}
EASY_AUTH = app_settings(auth={"easy_auth": True})


def principal(name: str, *roles: str, object_id: str = "0b5c4944-0327-91fc-2b0b-c19a1b873b64") -> dict[str, str]:
    """The headers App Service Authentication adds for a signed-in Entra ID user holding `roles`."""
    claims = [{"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier", "val": object_id},
              {"typ": "preferred_username", "val": name}, *({"typ": "roles", "val": r} for r in roles)]
    document = {"auth_typ": "aad", "claims": claims, "name_typ": "preferred_username",
                "role_typ": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"}
    return {"X-MS-CLIENT-PRINCIPAL": base64.b64encode(json.dumps(document).encode()).decode(),
            "X-MS-CLIENT-PRINCIPAL-ID": object_id, "X-MS-CLIENT-PRINCIPAL-NAME": name}


OPERATOR, VIEWER = principal("olga@contoso.example", OPERATOR_ROLE), principal("vik@contoso.example", VIEWER_ROLE)


@pytest.fixture
def configured() -> Iterator[None]:
    """A runtime with settings but no engine: enough for every check made before a request is served."""
    previous = install(AppRuntime(settings=app_settings()))
    try:
        yield
    finally:
        install(previous)


async def call(name: str, method: str = "GET", *, body: Any = None, params: dict[str, str] | None = None,
               route: dict[str, str] | None = None, raw: bytes | None = None,
               headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """Call the admin function `name` with a request as the host would build it (by default with the function
    key the host checked, in its header); (status, JSON body)."""
    content = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    request = func.HttpRequest(method, f"http://localhost/api/{name}",
                               headers={"content-type": "application/json", **(KEY if headers is None else headers)},
                               params=params or {}, route_params=route or {}, body=content)
    response = await _indexed()[name].get_user_function()(request)
    assert response.mimetype == "application/json"
    return response.status_code, json.loads(response.get_body())


# ----- indexing and auth
def test_every_admin_route_needs_a_function_key_unless_easy_auth_and_none_starts_with_admin() -> None:
    admin = {n: f for n, f in _indexed().items() if n.startswith("manage_")}
    assert len(admin) == 20
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
    ("manage_list_conflicts", "GET", {"params": {"reversed": "maybe"}}, "'reversed' must be true or false"),
    ("manage_list_conflicts", "GET", {"params": {"limit": "x"}}, "'limit' must be a whole number"),
])
async def test_bad_input_is_a_400_naming_what_is_wrong(name: str, method: str, kwargs: dict[str, Any],
                                                       message: str, configured: None) -> None:
    status, body = await call(name, method, **kwargs)  # no engine installed: parsing fails before any I/O
    assert status == 400, body
    assert body["error"]["code"] == "BadRequest" and message in body["error"]["message"]


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.one_of(st.binary(max_size=40), st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(
        ["direction", "source_id", "source_ids", "create", "force"]), inner, max_size=4), max_leaves=8)))
async def test_any_malformed_sync_record_body_is_a_400(payload: Any, configured: None) -> None:
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
        status, jobs = await call("manage_list_jobs", params={"mapping": "customers"})
        audit = sorted((j["message"].split(":")[0], j["direction"], j["started_by"]) for j in jobs["jobs"]
                       if j["trigger"] == "operator")
        by_key = "automation:function key"
        assert audit == [("restore", "to_crm", by_key), ("skip", "to_crm", by_key)]

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

            # Through the host, a key in the URL opens the door (the host checked it) but not to a write.
            in_url = await http.post("http://dualsync.test/api/manage/errors/retry-all",
                                     params={"code": keys["function"]})
            assert in_url.status_code == 403 and in_url.json()["error"]["code"] == "KeyInUrl"
            wrong = await http.post("http://dualsync.test/api/manage/errors/retry-all", params={"code": "nope"})
            assert wrong.status_code == 401
            listed = await http.get("http://dualsync.test/api/manage/jobs", params={"code": keys["function"]})
            assert listed.status_code == 200 and listed.json()["jobs"][0]["started_by"] == "automation:function key"


def test_the_remote_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="http"):
        AdminClient("dualsync.azurewebsites.net", None)
    assert AdminClient("https://a.example/api/", None).root == "https://a.example/api/manage/"


# ----- who may call: function keys (Easy Auth off)
async def test_without_easy_auth_a_key_is_needed_and_principal_headers_are_ignored(configured: None) -> None:
    for headers in ({}, OPERATOR):  # no key; a forged Easy Auth operator without a key
        status, body = await call("manage_uncouple", "POST", body={"erp_id": "x"}, route={"mapping": "customers"},
                                  headers=headers)
        assert status == 401 and body["error"]["code"] == "Unauthenticated"
        assert "x-functions-key" in body["error"]["message"]


@pytest.mark.parametrize(("name", "method", "kwargs"), [
    ("manage_uncouple", "POST", {"body": {"erp_id": "x"}, "route": {"mapping": "customers"}}),
    ("manage_retry_all_errors", "POST", {}),
    ("manage_skip_error", "POST", {"body": {"mapping": "customers", "direction": "to_crm", "source_id": "x"}}),
    ("manage_full_sync", "POST", {"params": {"dry_run": "false"}}),
    ("manage_match", "POST", {"route": {"mapping": "customers"}}),
])
async def test_a_key_in_the_url_is_refused_for_anything_that_writes(name: str, method: str, kwargs: dict[str, Any],
                                                                    configured: None) -> None:
    status, body = await call(name, method, headers={}, **{**kwargs, "params": {**kwargs.get("params", {}),
                                                                                  "code": "the-key"}})
    assert status == 403 and body["error"]["code"] == "KeyInUrl"
    assert "x-functions-key" in body["error"]["message"] and "the-key" not in body["error"]["message"]


async def test_a_key_in_the_url_still_reads(world: World) -> None:
    with installed(world.engine):
        status, body = await call("manage_list_jobs", params={"code": "the-key"}, headers={})
        assert status == 200 and body == {"jobs": [], "total": 0}
        status, dry = await call("manage_full_sync", "POST", params={"code": "the-key", "mapping": "currencies"},
                                 headers={})
    assert status == 200 and dry["dry_run"] is True


# ----- who may call: Entra ID identities through Easy Auth
def test_the_host_auth_level_follows_the_easy_auth_setting() -> None:
    assert load_auth({}).easy_auth is False
    assert load_auth({"DUALSYNC_AUTH__EASY_AUTH": "true"}).easy_auth is True
    with pytest.raises(SettingsError, match="DUALSYNC_AUTH__EASY_AUTH"):
        load_auth({"DUALSYNC_AUTH__EASY_AUTH": "perhaps"})


async def test_with_easy_auth_viewers_read_operators_write_and_keys_alone_are_refused(world: World) -> None:
    customer, account_id = await coupled_customer(world)
    route = {"mapping": "customers"}
    with installed(world.engine, EASY_AUTH):
        for headers in (KEY, {}, principal("nobody@contoso.example")):  # a key is no identity here
            status, body = await call("manage_list_jobs", headers=headers)
            assert status == (403 if headers.get("X-MS-CLIENT-PRINCIPAL") else 401), body
        status, jobs = await call("manage_list_jobs", headers=VIEWER)
        assert status == 200 and jobs["total"] == 1
        status, dry = await call("manage_full_sync", "POST", params={"mapping": "customers"}, headers=VIEWER)
        assert status == 200 and dry["dry_run"] is True
        for name, kwargs in (("manage_full_sync", {"params": {"mapping": "customers", "dry_run": "false"}}),
                             ("manage_uncouple", {"body": {"erp_id": customer["id"]}, "route": route}),
                             ("manage_retry_all_errors", {})):
            status, refused = await call(name, "POST", headers=VIEWER, **kwargs)
            assert status == 403 and refused["error"]["code"] == "Forbidden", name
            assert OPERATOR_ROLE in refused["error"]["message"] and "user:vik@contoso.example" in \
                refused["error"]["message"]
        assert await world.coupling("customers", Side.ERP, customer["id"]) is not None  # nothing was done

        await world.bc.edit("customers", customer["id"], {"city": "Lund"})
        status, synced = await call("manage_sync_record", "POST", route=route, headers=OPERATOR,
                                    body={"direction": "to_crm", "source_id": customer["id"]})
        assert status == 200 and synced["ok"]
        status, gone = await call("manage_uncouple", "POST", body={"crm_id": account_id}, route=route,
                                  headers=OPERATOR)
        assert status == 200 and gone["uncoupled"]
        status, listed = await call("manage_list_jobs", params={"mapping": "customers"}, headers=VIEWER)
        status, status_doc = await call("manage_get_mapping", route=route, headers=VIEWER)
    assert status_doc["last_job"]["trigger"] == "manual"  # the audit row is newer, but it is not a sync
    by_trigger = {j["trigger"]: j for j in listed["jobs"]}
    assert by_trigger["manual"]["started_by"] == "user:olga@contoso.example"   # the sync it ran
    assert by_trigger["record"]["started_by"] is None                          # the engine's own, earlier
    audit = by_trigger["operator"]
    assert (audit["started_by"], audit["counts"], audit["status"]) == ("user:olga@contoso.example",
                                                                         {"uncoupled": 1}, "finished")
    assert audit["message"].startswith("uncouple:") and customer["id"] in audit["message"]


@settings(max_examples=80, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.one_of(st.text(max_size=60), st.binary(max_size=60).map(lambda b: base64.b64encode(b).decode()),
                        st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=6),
                                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                                         st.sampled_from(["claims", "typ", "val", "role_typ"]), inner, max_size=3),
                                     max_leaves=8).map(lambda d: base64.b64encode(json.dumps(d).encode()).decode())))
async def test_any_malformed_principal_is_a_401_or_a_caller_without_roles(header: str) -> None:
    previous = install(AppRuntime(settings=EASY_AUTH))
    try:
        status, body = await call("manage_list_jobs", headers={"X-MS-CLIENT-PRINCIPAL": header})
    finally:
        install(previous)
    assert status in (401, 403), body  # never a 500, never let in: no role claim can be made up this way
    assert body["error"]["code"] in ("Unauthenticated", "Forbidden")


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(roles=st.lists(st.sampled_from([OPERATOR_ROLE, VIEWER_ROLE, "DualSync.Other", "operator", "Reader"]),
                      max_size=3))
async def test_only_the_app_roles_open_the_doors(roles: list[str]) -> None:
    previous = install(AppRuntime(settings=EASY_AUTH))
    try:
        # Bad input on purpose: a 400 means the caller got past the check (the request is parsed after it).
        read, _ = await call("manage_list_jobs", params={"limit": "0"}, headers=principal("u@contoso.example", *roles))
        write, _ = await call("manage_uncouple", "POST", body={"erp_id": "x", "crm_id": "y"},
                              route={"mapping": "customers"}, headers=principal("u@contoso.example", *roles))
    finally:
        install(previous)
    readable = OPERATOR_ROLE in roles or VIEWER_ROLE in roles
    assert read == (400 if readable else 403) and write == (400 if OPERATOR_ROLE in roles else 403)


# ----- personal data: a coupling's snapshot leaves with the coupling
async def _rows_naming(world: World, mapping: str, *ids: str) -> list[dict[str, Any]]:
    table = world.state.couplings.table
    rows = [e async for e in table.query_entities("PartitionKey eq @pk", parameters={"pk": encode_key(mapping)})]
    return [r for r in rows if any(i in json.dumps(dict(r), default=str) for i in ids)]


async def test_uncouple_and_deletion_leave_no_snapshot_behind(world: World) -> None:
    first, first_account = await coupled_customer(world)
    second = await bc_customer(world, number="C8002")
    second_account = (await world.engine.sync_record("customers", "to_crm", second["id"], create=True)).destination_id
    assert second_account and await _rows_naming(world, "customers", first["id"], second["id"])  # rows to remove
    assert all("snapshot" in str(list(r)) for r in await _rows_naming(world, "customers", first["id"]))
    with installed(world.engine):
        status, _ = await call("manage_uncouple", "POST", body={"erp_id": first["id"]},
                               route={"mapping": "customers"})
        assert status == 200
        assert await _rows_naming(world, "customers", first["id"], first_account) == []

        await world.bc.delete("customers", second["id"])  # the mapping's deletion policy: remove the coupling
        status, synced = await call("manage_sync_record", "POST", route={"mapping": "customers"},
                                    body={"direction": "to_crm", "source_id": second["id"]})
    assert status == 200 and synced["results"][0]["outcome"] == "uncoupled"
    assert await _rows_naming(world, "customers", second["id"], second_account) == []


async def test_conflicts_are_listed_and_reversed_once_by_operators_only(world: World) -> None:
    customer, account_id = await coupled_customer(world)  # customers: erp_wins
    await world.bc.edit("customers", customer["id"], {"city": "ERP-city"})
    await world.dv.edit("accounts", account_id, {"address1_city": "CRM-city"})
    assert (await world.engine.sync_record("customers", "to_crm", customer["id"])).ok
    with installed(world.engine, EASY_AUTH):
        status, listed = await call("manage_list_conflicts", params={"mapping": "customers"}, headers=VIEWER)
        assert status == 200 and listed["total"] == 1, listed
        [entry] = listed["conflicts"]
        assert (entry["field"], entry["erp_value"], entry["crm_value"], entry["winner"], entry["policy"]) == (
            "city ⇄ address1_city", "ERP-city", "CRM-city", "erp", "erp_wins")
        route = {"conflict_id": entry["id"]}
        status, refused = await call("manage_reverse_conflict", "POST", route=route, headers=VIEWER)
        assert status == 403 and refused["error"]["code"] == "Forbidden"
        status, done = await call("manage_reverse_conflict", "POST", route=route, headers=OPERATOR)
        assert status == 200 and done["ok"] and done["conflict"]["reversed_at"], done
        status, twice = await call("manage_reverse_conflict", "POST", route=route, headers=OPERATOR)
        assert status == 409 and twice["error"]["code"] == "AlreadyReversed"
        status, unknown = await call("manage_reverse_conflict", "POST", route={"conflict_id": "nope"},
                                     headers=OPERATOR)
        assert status == 404 and unknown["error"]["code"] == "NotFound"
        status, nope = await call("manage_list_conflicts", params={"mapping": "nope"}, headers=VIEWER)
        assert status == 404 and nope["error"]["code"] == "UnknownMapping"
        status, report = await call("manage_reconcile", params={"mapping": "customers"}, headers=VIEWER)
    assert (await world.bc.row("customers", customer["id"]))["city"] == "CRM-city"
    assert (await world.dv.row("accounts", account_id))["address1_city"] == "CRM-city"
    assert status == 200 and report["reports"][0]["counts"] == {
        k: sum(d["kind"] == k for d in report["reports"][0]["drift"]) for k in report["reports"][0]["counts"]}
