"""dualsync's mapping language and engine: pure code, no I/O.

Typical use by the sync engine::

    pack = load_pack("templates/bc-sales.yaml")          # PackError lists every problem
    for mapping in dependency_order(pack):               # salespeople, currencies … before customers
        text = source_filter(mapping, Side.ERP)          # `$filter` for the source API
        ...
        if matches(mapping, record, Side.ERP):
            result = map_record(mapping, record, "to_crm", resolved={...})
            # result.payload / result.errors (per-record) / result.lookups (to resolve via couplings)
"""

from __future__ import annotations

from shared.mapping.companies import CompanyScope
from shared.mapping.compat import check_compatible, written_tables
from shared.mapping.engine import (
    LookupRequest,
    MapResult,
    convert,
    field_key,
    is_empty,
    lookup_write,
    map_record,
    read_name,
)
from shared.mapping.errors import (
    DependencyCycleError,
    FieldError,
    MappingError,
    NotInvertibleError,
    PackError,
    PackProblem,
    TransformError,
    UnknownMappingError,
)
from shared.mapping.filters import effective_filter, matches, select_mappings, source_filter
from shared.mapping.graph import dependencies, dependency_order, find_cycle
from shared.mapping.loader import load_pack, loads_pack, parse_pack
from shared.mapping.merge import Conflict, Snapshot, diff, field_values, same
from shared.mapping.model import (
    Companies,
    EntityRef,
    FieldMapping,
    Filters,
    LookupSpec,
    MatchSpec,
    OnCreate,
    Pack,
    Route,
    Systems,
    TableMapping,
)
from shared.mapping.transforms import REGISTRY as TRANSFORMS
from shared.mapping.types import ConflictPolicy, DeletionPolicy, Direction, Side, System
from shared.mapping.values import ValueMap

__all__ = [
    "TRANSFORMS", "Companies", "CompanyScope", "Conflict", "ConflictPolicy", "DeletionPolicy",
    "DependencyCycleError", "Direction", "EntityRef", "FieldError", "FieldMapping", "Filters", "LookupRequest",
    "LookupSpec", "MapResult", "MappingError", "MatchSpec", "NotInvertibleError", "OnCreate", "Pack", "PackError",
    "PackProblem", "Route", "Side", "Snapshot", "System", "Systems", "TableMapping", "TransformError",
    "UnknownMappingError", "ValueMap", "check_compatible", "convert", "dependencies", "dependency_order", "diff",
    "effective_filter", "field_key", "field_values", "find_cycle", "is_empty", "load_pack", "loads_pack",
    "lookup_write", "map_record", "matches", "parse_pack", "read_name", "same", "select_mappings", "source_filter",
    "written_tables",
]
