"""Table definitions (EntityDefinitions and below), `$metadata`, WhoAmI and RetrieveEntity, over HTTP, as a client
library that resolves tables through metadata uses them; and the refusals Dataverse gives."""

from __future__ import annotations

import json
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulators.common.throttle import Limits
from emulators.dataverse.core import Emulator, user_id_for
from emulators.dataverse.definitions import attribute_type, catalog, schema_name
from emulators.dataverse.metatypes import TYPES, props_of
from emulators.dataverse.relationships import relationships
from emulators.dataverse.schema import TABLE_FACTS, build_tables
from tests.emulators.dataverse.conftest import API, BASE, make_app

CRM = "Microsoft.Dynamics.CRM"
CONTEXT = f"{BASE}{API}/$metadata#"
EDM = "{http://docs.oasis-open.org/odata/ns/edm}"
TABLES = {t.logical: t for t in build_tables().values()}
ACCOUNT = "EntityDefinitions(LogicalName='account')"


def _error(r: httpx.Response, status: int, code: str, message: str | None = None) -> None:
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    if message is not None:
        assert r.json()["error"]["message"] == message


def _label(value: dict[str, Any]) -> str:
    assert value["LocalizedLabels"][0]["LanguageCode"] == 1033
    assert value["UserLocalizedLabel"]["Label"] == value["LocalizedLabels"][0]["Label"]
    return value["UserLocalizedLabel"]["Label"]


# ---------------------------------------------------------------- EntityDefinitions
async def test_resolve_entity_set_name_from_logical_name(dv: httpx.AsyncClient) -> None:
    r = await dv.get("EntityDefinitions?$select=LogicalName,EntitySetName,PrimaryIdAttribute"
                     "&$filter=LogicalName eq 'account'")
    assert r.status_code == 200 and r.headers["OData-Version"] == "4.0"
    body = r.json()
    assert body["@odata.context"] == f"{CONTEXT}EntityDefinitions(LogicalName,EntitySetName,PrimaryIdAttribute)"
    [account] = body["value"]
    assert set(account) == {"LogicalName", "EntitySetName", "PrimaryIdAttribute", "MetadataId"}
    assert account["EntitySetName"] == "accounts" and account["PrimaryIdAttribute"] == "accountid"
    uuid.UUID(account["MetadataId"])


async def test_every_served_table_is_described_and_usable_through_its_definition(dv: httpx.AsyncClient) -> None:
    r = await dv.get("EntityDefinitions?$select=LogicalName,EntitySetName,SchemaName,PrimaryIdAttribute,"
                     "PrimaryNameAttribute,ObjectTypeCode,DisplayName,DisplayCollectionName,IsCustomEntity,"
                     "IsActivity,OwnershipType,ChangeTrackingEnabled,IsManaged")
    defs = {d["LogicalName"]: d for d in r.json()["value"]}
    assert set(defs) == set(TABLES) == set(TABLE_FACTS)
    for logical, d in defs.items():
        table = TABLES[logical]
        assert (d["EntitySetName"], d["PrimaryIdAttribute"], d["PrimaryNameAttribute"]) == (
            table.entity_set, table.key, table.primary_name)
        assert _label(d["DisplayName"]) == TABLE_FACTS[logical].display
        assert _label(d["DisplayCollectionName"]) == TABLE_FACTS[logical].plural
        assert d["IsCustomEntity"] is ("_" in logical) and d["ChangeTrackingEnabled"] is True
        owner = "UserOwned" if "ownerid" in table.attrs else "OrganizationOwned"
        # (the bulk delete operation is documented OwnershipType None although it has an owner column)
        assert d["OwnershipType"] == {"systemuser": "BusinessOwned", "bulkdeleteoperation": "None"}.get(logical, owner)
        page = await dv.get(f"{d['EntitySetName']}?$select={d['PrimaryIdAttribute']}&$top=1")
        assert page.status_code == 200, logical
    codes = {logical: d["ObjectTypeCode"] for logical, d in defs.items()}
    assert {k: codes[k] for k in ("account", "contact", "opportunity", "systemuser", "transactioncurrency",
                                  "quote", "salesorder", "invoice")} == {
        "account": 1, "contact": 2, "opportunity": 3, "systemuser": 8, "transactioncurrency": 9105,
        "quote": 1084, "salesorder": 1088, "invoice": 1090}
    assert len(set(codes.values())) == len(codes)
    assert all(code >= 10000 for logical, code in codes.items() if defs[logical]["IsCustomEntity"])


async def test_metadata_ids_are_stable_across_instances(dv: httpx.AsyncClient) -> None:
    other = make_app()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(other), base_url=BASE) as anon:
            from tests.emulators.dataverse.conftest import token

            tok = await token(anon, "dualsync-integration")
            theirs = await anon.get(f"{API}/EntityDefinitions?$select=LogicalName",
                                    headers={"Authorization": f"Bearer {tok}"})
    finally:
        await other.state.emulator.webhooks.aclose()
    mine = await dv.get("EntityDefinitions?$select=LogicalName")
    assert mine.json()["value"] == theirs.json()["value"]


