"""The console's functions called as the host calls them (`func.HttpRequest`), against the emulators and Azurite,
with Easy Auth identities: a viewer reads and gets no buttons, an operator acts, the console's actions need the
page's header, bad input is a 400 page, and what records hold is shown as text, never as markup."""

from __future__ import annotations

import base64
import functools
import json
from typing import Any

import azure.functions as func

from shared.admin.identity import OPERATOR_ROLE, VIEWER_ROLE
from shared.mapping import load_pack
from tests.functions.runtime import app_settings, installed
from tests.sync import conftest as fixtures
from tests.sync.conftest import ROOT, World, bc_customer, coupled_customer

pack, bc_app, dv_app, state, engine_options, world = (fixtures.pack, fixtures.bc_app, fixtures.dv_app, fixtures.state,
                                                      fixtures.engine_options, fixtures.world)
EASY_AUTH = app_settings(auth={"easy_auth": True})
PAGE = {"x-dualsync-console": "1", "sec-fetch-site": "same-origin"}  # what the page's script sends


@functools.cache
def _indexed() -> dict[str, Any]:
    from function_app import build_app

    app = build_app(load_pack(ROOT / "templates" / "bc-sales.yaml"))
    return {f.get_function_name(): f for f in app.get_functions()}


def principal(name: str, *roles: str) -> dict[str, str]:
    """The headers App Service Authentication adds for a signed-in Entra ID user holding `roles`."""
    claims = [{"typ": "preferred_username", "val": name}, *({"typ": "roles", "val": r} for r in roles)]
    document = {"auth_typ": "aad", "claims": claims}
    return {"X-MS-CLIENT-PRINCIPAL": base64.b64encode(json.dumps(document).encode()).decode(),
            "X-MS-CLIENT-PRINCIPAL-ID": f"id-{name}", "X-MS-CLIENT-PRINCIPAL-NAME": name}


OPERATOR, VIEWER = principal("olga@contoso.example", OPERATOR_ROLE), principal("vik@contoso.example", VIEWER_ROLE)


async def call(name: str, headers: dict[str, str], *, method: str = "GET", params: dict[str, str] | None = None,
               route: dict[str, str] | None = None, form: dict[str, str] | None = None) -> func.HttpResponse:
    body = "&".join(f"{k}={v}" for k, v in (form or {}).items()).encode()
    request = func.HttpRequest(method, f"https://dualsync.example/api/console/{name}", headers=headers,
                               params=params or {}, route_params=route or {}, body=body)
    return await _indexed()[name].get_user_function()(request)


def text(response: func.HttpResponse) -> str:
    return response.get_body().decode()


async def test_viewers_read_without_buttons_and_operators_act(world: World) -> None:
    customer, _ = await coupled_customer(world)
    await world.state.errors.record_failure("customers", direction="to_crm", source_id=customer["id"],
                                            message="Dataverse refused: creditlimit out of range")
    one = {"mapping": "customers", "direction": "to_crm", "source_id": customer["id"]}
    with installed(world.engine, EASY_AUTH):
        overview = await call("console_overview", VIEWER)
        assert overview.status_code == 200 and overview.mimetype == "text/html"
        assert "vik@contoso.example · viewer" in text(overview) and "customers" in text(overview)
        assert "Content-Security-Policy" in overview.headers
        errors = await call("console_errors", VIEWER, params={"mapping": "customers"})
        assert "creditlimit out of range" in text(errors)
        assert 'method="post"' not in text(errors) and 'method="post"' not in text(overview)  # no buttons

        refused = await call("console_action", {**VIEWER, **PAGE}, method="POST", route={"action": "skip"}, form=one)
        assert refused.status_code == 403 and json.loads(refused.get_body())["error"]["code"] == "Forbidden"
        assert not (await world.state.errors.get_error("customers", "to_crm", customer["id"])).skipped

        as_operator = await call("console_errors", OPERATOR, params={"mapping": "customers"})
        assert text(as_operator).count('action="/api/console/actions/') == 3  # Retry, Skip, Retry all
        forged = await call("console_action", OPERATOR, method="POST", route={"action": "skip"}, form=one)
        assert forged.status_code == 403 and "x-dualsync-console" in json.loads(forged.get_body())["error"]["message"]
        done = await call("console_action", {**OPERATOR, **PAGE}, method="POST", route={"action": "skip"}, form=one)
        assert done.status_code == 200, text(done)
        assert json.loads(done.get_body()) == {"ok": True, "message": f"{customer['id']} (customers to_crm) skipped: "
                                                                      "no automatic retries until restored"}
    assert (await world.state.errors.get_error("customers", "to_crm", customer["id"])).skipped
    audit = [j async for j in world.state.jobs.list_jobs("customers") if j.trigger == "operator"]
    assert [(j.message.split(":")[0], j.started_by) for j in audit] == [("skip", "user:olga@contoso.example")]


