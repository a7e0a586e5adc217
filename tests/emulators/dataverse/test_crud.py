"""Writes: create/upsert/update/delete, conditional headers, alternate keys, lookups, validation errors."""

from __future__ import annotations

import re

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulators.dataverse.core import Emulator, user_id_for
from tests.emulators.dataverse.conftest import API, BASE

GUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def _id_from(resp: httpx.Response, entity_set: str) -> str:
    m = re.fullmatch(rf"{BASE}{API}/{entity_set}\(({GUID})\)", resp.headers["OData-EntityId"])
    assert m, resp.headers
    return m.group(1)


async def test_create_returns_204_with_entity_id_and_system_fields(dv: httpx.AsyncClient) -> None:
    r = await dv.post("accounts", json={"name": "Fourth Coffee", "accountnumber": "FC-1", "customertypecode": 3,
                                        "creditlimit": 2500.5})
    assert r.status_code == 204 and r.content == b""
    rid = _id_from(r, "accounts")
    row = (await dv.get(f"accounts({rid})")).json()
    me = user_id_for("dualsync-integration")
    assert row["_createdby_value"] == row["_modifiedby_value"] == row["_ownerid_value"] == me
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", row["modifiedon"]) and row["createdon"] == row["modifiedon"]
    assert row["@odata.etag"] == f'W/"{row["versionnumber"]}"'
    assert (row["statecode"], row["statuscode"]) == (0, 1)
    assert row["creditlimit"] == 2500.5 and row["customertypecode"] == 3
    assert row["@odata.context"] == f"{BASE}{API}/$metadata#accounts/$entity"


async def test_return_representation_gives_201_and_body(dv: httpx.AsyncClient) -> None:
    r = await dv.post("contacts?$select=fullname,firstname", json={"firstname": "Joe", "lastname": "Smith"},
                      headers={"Prefer": "return=representation"})
    assert r.status_code == 201
    assert r.headers["Preference-Applied"] == "return=representation"
    body = r.json()
    assert body["fullname"] == "Joe Smith" and "lastname" not in body and "contactid" in body


async def test_modifier_is_the_calling_user(login, emu: Emulator) -> None:
    anna = await login("dv-sales-anna")
    rid = _id_from(await anna.post("accounts", json={"name": "By Anna"}), "accounts")
    ben = await login("dv-sales-ben")
    assert (await ben.patch(f"accounts({rid})", json={"name": "By Ben"})).status_code == 204
    row = (await ben.get(f"accounts({rid})")).json()
    assert row["_createdby_value"] == user_id_for("dv-sales-anna")
    assert row["_modifiedby_value"] == user_id_for("dv-sales-ben")
    assert emu.store.table("systemusers").find(user_id_for("dv-sales-ben"))["islicensed"] is True


async def test_unknown_attribute_is_rejected_with_dataverse_message(dv: httpx.AsyncClient) -> None:
    r = await dv.post("accounts", json={"name": "x", "nmae": "typo"})
    assert r.status_code == 400
    assert r.json() == {"error": {"code": "0x80060888", "message": "The property 'nmae' does not exist on type "
                                  "'Microsoft.Dynamics.CRM.account'. Make sure to only use property names that are "
                                  "defined by the type."}}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.one_of(st.text(), st.floats(allow_nan=False, allow_infinity=False), st.booleans(),
                       st.lists(st.integers(), max_size=2)))
async def test_wrong_type_for_integer_attribute_is_400(dv: httpx.AsyncClient, value: object) -> None:
    r = await dv.post("accounts", json={"name": "typed", "numberofemployees": value})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "0x80048d19" and "Edm.Int32" in r.json()["error"]["message"]


@pytest.mark.parametrize("body", [{"telephone1": 5}, {"creditonhold": "yes"}, {"creditlimit": "12"},
                                  {"birthdate": "not a date"}])
async def test_wrong_types_are_400(dv: httpx.AsyncClient, body: dict) -> None:
    entity_set = "contacts" if "birthdate" in body else "accounts"
    r = await dv.post(entity_set, json=body)
    assert r.status_code == 400 and "Cannot convert the literal" in r.json()["error"]["message"]