async def test_single_definition_by_logical_name_and_by_metadata_id(dv: httpx.AsyncClient) -> None:
    r = await dv.get(f"{ACCOUNT}?$select=DisplayName,EntitySetName,ObjectTypeCode")
    body = r.json()
    assert body["@odata.context"] == f"{CONTEXT}EntityDefinitions(DisplayName,EntitySetName,ObjectTypeCode)/$entity"
    assert _label(body["DisplayName"]) == "Account" and body["ObjectTypeCode"] == 1
    by_id = await dv.get(f"EntityDefinitions({body['MetadataId']})?$select=LogicalName")
    assert by_id.json()["LogicalName"] == "account"
    whole = (await dv.get(ACCOUNT)).json()
    assert set(whole) - {"@odata.context"} == set(props_of("EntityMetadata"))
    r = await dv.get("EntityDefinitions(LogicalName='opportunity')?$select=SchemaName,CollectionSchemaName")
    assert (r.json()["SchemaName"], r.json()["CollectionSchemaName"]) == ("Opportunity", "Opportunities")


async def test_unknown_definitions_are_404_object_does_not_exist(dv: httpx.AsyncClient) -> None:
    _error(await dv.get("EntityDefinitions(LogicalName='nosuch')"), 404, "0x80040217",
           "Could not find an entity with name nosuch and id 00000000-0000-0000-0000-000000000000.")
    missing = str(uuid.uuid4())
    _error(await dv.get(f"EntityDefinitions({missing})"), 404, "0x80040217")
    _error(await dv.get(f"{ACCOUNT}/Attributes(LogicalName='nosuch')"), 404, "0x80040217",
           "'Account' entity doesn't contain attribute with Name = 'nosuch' and NameMapping = 'Logical'.")
    _error(await dv.get(f"{ACCOUNT}/Nothing"), 404, "0x80060888", "Resource not found for the segment 'Nothing'.")
    _error(await dv.get("EntityDefinitions(Name='account')"), 400, "0x8006088a")
    # Definition sets the emulator does not serve are resources it does not have.
    for path in ("GlobalOptionSetDefinitions(Name='paymentterms')", "RelationshipDefinitions",
                 f"RelationshipDefinitions/{CRM}.OneToManyRelationshipMetadata"):
        _error(await dv.get(path), 404, "0x80060888")


@pytest.mark.parametrize("query", ["$filter=IsCustomEntity eq true",
                                   "$filter=IsCustomEntity eq false and OwnershipType eq "
                                   f"{CRM}.OwnershipTypes'UserOwned'",
                                   "$filter=EntitySetName eq 'contacts' or LogicalName eq 'uom'",
                                   "$filter=CanCreateAttributes/Value eq true and ObjectTypeCode lt 1000",
                                   "$filter=not (IsStateModelAware eq true)",
                                   "$filter=IsCustomEntity or LogicalName eq 'account'"])
async def test_filters(dv: httpx.AsyncClient, emu: Emulator, query: str) -> None:
    from shared.odata import evaluate_filter

    r = await dv.get(f"EntityDefinitions?$select=LogicalName&{query}")
    assert r.status_code == 200, r.text
    text = query.split("=", 1)[1].replace(f"{CRM}.OwnershipTypes'UserOwned'", "'UserOwned'")
    expected = {e.props["LogicalName"] for e in catalog(emu.settings).entities
                if evaluate_filter(text, e.props, case_insensitive=True)}
    assert {d["LogicalName"] for d in r.json()["value"]} == expected and expected


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(st.sampled_from(sorted(TABLES)), min_size=1, max_size=6, unique=True),
       by_set=st.booleans())
async def test_or_of_names_returns_exactly_those(dv: httpx.AsyncClient, names: list[str], by_set: bool) -> None:
    prop = "EntitySetName" if by_set else "LogicalName"
    values = [TABLES[n].entity_set if by_set else n for n in names]
    r = await dv.get("EntityDefinitions?$select=LogicalName&$filter="
                     + " or ".join(f"{prop} eq '{v.upper()}'" for v in values))  # metadata compares ignoring case
    assert sorted(d["LogicalName"] for d in r.json()["value"]) == sorted(names)


@pytest.mark.parametrize("settings_overrides", [{"untracked_tables": ["contacts", "products"]}])
async def test_change_tracking_follows_the_settings(dv: httpx.AsyncClient) -> None:
    r = await dv.get("EntityDefinitions?$select=LogicalName&$filter=ChangeTrackingEnabled eq false")
    assert {d["LogicalName"] for d in r.json()["value"]} == {"contact", "product"}


