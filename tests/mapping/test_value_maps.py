"""Value maps and Business Central's encoded enum values: a real tenant sends `"_x0020_"` for a blank option,
older packs key it by caption (`" "`); both spellings map, exact keys win, and what a map writes is sent as
written (the shipped BC pack writes the encoded names BC accepts)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulators.business_central.enums import member_name
from emulators.business_central.schema import SERVED
from shared.mapping import map_record
from shared.mapping.errors import TransformError
from shared.mapping.values import ValueMap, xml_decoded

CAPTIONS = sorted({c for e in SERVED.values() for f in e.fields.values() for c in f.options or ()})


def test_a_caption_key_matches_the_encoded_value_and_back() -> None:
    by_caption = ValueMap(values={" ": 0, "Ship": 0, "All": 1}, reverse={0: " ", 1: "All"})
    assert by_caption.forward("_x0020_") == 0 and by_caption.forward(" ") == 0
    by_name = ValueMap(values={"_x0020_": 0, "Non_x002D_Inventory": 2, "All": 1})
    assert by_name.forward(" ") == 0 and by_name.forward("Non-Inventory") == 2
    # Only what is written comes out: the reverse of the caption-keyed map still writes " ".
    assert by_caption.backward(0) == " " and by_name.backward(0) == "_x0020_"


def test_exact_keys_win_and_only_text_is_decoded() -> None:
    both = ValueMap(values={"_x0020_": 1, " ": 2})
    assert (both.forward("_x0020_"), both.forward(" ")) == (1, 2)
    numbers = ValueMap(values={1: "one"})
    with pytest.raises(TransformError, match="not in the value map"):
        numbers.forward("_x0031_")  # decodes to the text "1", which is not the number 1
    assert ValueMap(values={"A": 1}, unmapped="keep").forward("_x0042_") == "_x0042_"


@pytest.mark.parametrize("caption", CAPTIONS)
def test_the_emulators_member_names_decode_to_their_captions(caption: str) -> None:
    assert xml_decoded(member_name(caption)) == caption


@given(st.text(st.characters(max_codepoint=0xFFFF, exclude_categories=("Cs",)), max_size=12))
def test_decoding_inverts_the_encoding(text: str) -> None:
    assert xml_decoded(member_name(text)) == text


def test_bc_sales_maps_what_a_tenant_sends_and_writes_what_it_accepts(bc_sales) -> None:
    customers, opportunities = bc_sales.mapping("customers"), bc_sales.mapping("opportunities")
    for blocked, state in (("_x0020_", 0), ("Ship", 0), ("Invoice", 0), ("All", 1)):
        assert map_record(customers, {"blocked": blocked}, "to_crm").payload["statecode"] == state
    assert map_record(customers, {"statecode": 0}, "to_erp").payload["blocked"] == "_x0020_"
    assert map_record(customers, {"statecode": 1}, "to_erp").payload["blocked"] == "All"
    assert map_record(opportunities, {"status": "In_x0020_Progress"}, "to_crm").payload["statecode"] == 0
    assert map_record(opportunities, {"status": "Not_x0020_Started"}, "to_crm").payload["statecode"] == 0
    assert map_record(opportunities, {"statecode": 0}, "to_erp").payload["status"] == "In_x0020_Progress"
    status = bc_sales.mapping("sales-order-status")
    assert map_record(status, {"status": "In_x0020_Review"}, "to_crm").payload["statecode"] == 0
