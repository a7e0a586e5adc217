"""Malformed packs: every problem is reported, each naming the pack file, the mapping and the field."""

from __future__ import annotations

import pytest

from shared.mapping import PackError, load_pack

from .conftest import pack_doc, table

F = {"erp": "displayName", "crm": "name"}

# (pack document, mapping named, field named, words the message must contain)
MALFORMED = [
    pytest.param("""name: t
version: "1"
systems: {erp: business_central, crm: dataverse}
mappings:
  - name: customers
    erp: {entity: customers, key: id}
    crm: {entity: accounts, key: accountid}
    direction: bidirectional
    fields:
      - {erp: country, crm: address1_country, value_map: {values: {US: United States, NO: Norway}}}
""", "customers", "country ⇄ address1_country", ["value_map.values", "false", "quote"], id="yaml-norway-problem"),
    pytest.param(pack_doc(table(fields=[F, {"erp": "number", "crm": "accountnumber", "colour": "red"}])),
                 "customers", "number ⇄ accountnumber", ["colour", "unknown key"], id="unknown-field-key"),
    pytest.param(pack_doc(table(direction="sideways")), "customers", "direction",
                 ["sideways", "to_crm"], id="bad-direction"),
    pytest.param(pack_doc(table(conflict="loudest_wins")), "customers", "conflict",
                 ["loudest_wins"], id="bad-conflict-policy"),
    pytest.param(pack_doc(table(fields=[{**F, "transforms": [{"type": "shout"}]}])),
                 "customers", "displayName ⇄ name", ["transforms[0]", "shout"], id="unknown-transform"),
    pytest.param(pack_doc(table(fields=[{**F, "transforms": [{"type": "regex_replace", "pattern": "(oops"}]}])),
                 "customers", "displayName ⇄ name", ["invalid regular expression", "(oops"], id="bad-regex"),
    pytest.param(pack_doc(table(filters={"crm": "statecode eq and 0"})), "customers", "filters.crm",
                 ["invalid $filter", "statecode eq and 0"], id="bad-filter"),
    pytest.param(pack_doc(table(depends_on=["salespeople"])), "customers", "depends_on",
                 ["unknown mapping 'salespeople'"], id="unknown-dependency"),
    pytest.param(pack_doc(table(fields=[{**F, "lookup": {"mapping": "currencies"}}])),
                 "customers", "displayName ⇄ name", ["lookup", "unknown mapping 'currencies'"],
                 id="unknown-lookup-target"),
    pytest.param(pack_doc(table(direction="to_crm", fields=[{**F, "direction": "to_erp"}])),
                 "customers", "displayName ⇄ name", ["to_erp", "contradicts", "to_crm"], id="direction-conflict"),
    pytest.param(pack_doc(table(fields=[{**F, "transforms": [{"type": "substring", "length": 3}]}])),
                 "customers", "displayName ⇄ name", ["substring", "no inverse", "reverse_transforms"],
                 id="bidirectional-without-inverse"),
    pytest.param(pack_doc(table(fields=[{"erp": "blocked", "crm": "statecode",
                                         "value_map": {"values": {"Ship": 0, "Invoice": 0, "All": 1}}}])),
                 "customers", "blocked ⇄ statecode", ["value_map", "cannot map back", "'reverse'"],
                 id="value-map-not-invertible"),
    pytest.param(pack_doc(table(fields=[F, {"erp": "number", "crm": "name"}])),
                 "customers", "number ⇄ name", ["'name' is already written", "displayName ⇄ name"],
                 id="target-written-twice"),
    pytest.param(pack_doc(table(erp={"entity": "customers", "key": "id", "natural_key": ["no"]})),
                 "customers", "erp.natural_key", ["'no'", "not a mapped erp field"], id="bad-natural-key"),
    pytest.param(pack_doc(table(fields=[{"crm": "customertypecode", "constant": 3}])),
                 "customers", "customertypecode", ["towards crm", "direction: to_crm"],
                 id="bidirectional-constant"),
    pytest.param(pack_doc(table(fields=[{"erp": "a", "crm": "b", "constant": 1}])),
                 "customers", "a ⇄ b", ["constant", "only the target"], id="constant-with-two-sides"),
    pytest.param(pack_doc(table(fields=[{"erp": "a", "crm": "b", "value_map": {"values": {"x": 1},
                                                                               "unmapped": "fallback"}}])),
                 "customers", "a ⇄ b", ["value_map", "fallback"], id="fallback-missing"),
    pytest.param(pack_doc(table(fields=[{"erp": "a", "crm": "b", "lookup": {"mapping": "customers"},
                                         "transforms": [{"type": "trim"}]}])),
                 "customers", "a ⇄ b", ["lookup", "no transforms"], id="lookup-with-transforms"),
    pytest.param(pack_doc(table(name="a", depends_on=["b"]), table(name="b", depends_on=["a"])),
                 "a", "depends_on", ["dependency cycle: a → b → a"], id="cycle"),
    pytest.param(pack_doc(table(name="Bad Name!")), "Bad Name!", "name", ["must be letters"], id="bad-name"),
    pytest.param(pack_doc(table(kind="option")), "customers", "crm.option_set", ["option_set"],
                 id="option-without-option-set"),
]