async def test_without_a_principal_the_page_is_a_401_page(world: World) -> None:
    with installed(world.engine, EASY_AUTH):
        response = await call("console_overview", {})
    assert response.status_code == 401 and response.mimetype == "text/html"
    assert "sign in with Entra ID" in text(response) and "<nav" not in text(response)


async def test_bad_input_is_a_400_page_or_answer_naming_what_is_wrong(world: World) -> None:
    with installed(world.engine, EASY_AUTH):
        for name, params, route, status, message in (
                ("console_errors", {"skipped": "maybe"}, None, 400, "&#x27;skipped&#x27; must be true or false"),
                ("console_jobs", {"since": "yesterday"}, None, 400, "takes an age"),
                ("console_records", {"mapping": "customers", "side": "middle", "id": "x"}, None, 400,
                 "&#x27;side&#x27; must be erp or crm"),
                ("console_records", {"mapping": "nope", "id": "x"}, None, 404, "nope"),
                ("console_mapping", {}, {"mapping": "nope"}, 404, "nope")):
            response = await call(name, VIEWER, params=params, route=route)
            assert response.status_code == status and message in text(response), (name, text(response)[-600:])
        for action, form, message in (("retry", {"mapping": "customers", "direction": "to_crm"}, "'source_id'"),
                                      ("skip", {"mapping": "customers", "direction": "up", "source_id": "x"},
                                       "'direction' must be to_crm or to_erp"),
                                      ("explode", {}, "no console action 'explode'")):
            response = await call("console_action", {**OPERATOR, **PAGE}, method="POST", route={"action": action},
                                  form=form)
            error = json.loads(response.get_body())["error"]
            assert response.status_code in (400, 404) and message in error["message"], error


async def test_record_data_is_shown_as_text_side_by_side(world: World) -> None:
    evil = '<script>alert("owned")</script><img src=x onerror=alert(1)>'
    await world.couple_salespeople()
    customer = await bc_customer(world, displayName=evil)
    result = await world.engine.sync_record("customers", "to_crm", customer["id"], create=True)
    assert result.ok, result.message
    await world.bc.edit("customers", customer["id"], {"city": "Lund"})  # changed since the last sync
    with installed(world.engine, EASY_AUTH):
        page = text(await call("console_records", VIEWER, params={"mapping": "customers", "side": "erp",
                                                                  "id": customer["id"]}))
        alone = text(await call("console_records", VIEWER, params={"mapping": "customers", "side": "crm",
                                                                   "id": "00000000-0000-0000-0000-00000000beef"}))
    assert "<script>alert" not in page and "<img src=x" not in page
    assert page.count("&lt;script&gt;alert(&quot;owned&quot;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;") == 4
    assert page.count("<script>") == 1  # the console's own
    city = page[page.index("<th>city ⇄ address1_city</th>"):].split("</tr>")[0]
    assert '<td class="value changed" title="changed since the last sync">Lund</td>' in city
    assert result.destination_id in page
    assert "is not coupled in customers" in alone and "not found" not in alone
