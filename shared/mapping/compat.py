"""Packs that cannot run side by side: two packs of one deployment must not both write the same table.

Dual-write and Prospect to cash both write Dataverse accounts and contacts and F&O customers; run together
they would overwrite each other's writes and create each other's records twice. A mapping writes its
target side's table: `to_crm` the CRM entity, `to_erp` the ERP entity, `bidirectional` both. Within one
pack several mappings may write one table (P2C's routed contacts); across packs that is a clash.
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.mapping.errors import PackProblem
from shared.mapping.model import Pack, TableMapping
from shared.mapping.types import Direction, Side


def written_tables(mapping: TableMapping) -> list[tuple[Side, str]]:
    """The (side, entity) tables an enabled mapping writes."""
    if not mapping.enabled:
        return []
    return [(flow.target, mapping.entity(flow.target).entity)
            for flow in (Direction.TO_CRM, Direction.TO_ERP) if mapping.direction.allows(flow)]


def check_compatible(packs: Sequence[Pack]) -> list[PackProblem]:
    """One problem per clash: two packs (given together, as one deployment) whose mappings write the same
    table of the same system. Each message names both files, both mappings and the table."""
    problems: list[PackProblem] = []
    writers: dict[tuple[str, str], list[tuple[Pack, TableMapping]]] = {}
    for pack in packs:
        for m in pack.mappings:
            for side, entity in written_tables(m):
                system = pack.systems.get(side).value
                writers.setdefault((system, entity), []).append((pack, m))
    reported: set[tuple[str, str, str, str, str]] = set()
    for (system, entity), found in writers.items():
        for i, (pack_a, map_a) in enumerate(found):
            for pack_b, map_b in found[i + 1:]:
                if pack_a is pack_b:
                    continue
                key = (pack_a.source, map_a.name, pack_b.source, map_b.name, entity)
                if key in reported:
                    continue
                reported.add(key)
                problems.append(PackProblem(
                    pack_a.source, map_a.name, None,
                    f"cannot run with {pack_b.source} ({pack_b.name}): mapping '{map_a.name}' and its mapping "
                    f"'{map_b.name}' both write {system} table '{entity}'; deploy one of the two packs"))
    return problems