@pytest.mark.parametrize(("query", "status", "code", "message"), [
    ("$top=1", 400, "0x80060888", "The query parameter $top is not supported"),
    ("$orderby=LogicalName", 400, "0x80060888", "The query parameter $orderby is not supported"),
    ("$skip=1", 400, "0x80060888", "The query parameter $skip is not supported"),
    ("$count=true", 400, "0x80060888", "The query parameter $count is not supported"),
    ("$filter=startswith(LogicalName,'acc')", 400, "0x8006088a",
     'The "startswith" function isn\'t supported for Metadata Entities.'),
    ("$filter=OwnershipType eq 'UserOwned'", 400, "0x80060888",
     "A binary operator with incompatible types was detected. Found operand types "
     f"'{CRM}.OwnershipTypes' and 'Edm.String' for operator kind 'Equal'."),
    (f"$filter=OwnershipType eq {CRM}.OwnershipTypes'Nobody'", 400, "0x8006088a", None),
    ("$filter=DisplayName/UserLocalizedLabel eq 'Account'", 400, "0x80060888", None),
    ("$filter=NoSuch eq 1", 400, "0x80060888",
     f"Could not find a property named 'NoSuch' on type '{CRM}.EntityMetadata'."),
    ("$select=LogicalName,NoSuch", 400, "0x80060888", None),
    ("$expand=NoSuch", 400, "0x80060888", None),
    ("$expand=Attributes($top=2)", 400, "0x80060888", "The query parameter $top is not supported"),
    ("$expand=Attributes($expand=OptionSet)", 400, "0x80060888",
     f"Could not find a property named 'OptionSet' on type '{CRM}.AttributeMetadata'."),
    ("$filter=LogicalName eq", 400, "0x8006088a", None),
    ("$filter=LogicalName", 400, "0x8006088a", "The $filter expression must evaluate to a single boolean value."),
    ("$filter=ObjectTypeCode add 1", 400, "0x8006088a", None),
])
async def test_what_metadata_queries_refuse(dv: httpx.AsyncClient, query: str, status: int, code: str,
                                            message: str | None) -> None:
    _error(await dv.get(f"EntityDefinitions?{query}"), status, code, message)


async def test_paging_options_are_refused_below_definitions_too(dv: httpx.AsyncClient) -> None:
    for path in (f"{ACCOUNT}/Attributes?$top=5", f"{ACCOUNT}/Keys?$orderby=LogicalName",
                 f"{ACCOUNT}?$select=LogicalName&$filter=LogicalName eq 'account'", "WhoAmI?$top=1",
                 "$metadata?$top=1"):
        assert (await dv.get(path)).status_code == 400, path


async def test_writes_to_definitions_are_refused(dv: httpx.AsyncClient) -> None:
    _error(await dv.post("EntityDefinitions", json={"SchemaName": "new_thing"}), 405, "0x80060888")
    _error(await dv.delete(ACCOUNT), 405, "0x80060888")


async def test_expand_attributes_on_definitions(dv: httpx.AsyncClient) -> None:
    r = await dv.get(f"{ACCOUNT}?$select=LogicalName&$expand=Attributes($select=LogicalName;"
                     f"$filter=AttributeType eq {CRM}.AttributeTypeCode'Picklist')")
    body = r.json()
    assert body["@odata.context"] == f"{CONTEXT}EntityDefinitions(LogicalName,Attributes(LogicalName))/$entity"
    picklists = {a.name for a in TABLES["account"].attrs.values() if a.type == "option"} - {"statecode",
                                                                                             "statuscode"}
    assert {a["LogicalName"] for a in body["Attributes"]} == picklists
    assert {a["@odata.type"] for a in body["Attributes"]} == {f"#{CRM}.PicklistAttributeMetadata"}
    r = await dv.get("EntityDefinitions?$select=LogicalName"
                     "&$filter=LogicalName eq 'uom' or LogicalName eq 'uomschedule'"
                     "&$expand=Attributes($select=LogicalName),Keys($select=KeyAttributes)")
    for d in r.json()["value"]:
        assert {a["LogicalName"] for a in d["Attributes"]} == set(TABLES[d["LogicalName"]].attrs)
        assert [k["KeyAttributes"] for k in d["Keys"]] == [["name"]]


# ---------------------------------------------------------------- attributes
async def test_attributes_describe_every_column_with_its_type(dv: httpx.AsyncClient) -> None:
    for logical, table in TABLES.items():
        r = await dv.get(f"EntityDefinitions(LogicalName='{logical}')/Attributes?$select=LogicalName,SchemaName,"
                         "AttributeType,AttributeTypeName,IsPrimaryId,IsPrimaryName,IsValidForCreate,"
                         "IsValidForUpdate,IsValidForRead,RequiredLevel")
        attrs = {a["LogicalName"]: a for a in r.json()["value"]}
        assert set(attrs) == set(table.attrs), logical
        for name, a in attrs.items():
            code, meta_type = attribute_type(table, table.attrs[name])
            assert (a["AttributeType"], a["@odata.type"]) == (code, f"#{CRM}.{meta_type}")
            assert a["AttributeTypeName"] == {"Value": f"{code}Type"} and a["IsValidForRead"] is True
            assert a["IsPrimaryId"] is (name == table.key) and a["IsPrimaryName"] is (name == table.primary_name)
            if table.attrs[name].read_only:
                assert a["IsValidForCreate"] is a["IsValidForUpdate"] is False
            assert a["SchemaName"] == schema_name(name)
        assert attrs[table.key]["RequiredLevel"]["Value"] == "SystemRequired"