@pytest.mark.parametrize(("doc", "mapping", "field", "words"), MALFORMED)
def test_malformed_pack_names_file_mapping_and_field(write_pack, doc, mapping, field, words):
    path = write_pack(doc, "broken.yaml")
    with pytest.raises(PackError) as caught:
        load_pack(path)
    problems = [p for p in caught.value.problems if p.mapping == mapping and p.field == field]
    assert problems, f"no problem for {mapping}/{field} in {caught.value.problems}"
    text = str(problems[0])
    assert text.startswith(str(path)) and f"mapping '{mapping}'" in text and f"field '{field}'" in text
    for word in words:
        assert word in text, text
    assert str(path) in str(caught.value)


def test_all_problems_of_all_mappings_are_collected(write_pack):
    doc = pack_doc(
        table(name="one", direction="up"),
        table(name="two", depends_on=["nowhere"]),
        table(name="three", filters={"erp": "a eq"}),
        table(name="four", fields=[{**F, "transforms": [{"type": "shout"}]}]),
    )
    with pytest.raises(PackError) as caught:
        load_pack(write_pack(doc))
    located = {(p.mapping, p.field) for p in caught.value.problems}
    assert {("one", "direction"), ("two", "depends_on"), ("three", "filters.erp"),
            ("four", "displayName ⇄ name")} <= located


def test_a_reference_to_a_broken_mapping_is_not_called_unknown(write_pack):
    """Only the broken mapping's own problem is reported, not a misleading "unknown mapping"."""
    doc = pack_doc(table(name="one", direction="up"),
                   table(name="two", depends_on=["one"], fields=[{**F, "lookup": {"mapping": "one"}}]))
    with pytest.raises(PackError) as caught:
        load_pack(write_pack(doc))
    assert [(p.mapping, p.field) for p in caught.value.problems] == [("one", "direction")]


@pytest.mark.parametrize(("text", "words"), [
    ("name: x\n  bad: [", ["invalid YAML", "line"]),
    ("- just\n- a list\n", ["a pack is a mapping", "list"]),
])
def test_unreadable_documents(write_pack, text, words):
    path = write_pack(text)
    with pytest.raises(PackError) as caught:
        load_pack(path)
    message = str(caught.value.problems[0])
    assert message.startswith(str(path))
    for word in words:
        assert word in message


def test_pack_level_problems(write_pack):
    doc = pack_doc(table())
    doc["systems"] = {"erp": "sap", "crm": "dataverse"}
    del doc["version"]
    doc["routes"] = [{"name": "r", "side": "crm", "entity": "contacts", "mappings": ["customers", "ghost"]}]
    with pytest.raises(PackError) as caught:
        load_pack(write_pack(doc))
    texts = [str(p) for p in caught.value.problems]
    assert any("field 'systems.erp'" in t and "'sap'" in t for t in texts)
    assert any("field 'version'" in t and "required" in t for t in texts)


def test_route_problems(write_pack):
    doc = pack_doc(table(name="a"), table(name="b"), routes=[
        {"name": "r", "side": "crm", "entity": "contacts", "mappings": ["a", "ghost", "b"]}])
    with pytest.raises(PackError) as caught:
        load_pack(write_pack(doc))
    texts = [str(p) for p in caught.value.problems]
    assert any("field 'routes.r'" in t and "unknown mapping 'ghost'" in t for t in texts)
    assert any("mapping 'a'" in t and "reads 'accounts'" in t for t in texts)
    assert any("mapping 'a'" in t and "field 'filters.crm'" in t and "never get a record" in t for t in texts)


def test_missing_file():
    with pytest.raises(PackError, match="cannot read the pack"):
        load_pack("/nonexistent/pack.yaml")
