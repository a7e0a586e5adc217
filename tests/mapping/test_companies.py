"""Company striping in the pack format: the `companies` declaration, its expansion and its problems."""

from __future__ import annotations

from typing import Any

import pytest

from shared.mapping import (
    PackError,
    Side,
    check_compatible,
    dependencies,
    effective_filter,
    map_record,
    matches,
    read_name,
    source_filter,
)

from .conftest import pack_doc

DECL = {"mapping": "companies", "erp_field": "dataAreaId", "erp_by": "LegalEntityId", "crm_field": "msdyn_company"}


def companies() -> dict[str, Any]:
    return {"name": "companies", "erp": {"entity": "LegalEntities", "key": "LegalEntityId"},
            "crm": {"entity": "cdm_companies", "key": "cdm_companyid", "natural_key": ["cdm_companycode"]},
            "direction": "to_crm", "fields": [{"erp": "LegalEntityId", "crm": "cdm_companycode"}]}


def customers(**extra: Any) -> dict[str, Any]:
    m = {"name": "customers", "company_specific": True,
         "erp": {"entity": "CustomersV3", "key": "CustomerAccount", "natural_key": ["CustomerAccount"]},
         "crm": {"entity": "accounts", "key": "accountid", "natural_key": ["accountnumber"]},
         "direction": "bidirectional",
         "fields": [{"erp": "CustomerAccount", "crm": "accountnumber", "match": {"priority": 1}},
                    {"erp": "OrganizationName", "crm": "name"}]}
    m.update(extra)
    return m


def fo_doc(*mappings: dict[str, Any], companies_decl: Any = DECL, **extra: Any) -> dict[str, Any]:
    doc = pack_doc(*mappings, **extra)
    doc["systems"] = {"erp": "finance_operations", "crm": "dataverse"}
    if companies_decl is not None:
        doc["companies"] = companies_decl
    return doc


@pytest.fixture
def load(write_pack):
    from shared.mapping import load_pack

    def make(doc: dict[str, Any]):
        return load_pack(write_pack(doc, "fo.yaml"))
    return make


def problems(load, doc: dict[str, Any]) -> list[str]:
    with pytest.raises(PackError) as info:
        load(doc)
    return [str(p) for p in info.value.problems]


def test_the_declaration_expands_into_the_company_lookup_and_per_company_natural_keys(load):
    pack = load(fo_doc(companies(), customers()))
    assert pack.companies is not None and pack.companies.erp_by == "LegalEntityId"
    m = pack.mapping("customers")
    field = m.fields[0]
    assert (field.erp, field.crm, field.not_null) == ("dataAreaId", "msdyn_company", True)
    assert field.lookup is not None and (field.lookup.mapping, field.lookup.erp_by) == ("companies", "LegalEntityId")
    assert m.erp.natural_key == ["dataAreaId", "CustomerAccount"]
    assert m.crm.natural_key == ["msdyn_company", "accountnumber"]
    assert "companies" in dependencies(m)
    assert m.company is not None and m.company.field is field and m.company.name(Side.CRM) == "msdyn_company"
    assert pack.mapping("companies").company is None
    assert read_name(m, field, Side.CRM) == "_msdyn_company_value"
    out = map_record(m, {"dataAreaId": "usmf", "CustomerAccount": "US-001", "OrganizationName": "X"}, "to_crm",
                     resolved={"msdyn_company": "c0"})
    assert out.payload["msdyn_company@odata.bind"] == "/cdm_companies(c0)"
    back = map_record(m, {"_msdyn_company_value": "c0", "accountnumber": "US-001", "name": "X"}, "to_erp",
                      resolved={"dataAreaId": "USMF"})
    assert back.payload["dataAreaId"] == "USMF"
    empty = map_record(m, {"dataAreaId": None, "CustomerAccount": "US-001"}, "to_crm")
    assert empty.errors and empty.errors[0].field == "dataAreaId ⇄ msdyn_company"


def test_only_limits_erp_reads_and_matches_case_insensitively(load):
    pack = load(fo_doc(companies(), customers(filters={"erp": "Blocked eq 'No'"}),
                       companies_decl={**DECL, "only": ["USMF", " demf "]}))
    m = pack.mapping("customers")
    assert m.company is not None and m.company.only == {"usmf", "demf"}
    erp = effective_filter(m, Side.ERP)
    assert erp == "(Blocked eq 'No') and (dataAreaId eq 'demf' or dataAreaId eq 'usmf')"
    assert source_filter(m, Side.ERP) == erp
    assert effective_filter(m, Side.CRM) is None  # the CRM side is checked per record by the sync engine
    assert matches(m, {"dataAreaId": "usmf", "Blocked": "No"}, Side.ERP)
    assert matches(m, {"dataAreaId": "DEMF", "Blocked": "No"}, Side.ERP)
    assert not matches(m, {"dataAreaId": "gbsi", "Blocked": "No"}, Side.ERP)
    assert not matches(m, {"dataAreaId": "usmf", "Blocked": "Yes"}, Side.ERP)
    assert "GBSI" in (m.company.erp_outside({"dataAreaId": "gbsi"}) or "")
    # The companies mapping itself is not striped: every legal entity couples.
    assert source_filter(pack.mapping("companies"), Side.ERP) is None


def test_without_only_every_company_syncs(load):
    m = load(fo_doc(companies(), customers())).mapping("customers")
    assert source_filter(m, Side.ERP) is None and matches(m, {"dataAreaId": "anything"}, Side.ERP)


def test_a_declaration_without_company_specific_mappings_changes_nothing(load):
    pack = load(fo_doc(companies(), customers(company_specific=False)))
    m = pack.mapping("customers")
    assert m.company is None and [f.erp for f in m.fields] == ["CustomerAccount", "OrganizationName"]
    assert m.erp.natural_key == ["CustomerAccount"]