@pytest.mark.parametrize(("table", "column", "code", "meta"), [
    ("account", "accountid", "Uniqueidentifier", "UniqueIdentifierAttributeMetadata"),
    ("account", "name", "String", "StringAttributeMetadata"),
    ("account", "numberofemployees", "Integer", "IntegerAttributeMetadata"),
    ("account", "versionnumber", "BigInt", "BigIntAttributeMetadata"),
    ("transactioncurrency", "exchangerate", "Decimal", "DecimalAttributeMetadata"),
    ("account", "creditlimit", "Money", "MoneyAttributeMetadata"),
    ("account", "creditonhold", "Boolean", "BooleanAttributeMetadata"),
    ("account", "createdon", "DateTime", "DateTimeAttributeMetadata"),
    ("account", "customertypecode", "Picklist", "PicklistAttributeMetadata"),
    ("account", "statecode", "State", "StateAttributeMetadata"),
    ("account", "statuscode", "Status", "StatusAttributeMetadata"),
    ("account", "transactioncurrencyid", "Lookup", "LookupAttributeMetadata"),
    ("contact", "parentcustomerid", "Customer", "LookupAttributeMetadata"),
    ("account", "ownerid", "Owner", "LookupAttributeMetadata"),
])
async def test_attribute_types_and_casts(dv: httpx.AsyncClient, table: str, column: str, code: str,
                                         meta: str) -> None:
    one = f"EntityDefinitions(LogicalName='{table}')/Attributes(LogicalName='{column}')"
    r = await dv.get(f"{one}?$select=LogicalName,AttributeType")
    body = r.json()
    assert body["@odata.type"] == f"#{CRM}.{meta}" and body["AttributeType"] == code
    assert body["@odata.context"].endswith("/Attributes(LogicalName,AttributeType)/$entity")
    cast = await dv.get(f"{one}/{CRM}.{meta}")
    assert cast.status_code == 200 and "@odata.type" not in cast.json()  # the declared type now
    assert set(cast.json()) - {"@odata.context"} == set(props_of(meta))
    other = "StringAttributeMetadata" if meta != "StringAttributeMetadata" else "MoneyAttributeMetadata"
    _error(await dv.get(f"{one}/{CRM}.{other}"), 404, "0x80060888")
    collection = f"EntityDefinitions(LogicalName='{table}')/Attributes"
    keyed = await dv.get(f"{collection}/{CRM}.{meta}(LogicalName='{column}')?$select=LogicalName")
    assert keyed.json()["LogicalName"] == column and "@odata.type" not in keyed.json()
    _error(await dv.get(f"{collection}/{CRM}.{other}(LogicalName='{column}')"), 404, "0x80040217",
           f"'{TABLE_FACTS[table].schema_name}' entity doesn't contain attribute with Name = '{column}' and "
           "NameMapping = 'Logical'.")
    listed = await dv.get(f"EntityDefinitions(LogicalName='{table}')/Attributes/{CRM}.{meta}?$select=LogicalName")
    assert column in {a["LogicalName"] for a in listed.json()["value"]}
    expected = {a.name for a in TABLES[table].attrs.values() if attribute_type(TABLES[table], a)[1] == meta}
    assert {a["LogicalName"] for a in listed.json()["value"]} == expected


async def test_casts_that_name_no_attribute_type(dv: httpx.AsyncClient) -> None:
    for cast in ("EnumAttributeMetadata", "AttributeMetadata2", "EntityMetadata", "Label"):
        _error(await dv.get(f"{ACCOUNT}/Attributes/{CRM}.{cast}"), 404, "0x80060888")
    empty = await dv.get(f"{ACCOUNT}/Attributes/{CRM}.MemoAttributeMetadata?$select=LogicalName")
    assert empty.status_code == 200 and empty.json()["value"] == []