async def test_option_value_out_of_range_and_bad_state_pair(dv: httpx.AsyncClient) -> None:
    r = await dv.post("accounts", json={"name": "x", "customertypecode": 99})
    assert r.status_code == 400 and r.json()["error"]["code"] == "0x8004431a"
    r = await dv.post("accounts", json={"name": "x", "statecode": 1, "statuscode": 1})
    assert r.status_code == 400
    rid = _id_from(await dv.post("accounts", json={"name": "x"}), "accounts")
    assert (await dv.patch(f"accounts({rid})", json={"statecode": 1})).status_code == 204
    row = (await dv.get(f"accounts({rid})")).json()
    assert (row["statecode"], row["statuscode"]) == (1, 2)  # statecode alone takes its default status


async def test_lookup_value_cannot_be_written_directly(dv: httpx.AsyncClient) -> None:
    r = await dv.post("contacts", json={"lastname": "x",
                                        "_parentcustomerid_value": "00000000-0000-0000-0000-000000000001"})
    assert r.status_code == 400
    assert "Use Navigation properties instead" in r.json()["error"]["message"]


async def test_bind_forms_are_stored_as_lookup_values(dv: httpx.AsyncClient, emu: Emulator) -> None:
    account = next(emu.store.table("accounts").all())
    aid, number = account["accountid"], account["accountnumber"]
    forms = [f"/accounts({aid})", f"accounts({aid})", f"{BASE}{API}/accounts({aid})",
             f"/accounts(accountnumber='{number}')"]
    for form in forms:
        r = await dv.post("contacts", json={"lastname": "Bound", "parentcustomerid_account@odata.bind": form},
                          headers={"Prefer": "return=representation"})
        assert r.status_code == 201, (form, r.text)
        assert r.json()["_parentcustomerid_value"] == aid
    r = await dv.get(f"contacts?$filter=_parentcustomerid_value eq {aid} and lastname eq 'Bound'&$count=true")
    assert r.json()["@odata.count"] == len(forms)