def test_a_side_without_natural_key_gets_none(load):
    m = load(fo_doc(companies(), customers(crm={"entity": "accounts", "key": "accountid"}))).mapping("customers")
    assert m.crm.natural_key == [] and m.erp.natural_key == ["dataAreaId", "CustomerAccount"]


@pytest.mark.parametrize(("doc", "expected"), [
    (fo_doc(companies(), customers(), companies_decl={**DECL, "mapping": "legal-entities"}),
     "fo.yaml: field 'companies.mapping': refers to unknown mapping 'legal-entities'"),
    (fo_doc({**companies(), "company_specific": True}, customers()),
     "fo.yaml: mapping 'companies': field 'company_specific': the companies mapping (companies.mapping) cannot "
     "itself be company-specific"),
    (fo_doc(companies(), customers(fields=[
        {"erp": "dataAreaId", "crm": "msdyn_company", "lookup": {"mapping": "companies"}},
        {"erp": "CustomerAccount", "crm": "accountnumber"}])),
     "fo.yaml: mapping 'customers': field 'dataAreaId ⇄ msdyn_company': 'dataAreaId' is the company field"),
    (fo_doc(companies(), customers(fields=[
        {"erp": "CustomerAccount", "crm": "accountnumber"}, {"erp": "Company", "crm": "msdyn_company"}])),
     "fo.yaml: mapping 'customers': field 'Company ⇄ msdyn_company': 'msdyn_company' is the company field"),
    (fo_doc(companies(), customers(), companies_decl=None),
     "fo.yaml: mapping 'customers': field 'company_specific': a company-specific mapping needs the pack's "
     "'companies' declaration"),
    (fo_doc(companies(), customers(), companies_decl={**DECL, "only": []}),
     "fo.yaml: field 'companies.only': 'only' lists at least one company"),
    (fo_doc(companies(), customers(), companies_decl={**DECL, "only": ["USMF", "  "]}),
     "fo.yaml: field 'companies.only': 'only[1]' must be a non-empty company code"),
    (fo_doc(companies(), customers(), companies_decl={k: v for k, v in DECL.items() if k != "crm_field"}),
     "fo.yaml: field 'companies.crm_field': required key is missing"),
    (fo_doc(companies(), customers(), companies_decl={**DECL, "erp_feld": "x"}),
     "fo.yaml: field 'companies.erp_feld': unknown key"),
], ids=["unknown-mapping", "companies-striped", "explicit-erp-field", "explicit-crm-field", "no-declaration",
        "only-empty", "only-blank", "missing-key", "unknown-key"])
def test_malformed_declarations_name_file_mapping_and_field(load, doc, expected):
    found = problems(load, doc)
    assert any(p.endswith(expected) or expected in p for p in found), found
    assert all(p.split(":")[0].endswith("fo.yaml") for p in found)


def test_other_mappings_problems_are_still_reported_alongside(load):
    doc = fo_doc(companies(), customers(), {**customers(name="vendors"), "depends_on": ["ghost"]},
                 companies_decl={**DECL, "mapping": "nope"})
    found = problems(load, doc)
    assert any("unknown mapping 'nope'" in p for p in found) and any("'ghost'" in p for p in found)




def test_check_compatible_names_both_packs_mappings_and_the_table(write_pack):
    from shared.mapping import load_pack

    def pack(file: str, *mappings: dict[str, Any]):
        doc = fo_doc(*mappings, companies_decl=None)
        doc["name"] = file.removesuffix(".yaml")
        return load_pack(write_pack(doc, file))

    a = pack("a.yaml", customers(company_specific=False, direction="to_crm"))
    b = pack("b.yaml", customers(name="accounts-in", company_specific=False, direction="to_erp"))
    assert check_compatible([a, b]) == []  # a writes CRM accounts, b writes F&O customers: no shared table
    c = pack("c.yaml", customers(name="p2c-accounts", company_specific=False, direction="to_erp"),
             customers(name="p2c-contacts", company_specific=False, direction="to_erp"))
    clashes = check_compatible([b, c])
    assert [(p.file.endswith("b.yaml"), p.mapping) for p in clashes] == [(True, "accounts-in"), (True, "accounts-in")]
    assert "c.yaml" in clashes[0].message and "'p2c-accounts'" in clashes[0].message
    assert "finance_operations table 'CustomersV3'" in clashes[0].message
    assert check_compatible([c]) == []  # within one pack several mappings may write a table
    disabled = pack("d.yaml", customers(company_specific=False, direction="to_erp", enabled=False))
    assert check_compatible([b, disabled]) == []


def test_lookups_between_company_specific_mappings_carry_the_company(fo_dataverse):
    # Customer group '10' exists once per legal entity: the engine searches it within the customer's company.
    customers = fo_dataverse.mapping("customers")
    record = {"dataAreaId": "usmf", "CustomerAccount": "US-001", "OrganizationName": "X", "CustomerGroupId": "10",
              "SalesCurrencyCode": "USD"}
    requests = {r.mapping: r for r in map_record(customers, record, "to_crm").lookups}
    assert requests["customer-groups"].company == "usmf"
    assert requests["companies"].company is None and requests["currencies"].company is None  # not striped
    crm = {"_msdyn_company_value": "c0", "accountnumber": "US-001", "name": "X", "_msdyn_customergroupid_value": "g1"}
    back = {r.mapping: r for r in map_record(customers, crm, "to_erp").lookups}
    assert back["customer-groups"].company == "c0" and back["customer-groups"].by is None