async def test_attribute_filters(dv: httpx.AsyncClient) -> None:
    base = f"{ACCOUNT}/Attributes?$select=LogicalName&$filter="
    r = await dv.get(base + "IsValidForCreate eq false")
    readonly = {a.name for a in TABLES["account"].attrs.values() if a.read_only} | {"statecode"}
    assert {a["LogicalName"] for a in r.json()["value"]} == readonly
    r = await dv.get(base + f"RequiredLevel/Value eq {CRM}.AttributeRequiredLevel'ApplicationRequired'")
    assert [a["LogicalName"] for a in r.json()["value"]] == ["name"]
    r = await dv.get(base + "AttributeTypeName/Value eq 'LookupType' and IsCustomAttribute eq true")
    assert {a["LogicalName"] for a in r.json()["value"]} == {"msdyn_company", "msdyn_customergroupid",
                                                             "msdyn_paymentterm"}
    r = await dv.get(f"{ACCOUNT}/Attributes/{CRM}.LookupAttributeMetadata?$select=LogicalName,Targets"
                     "&$filter=LogicalName eq 'primarycontactid'")
    assert r.json()["value"][0]["Targets"] == ["contact"]
    _error(await dv.get(f"{ACCOUNT}/Attributes?$select=Targets"), 400, "0x80060888",
           f"Could not find a property named 'Targets' on type '{CRM}.AttributeMetadata'.")


async def test_picklist_option_sets_carry_the_schema_labels(dv: httpx.AsyncClient) -> None:
    r = await dv.get(f"{ACCOUNT}/Attributes/{CRM}.PicklistAttributeMetadata?$select=LogicalName"
                     "&$expand=OptionSet($select=Options)")
    body = r.json()
    assert body["@odata.context"].endswith(f"/Attributes/{CRM}.PicklistAttributeMetadata"
                                           "(LogicalName,OptionSet(Options))")
    sets = {a["LogicalName"]: a["OptionSet"]["Options"] for a in body["value"]}
    for name, options in sets.items():
        attr = TABLES["account"].attrs[name]
        assert [o["Value"] for o in options] == list(attr.options)
        assert [_label(o["Label"]) for o in options] == [attr.label(v) for v in attr.options]
    assert _label(next(o for o in sets["customertypecode"] if o["Value"] == 3)["Label"]) == "Customer"


async def test_state_and_status_options(dv: httpx.AsyncClient) -> None:
    table = TABLES["opportunity"]
    one = "EntityDefinitions(LogicalName='opportunity')/Attributes"
    r = await dv.get(f"{one}(LogicalName='statuscode')/{CRM}.StatusAttributeMetadata?$select=LogicalName"
                     "&$expand=OptionSet")
    options = r.json()["OptionSet"]["Options"]
    assert {o["Value"]: o["State"] for o in options} == {s: st for st, ss in table.states.items() for s in ss}
    assert {o["@odata.type"] for o in options} == {f"#{CRM}.StatusOptionMetadata"}
    assert r.json()["OptionSet"]["OptionSetType"] == "Status" and r.json()["OptionSet"]["IsGlobal"] is False
    r = await dv.get(f"{one}(LogicalName='statecode')/{CRM}.StateAttributeMetadata/OptionSet?$select=Options")
    body = r.json()
    assert body["@odata.context"].endswith(f"/{CRM}.StateAttributeMetadata/OptionSet(Options)/$entity")
    assert {o["Value"]: o["DefaultStatus"] for o in body["Options"]} == {s: ss[0] for s, ss in table.states.items()}
    assert [_label(o["Label"]) for o in body["Options"]] == ["Open", "Won", "Lost"]


async def test_global_option_set_of_a_local_choice_is_null(dv: httpx.AsyncClient) -> None:
    one = f"{ACCOUNT}/Attributes(LogicalName='customertypecode')/{CRM}.PicklistAttributeMetadata"
    r = await dv.get(f"{one}?$select=LogicalName&$expand=GlobalOptionSet")
    assert r.json()["GlobalOptionSet"] is None
    assert (await dv.get(f"{one}/GlobalOptionSet")).status_code == 204


async def test_boolean_option_set(dv: httpx.AsyncClient) -> None:
    r = await dv.get(f"{ACCOUNT}/Attributes(LogicalName='creditonhold')/{CRM}.BooleanAttributeMetadata"
                     "?$select=LogicalName&$expand=OptionSet")
    option_set = r.json()["OptionSet"]
    assert (option_set["TrueOption"]["Value"], option_set["FalseOption"]["Value"]) == (1, 0)


async def test_label_languages(dv: httpx.AsyncClient) -> None:
    r = await dv.get(f"{ACCOUNT}?$select=DisplayName&LabelLanguages=1031")
    assert r.json()["DisplayName"]["LocalizedLabels"] == []
    r = await dv.get(f"{ACCOUNT}?$select=DisplayName&LabelLanguages=1031,1033")
    assert _label(r.json()["DisplayName"]) == "Account"
    assert (await dv.get(f"{ACCOUNT}?LabelLanguages=abc")).status_code == 400


