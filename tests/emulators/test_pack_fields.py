"""Every field a standard pack reads exists in the emulator that serves it. The engine `$select`s exactly those
fields (`shared.sync.reads`), so a misspelt or missing one is an error on the wire, never a silent null."""

from __future__ import annotations

import pytest

from emulators.business_central.schema import ENTITY_SETS
from emulators.dataverse.schema import build_tables
from emulators.finance_operations.schema import ENTITIES
from shared.mapping import Side, System, load_pack
from shared.sync.reads import fields_to_read
from tests.sync.conftest import ROOT


def served(system: System, entity: str) -> set[str] | None:
    if system is System.DATAVERSE:
        table = build_tables().get(entity)
        return table.fields if table else None
    if system is System.BUSINESS_CENTRAL:
        found = ENTITY_SETS.get(entity)
        return set(found.fields) if found else None
    fo = ENTITIES.get(entity)
    return set(fo.props) if fo else None


@pytest.mark.parametrize("pack_name", ["bc-sales", "fo-dataverse", "prospect-to-cash"])
def test_every_field_a_pack_reads_is_served(pack_name: str) -> None:
    pack = load_pack(ROOT / "templates" / f"{pack_name}.yaml")
    problems = []
    for mapping in pack.mappings:
        if not mapping.enabled:
            continue
        for side in Side:
            entity = mapping.entity(side).entity
            known = served(pack.systems.get(side), entity)
            if known is None:
                problems.append(f"{mapping.name}: {side.value} entity {entity} is not served")
                continue
            wanted = fields_to_read(pack, mapping, side, None) or []
            problems += [f"{mapping.name}: {side.value} {entity}.{name}" for name in wanted if name not in known]
    assert problems == []