async def test_bind_annotation_and_polymorphic_target(dv: httpx.AsyncClient, emu: Emulator) -> None:
    contact = next(emu.store.table("contacts").all())
    r = await dv.post("contacts", json={"lastname": "Child", "parentcustomerid_contact@odata.bind":
                                        f"/contacts({contact['contactid']})"})
    rid = _id_from(r, "contacts")
    row = (await dv.get(f"contacts({rid})", headers={"Prefer": 'odata.include-annotations="*"'})).json()
    assert row["_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "contact"
    plain = (await dv.get(f"contacts({rid})")).json()
    assert not any("@Microsoft" in k for k in plain)


async def test_bind_errors(dv: httpx.AsyncClient, emu: Emulator) -> None:
    missing = "/accounts(00000000-0000-0000-0000-0000000000aa)"
    r = await dv.post("contacts", json={"lastname": "x", "parentcustomerid_account@odata.bind": missing})
    assert r.status_code == 404 and r.json()["error"]["code"] == "0x80040217"
    r = await dv.post("contacts", json={"lastname": "x",
                                        "parentcustomerid_account@odata.bind": "/accounts(accountnumber='NOPE')"})
    assert r.status_code == 404
    contact = next(emu.store.table("contacts").all())
    r = await dv.post("contacts", json={"lastname": "x",
                                        "parentcustomerid_account@odata.bind": f"/contacts({contact['contactid']})"})
    assert r.status_code == 400
    r = await dv.post("contacts", json={"lastname": "x", "parentcustomerid@odata.bind": missing})
    assert r.status_code == 400 and "undeclared property" in r.json()["error"]["message"]
    assert not [c for c in emu.store.table("contacts").all() if c["lastname"] == "x"]  # nothing half-written


async def test_patch_upserts_by_id_and_by_alternate_key(dv: httpx.AsyncClient, emu: Emulator) -> None:
    new_id = "5a1e0e1c-0000-4000-8000-000000000001"
    r = await dv.patch(f"accounts({new_id})", json={"name": "Upserted"})
    assert r.status_code == 204 and _id_from(r, "accounts") == new_id
    r = await dv.patch("accounts(accountnumber='UP-1')", json={"name": "By key"},
                       headers={"Prefer": "return=representation"})
    assert r.status_code == 201 and r.json()["accountnumber"] == "UP-1"
    r = await dv.patch("accounts(accountnumber='UP-1')", json={"name": "By key 2"},
                       headers={"Prefer": "return=representation"})
    assert r.status_code == 200 and r.json()["name"] == "By key 2"
    assert len([a for a in emu.store.table("accounts").all() if a["accountnumber"] == "UP-1"]) == 1


async def test_multi_part_alternate_key(dv: httpx.AsyncClient) -> None:
    r = await dv.patch("contacts(firstname='Joe',emailaddress1='joe.o''hara@b.example')", json={"lastname": "O'Hara"},
                       headers={"Prefer": "return=representation"})
    assert r.status_code == 201
    assert r.json()["emailaddress1"] == "joe.o'hara@b.example" and r.json()["fullname"] == "Joe O'Hara"
    r = await dv.get("contacts(emailaddress1='joe.o''hara@b.example',firstname='Joe')")
    assert r.status_code == 200


async def test_undefined_key_and_bad_key_syntax_are_400(dv: httpx.AsyncClient) -> None:
    assert (await dv.get("accounts(name='Contoso')")).status_code == 400
    assert (await dv.get("accounts(notaguid)")).status_code == 400
    assert (await dv.get("accounts(nosuch='x')")).status_code == 400
    assert (await dv.get("accounts(accountnumber='NOPE')")).status_code == 404


async def test_if_match_star_updates_only(dv: httpx.AsyncClient, emu: Emulator) -> None:
    r = await dv.patch("accounts(00000000-0000-0000-0000-0000000000bb)", json={"name": "x"},
                       headers={"If-Match": "*"})
    assert r.status_code == 404
    assert emu.store.table("accounts").find("00000000-0000-0000-0000-0000000000bb") is None
    aid = next(emu.store.table("accounts").all())["accountid"]
    assert (await dv.patch(f"accounts({aid})", json={"name": "x"}, headers={"If-Match": "*"})).status_code == 204


async def test_stale_etag_is_412_and_fresh_etag_succeeds(dv: httpx.AsyncClient, emu: Emulator) -> None:
    aid = next(emu.store.table("accounts").all())["accountid"]
    etag = (await dv.get(f"accounts({aid})")).json()["@odata.etag"]
    assert (await dv.patch(f"accounts({aid})", json={"name": "first"}, headers={"If-Match": etag})).status_code == 204
    r = await dv.patch(f"accounts({aid})", json={"name": "second"}, headers={"If-Match": etag})
    assert r.status_code == 412
    assert r.json()["error"] == {"code": "0x80060882", "message": "The version of the existing record doesn't "
                                 "match the RowVersion property provided."}
    assert (await dv.delete(f"accounts({aid})", headers={"If-Match": etag})).status_code == 412
    assert emu.store.table("accounts").find(aid)["name"] == "first"


async def test_if_none_match_star_creates_only(dv: httpx.AsyncClient, emu: Emulator) -> None:
    aid = next(emu.store.table("accounts").all())["accountid"]
    r = await dv.patch(f"accounts({aid})", json={"name": "x"}, headers={"If-None-Match": "*"})
    assert r.status_code == 412
    assert r.json()["error"] == {"code": "0x80040237", "message": "A record with matching key values already exists."}
    r = await dv.patch("accounts(accountnumber='NEW-1')", json={"name": "x"}, headers={"If-None-Match": "*"})
    assert r.status_code == 204


async def test_alternate_key_values_are_unique(dv: httpx.AsyncClient, emu: Emulator) -> None:
    number = next(emu.store.table("accounts").all())["accountnumber"]
    r = await dv.post("accounts", json={"name": "dup", "accountnumber": number})
    assert r.status_code == 412 and r.json()["error"]["code"] == "0x80060892"


async def test_delete_then_gone(dv: httpx.AsyncClient, emu: Emulator) -> None:
    aid = next(emu.store.table("accounts").all())["accountid"]
    assert (await dv.delete(f"accounts({aid})")).status_code == 204
    r = await dv.get(f"accounts({aid})")
    assert r.status_code == 404
    assert r.json()["error"] == {"code": "0x80040217", "message": f"Entity 'account' With Id = {aid} Does Not Exist"}
    assert (await dv.delete(f"accounts({aid})")).status_code == 404


async def test_malformed_json_and_unknown_entity_set(dv: httpx.AsyncClient) -> None:
    r = await dv.post("accounts", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"].startswith("0x")
    r = await dv.get("widgets")
    assert r.status_code == 404 and "widgets" in r.json()["error"]["message"]