# ---------------------------------------------------------------- keys and relationships
async def test_keys_come_from_the_settings(dv: httpx.AsyncClient, emu: Emulator) -> None:
    r = await dv.get(f"{ACCOUNT}/Keys?$select=LogicalName,SchemaName,KeyAttributes,EntityKeyIndexStatus")
    keys = r.json()["value"]
    assert [k["KeyAttributes"] for k in keys] == emu.settings.alternate_keys["accounts"]
    assert {k["EntityKeyIndexStatus"] for k in keys} == {"Active"}
    one = await dv.get(f"{ACCOUNT}/Keys(LogicalName='{keys[0]['LogicalName']}')")
    assert one.json()["KeyAttributes"] == keys[0]["KeyAttributes"] and one.json()["EntityLogicalName"] == "account"
    none = await dv.get("EntityDefinitions(LogicalName='opportunity')/Keys")
    assert none.json()["value"] == []


@pytest.mark.parametrize("settings_overrides", [{"alternate_keys": {"opportunities": [["name"]]}}])
async def test_keys_follow_changed_settings(dv: httpx.AsyncClient) -> None:
    r = await dv.get("EntityDefinitions(LogicalName='opportunity')/Keys?$select=KeyAttributes")
    assert [k["KeyAttributes"] for k in r.json()["value"]] == [["name"]]
    assert (await dv.get(f"{ACCOUNT}/Keys")).json()["value"] == []


async def test_relationships_both_ways(dv: httpx.AsyncClient) -> None:
    fields = ("SchemaName,ReferencedEntity,ReferencedAttribute,ReferencingEntity,ReferencingAttribute,"
              "ReferencedEntityNavigationPropertyName,ReferencingEntityNavigationPropertyName")
    seen: dict[str, list[dict[str, Any]]] = {}
    for logical in TABLES:
        for nav in ("ManyToOneRelationships", "OneToManyRelationships"):
            r = await dv.get(f"EntityDefinitions(LogicalName='{logical}')/{nav}?$select={fields}")
            for rel in r.json()["value"]:
                assert rel[{"ManyToOneRelationships": "ReferencingEntity"}.get(nav, "ReferencedEntity")] == logical
                seen.setdefault(rel["SchemaName"], []).append(rel)
    for r in relationships():
        both = seen[r.schema_name]
        assert len(both) == 2 and both[0] == both[1]
        assert both[0]["ReferencingEntityNavigationPropertyName"] == r.referencing_nav
        assert both[0]["ReferencedEntityNavigationPropertyName"] == r.referenced_nav
        assert both[0]["ReferencedAttribute"] == TABLES[r.referenced].key
    assert len(seen) == len(relationships())
    r = await dv.get("EntityDefinitions(LogicalName='contact')/ManyToOneRelationships"
                     "(SchemaName='contact_customer_accounts')?$select=ReferencingAttribute")
    assert r.json()["ReferencingAttribute"] == "parentcustomerid"
    assert (await dv.get("EntityDefinitions(LogicalName='contact')/ManyToManyRelationships")).json()["value"] == []


# ---------------------------------------------------------------- $metadata
def _csdl(body: bytes) -> tuple[ET.Element, dict[str, ET.Element]]:
    root = ET.fromstring(body)
    [schema] = root.iter(f"{EDM}Schema")
    types = {e.get("Name", ""): e for e in schema if e.tag in (f"{EDM}EntityType", f"{EDM}ComplexType")}
    return schema, types


def _declared(types: dict[str, ET.Element], name: str, tag: str) -> dict[str, ET.Element]:
    """Properties (or navigation properties) of an entity type and its base types."""
    out: dict[str, ET.Element] = {}
    while name:
        etype = types[name]
        out.update({p.get("Name", ""): p for p in etype.findall(f"{EDM}{tag}")})
        name = (etype.get("BaseType") or "").removeprefix("mscrm.")
    return out


async def test_csdl_declares_what_the_api_serves(dv: httpx.AsyncClient, emu: Emulator) -> None:
    r = await dv.get("$metadata")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/xml")
    schema, types = _csdl(r.content)
    assert (schema.get("Namespace"), schema.get("Alias")) == (CRM, "mscrm")
    assert types["crmbaseentity"].get("Abstract") == "true"
    [container] = schema.iter(f"{EDM}EntityContainer")
    assert container.get("Name") == "System"
    sets = {s.get("Name"): s for s in container.findall(f"{EDM}EntitySet")}
    service = (await dv.get("")).json()
    assert {v["name"] for v in service["value"]} == set(sets)
    for table in TABLES.values():
        eset = sets[table.entity_set]
        name = eset.get("EntityType", "").removeprefix("mscrm.")
        props = _declared(types, name, "Property")
        row = (await dv.get(f"{table.entity_set}?$top=1")).json()["value"]
        returned = {k for k in (row[0] if row else {}) if "@" not in k} or table.fields
        assert returned <= set(props), (table.logical, returned - set(props))
        keys = [k for t in (name, "principal") for k in types[t].iter(f"{EDM}PropertyRef")]
        assert keys[0].get("Name") == (table.key if name != "systemuser" else "ownerid")
        navs = _declared(types, name, "NavigationProperty")
        bindings = {b.get("Path"): b.get("Target") for b in eset.findall(f"{EDM}NavigationPropertyBinding")}
        for rel in relationships():
            if rel.referencing == table.logical:
                nav = navs[rel.referencing_nav]
                assert (nav.get("Type"), nav.get("Partner")) == (f"mscrm.{rel.referenced}", rel.referenced_nav)
                [constraint] = nav.findall(f"{EDM}ReferentialConstraint")
                assert constraint.get("Property") == f"_{rel.attribute}_value"
                assert constraint.get("Property") in props
                assert constraint.get("ReferencedProperty") == TABLES[rel.referenced].key
                assert bindings[rel.referencing_nav] == TABLES[rel.referenced].entity_set
            if rel.referenced == table.logical:
                nav = navs[rel.referenced_nav]
                assert (nav.get("Type"), nav.get("Partner")) == (f"Collection(mscrm.{rel.referencing})",
                                                                 rel.referencing_nav)
                assert bindings[rel.referenced_nav] == TABLES[rel.referencing].entity_set


