"""Dual-write's tables and alternate keys that include a lookup column (the company): key URLs, `@odata.bind`,
upsert and uniqueness, with the lookup named `_<name>_value` and a bare GUID as the service demands."""

from __future__ import annotations

from pathlib import Path

import httpx
import yaml

from emulators.dataverse.core import Emulator
from emulators.dataverse.schema import build_tables

ROOT = Path(__file__).resolve().parents[3]


async def _company(dv: httpx.AsyncClient, code: str) -> str:
    r = await dv.post("cdm_companies", json={"cdm_companycode": code, "cdm_name": f"Contoso {code}"},
                      headers={"Prefer": "return=representation"})
    assert r.status_code == 201, r.text
    return r.json()["cdm_companyid"]


async def test_dual_write_tables_start_empty(emu: Emulator) -> None:
    for name in ("cdm_companies", "msdyn_customergroups", "msdyn_vendors", "msdyn_paymentterms"):
        assert len(emu.store.table(name)) == 0


async def test_a_key_with_the_company_lookup_identifies_one_record_per_company(dv: httpx.AsyncClient,
                                                                               emu: Emulator) -> None:
    usmf, demf = await _company(dv, "USMF"), await _company(dv, "DEMF")
    for company in (usmf, demf):  # upsert by key: the same group id in two companies is two records
        r = await dv.patch(f"msdyn_customergroups(_msdyn_company_value={company},msdyn_groupid='10')",
                           json={"msdyn_description": f"Wholesale {company[:4]}"},
                           headers={"If-None-Match": "*", "Prefer": "return=representation"})
        assert r.status_code == 201, r.text
        assert r.json()["_msdyn_company_value"] == company
        stored = emu.store.table("msdyn_customergroups").get(r.json()["msdyn_customergroupid"])
        assert stored["_msdyn_company_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "cdm_company"
    assert len(emu.store.table("msdyn_customergroups")) == 2
    r = await dv.get(f"msdyn_customergroups(_msdyn_company_value={demf},msdyn_groupid='10')")
    assert r.status_code == 200 and r.json()["_msdyn_company_value"] == demf
    # A create-only upsert of an existing key is refused; a plain create with a taken key too.
    again = await dv.patch(f"msdyn_customergroups(_msdyn_company_value={usmf},msdyn_groupid='10')",
                           json={"msdyn_description": "x"}, headers={"If-None-Match": "*"})
    assert again.status_code == 412
    dup = await dv.post("msdyn_customergroups", json={"msdyn_groupid": "10",
                                                      "msdyn_company@odata.bind": f"/cdm_companies({usmf})"})
    assert dup.status_code == 412 and "0x80060892" in dup.text
    # `@odata.bind` by that key, from an account.
    r = await dv.post("accounts", json={
        "name": "Bound", "msdyn_company@odata.bind": "/cdm_companies(cdm_companycode='DEMF')",
        "msdyn_customergroupid@odata.bind": f"/msdyn_customergroups(_msdyn_company_value={demf},msdyn_groupid='10')"},
        headers={"Prefer": "return=representation"})
    assert r.status_code == 201, r.text
    group = r.json()["_msdyn_customergroupid_value"]
    assert emu.store.table("msdyn_customergroups").get(group)["_msdyn_company_value"] == demf


async def test_a_lookup_key_part_must_be_named_as_its_lookup_property(dv: httpx.AsyncClient) -> None:
    company = await _company(dv, "USMF")
    assert (await dv.get(f"msdyn_customergroups(msdyn_company={company},msdyn_groupid='10')")).status_code == 400
    assert (await dv.get("msdyn_customergroups(_msdyn_company_value='nope',msdyn_groupid='10')")).status_code == 400
    assert (await dv.get(f"msdyn_customergroups(_msdyn_company_value={company})")).status_code == 400  # no such key
    r = await dv.get(f"msdyn_customergroups?$filter=_msdyn_company_value eq {company} and msdyn_groupid eq '10'")
    assert r.status_code == 200 and r.json()["value"] == []


def test_every_crm_field_the_fo_packs_name_exists() -> None:
    tables = build_tables()
    for pack in ("fo-dataverse.yaml", "prospect-to-cash.yaml"):
        doc = yaml.safe_load((ROOT / "templates" / pack).read_text(encoding="utf-8"))
        for m in doc["mappings"]:
            table = tables[m["crm"]["entity"]]
            names = {f["crm"] for f in m["fields"] if f.get("crm")} | set(m["crm"].get("natural_key", []))
            names |= set(m.get("on_create", {}).get("crm", {}))
            if m.get("company_specific"):
                names.add(doc["companies"]["crm_field"])
            missing = {n for n in names if n not in table.attrs}
            assert not missing, f"{pack} {m['name']}: {table.entity_set} lacks {sorted(missing)}"
        assert tables["accounts"].attrs["msdyn_company"].targets == ("cdm_company",)
        assert tables["accounts"].attrs["msdyn_creditlimitismandatory"].type == "bool"
        assert tables["contacts"].attrs["msdyn_isactivecustomer"].type == "bool"