async def test_csdl_declares_metadata_types_operations_and_keys(dv: httpx.AsyncClient, emu: Emulator) -> None:
    schema, types = _csdl((await dv.get("$metadata")).content)
    whole = (await dv.get(ACCOUNT)).json()
    assert set(whole) - {"@odata.context"} <= set(_declared(types, "EntityMetadata", "Property"))
    assert {"Attributes", "Keys", "ManyToOneRelationships", "OneToManyRelationships"} <= set(
        _declared(types, "EntityMetadata", "NavigationProperty"))
    for name in TYPES:
        assert name in types, name
    functions = {f.get("Name"): f for f in schema.findall(f"{EDM}Function")}
    assert [p.get("Name") for p in functions["RetrieveEntity"].findall(f"{EDM}Parameter")] == [
        "EntityFilters", "LogicalName", "MetadataId", "RetrieveAsIfPublished"]
    assert functions["WhoAmI"].find(f"{EDM}ReturnType").get("Type") == "mscrm.WhoAmIResponse"  # type: ignore[union-attr]
    assert set(_declared(types, "WhoAmIResponse", "Property")) == {"BusinessUnitId", "UserId", "OrganizationId"}
    actions = {a.get("Name"): a for a in schema.findall(f"{EDM}Action")}
    from emulators.dataverse.csdl import bulk_actions

    assert set(actions) == {*bulk_actions(), "BulkDelete"}  # BulkDelete: test_bulk_delete.py
    for action in (actions[name] for name in bulk_actions()):
        assert action.get("IsBound") == "true"
        assert action.findall(f"{EDM}Parameter")[0].get("Type") == "Collection(mscrm.crmbaseentity)"
    enums = {e.get("Name"): e for e in schema.findall(f"{EDM}EnumType")}
    assert enums["EntityFilters"].get("IsFlags") == "true"
    account_keys = [[p.get("String") for p in rec.iter(f"{EDM}PropertyValue") if p.get("Property") == "Alias"]
                    for rec in types["account"].iter(f"{EDM}Record")
                    if rec.get("Type") == "OData.Community.Keys.V1.AlternateKey"]
    assert account_keys == [["accountnumber"], ["_msdyn_company_value", "accountnumber"]]


async def test_csdl_annotations_mark_read_only_properties(dv: httpx.AsyncClient) -> None:
    plain = (await dv.get("$metadata")).content
    assert b"Org.OData.Core.V1.Computed" not in plain
    _, types = _csdl((await dv.get("$metadata?annotations=true")).content)
    createdon = _declared(types, "account", "Property")["createdon"]
    assert {a.get("Term") for a in createdon} == {"Org.OData.Core.V1.Computed", "Org.OData.Core.V1.Permissions"}
    assert not list(_declared(types, "account", "Property")["name"])


# ---------------------------------------------------------------- functions
async def test_who_am_i_names_the_caller(login: Callable[..., Any], emu: Emulator) -> None:
    anna = await login("dv-sales-anna")
    for path in ("WhoAmI", "WhoAmI()"):
        body = (await anna.get(path)).json()
        assert body["@odata.context"] == f"{CONTEXT}{CRM}.WhoAmIResponse"
        assert body["UserId"] == user_id_for("dv-sales-anna")
        assert body["OrganizationId"] == emu.settings.organization_id
        uuid.UUID(body["BusinessUnitId"])
        assert emu.store.table("systemusers").get(body["UserId"]) is not None
    _error(await anna.get("WhoAmI(x=1)"), 404, "0x80060888")
    _error(await anna.post("WhoAmI"), 405, "0x80060888")


RETRIEVE = "RetrieveEntity(EntityFilters=@p1,LogicalName=@p2,MetadataId=@p3,RetrieveAsIfPublished=@p4)"


@pytest.mark.parametrize(("filters", "present", "absent"), [
    ("Entity", {"Keys"}, {"Attributes", "ManyToOneRelationships", "Privileges"}),
    ("Attributes", {"Attributes"}, {"OneToManyRelationships"}),
    ("Relationships", {"ManyToOneRelationships", "OneToManyRelationships", "ManyToManyRelationships"},
     {"Attributes"}),
    ("Attributes,Relationships", {"Attributes", "OneToManyRelationships"}, {"Privileges"}),
    ("All", {"Attributes", "OneToManyRelationships", "Privileges"}, set()),
])
async def test_retrieve_entity(dv: httpx.AsyncClient, filters: str, present: set[str], absent: set[str]) -> None:
    r = await dv.get(f"{RETRIEVE}?@p1={CRM}.EntityFilters'{filters}'&@p2='account'"
                     "&@p3=00000000-0000-0000-0000-000000000000&@p4=false")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["@odata.context"] == f"{CONTEXT}{CRM}.RetrieveEntityResponse"
    meta = body["EntityMetadata"]
    assert meta["LogicalName"] == "account" and meta["EntitySetName"] == "accounts"
    assert present <= set(meta) and not absent & set(meta)
    if "Attributes" in meta:
        picklist = next(a for a in meta["Attributes"] if a["LogicalName"] == "customertypecode")
        assert picklist["@odata.type"] == f"#{CRM}.PicklistAttributeMetadata"
        assert len(picklist["OptionSet"]["Options"]) == len(TABLES["account"].attrs["customertypecode"].options)


async def test_retrieve_entity_by_metadata_id_inline_and_refusals(dv: httpx.AsyncClient, emu: Emulator) -> None:
    mid = catalog(emu.settings).by_logical["uom"].props["MetadataId"]
    r = await dv.get(f"RetrieveEntity(EntityFilters={CRM}.EntityFilters'Entity',LogicalName=null,MetadataId={mid},"
                     "RetrieveAsIfPublished=true)")
    assert r.json()["EntityMetadata"]["LogicalName"] == "uom"
    ok = "@p3=00000000-0000-0000-0000-000000000000&@p4=false"
    _error(await dv.get(f"{RETRIEVE}?@p1={CRM}.EntityFilters'Entity'&@p2='nosuch'&{ok}"), 404, "0x80040217",
           "Could not find an entity with name nosuch and id 00000000-0000-0000-0000-000000000000.")
    _error(await dv.get(f"{RETRIEVE}?@p1={CRM}.EntityFilters'Everything'&@p2='account'&{ok}"), 400, "0x8006088a")
    _error(await dv.get("RetrieveEntity(EntityFilters=@p1,LogicalName=@p2)?@p2='account'"), 404, "0x80060888")


# ---------------------------------------------------------------- like any Web API call
async def test_metadata_needs_a_token(anon: httpx.AsyncClient) -> None:
    for path in ("EntityDefinitions", "$metadata", "WhoAmI"):
        assert (await anon.get(f"{API}/{path}")).status_code == 401


@pytest.mark.parametrize("settings_overrides", [{"limits": Limits(window_requests=3, window_seconds=300)}])
async def test_metadata_counts_against_service_protection(dv: httpx.AsyncClient) -> None:
    for path in ("EntityDefinitions?$select=LogicalName", "$metadata", "WhoAmI"):
        assert (await dv.get(path)).status_code == 200
    r = await dv.get(ACCOUNT)
    assert r.status_code == 429 and r.json()["error"]["code"] == "0x80072322" and r.headers["Retry-After"]


def test_every_definition_has_every_property_of_its_type(emu: Emulator) -> None:
    """What a query may name (TYPES) is what each definition holds, so `$select` never returns a hole."""
    cat = catalog(emu.settings)
    nodes = [*cat.entities]
    for e in cat.entities:
        for members in e.navs.values():
            nodes += members
            nodes += [n for m in members for n in m.navs.values() if n is not None]
    for node in nodes:
        assert set(node.props) == set(props_of(node.type)), node.type


async def test_metadata_reads_inside_a_batch(dv: httpx.AsyncClient) -> None:
    from tests.emulators.dataverse.test_batch import batch, op, parse_response

    body, headers = batch([op("GET", f"{BASE}{API}/EntityDefinitions?$select=EntitySetName"
                                     "&$filter=LogicalName%20eq%20'contact'"),
                           op("GET", f"{BASE}{API}/WhoAmI"), op("GET", f"{BASE}{API}/EntityDefinitions?$top=1")])
    r = await dv.post("$batch", content=body, headers={**headers, "Prefer": "odata.continue-on-error"})
    [(s1, _, b1), (s2, _, b2), (s3, _, b3)] = parse_response(r)
    assert (s1, s2, s3) == (200, 200, 400)
    assert json.loads(b1)["value"][0]["EntitySetName"] == "contacts"
    assert json.loads(b2)["UserId"] == user_id_for("dualsync-integration")
    assert json.loads(b3)["error"]["code"] == "0x80060888"
