"""The pack model: a pack of table mappings, each a list of field mappings (pydantic v2, validated on load).

Conventions a pack author needs:
- A field's `transforms` and `value_map` run in the field's *forward* direction: ERP → CRM for a
  bidirectional or `to_crm` field, CRM → ERP for a `to_erp` field. A bidirectional field maps back through
  the inverses (in reverse order), or through `reverse_transforms` when a transform has no inverse.
- `default` is written when the source value is empty (null or ""); `constant` is always written.
- A `lookup` field refers to a record of another mapping; the sync engine resolves it through that
  mapping's couplings and the engine writes it as the target API expects (Dataverse `@odata.bind`).
- A pack's `companies` declaration and a mapping's `company_specific: true` stripe records by company
  (shared/mapping/companies.py expands them at load; `TableMapping.company` describes the result).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from shared.mapping.errors import UnknownMappingError
from shared.mapping.transforms import Transform
from shared.mapping.types import MODIFIED_FIELD, ConflictPolicy, DeletionPolicy, Direction, Side, System
from shared.mapping.values import ValueMap
from shared.odata import ODataFilterError, parse_filter

if TYPE_CHECKING:
    from shared.mapping.companies import CompanyScope

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EntityRef(_Model):
    """One side's table: entity set as the API spells it, primary key, optional natural (alternate) key."""

    entity: str = Field(min_length=1)
    key: str = Field(min_length=1)
    logical_name: str | None = None  # Dataverse logical name (`account` for entity set `accounts`)
    natural_key: list[str] = []  # for idempotent creates (upsert by alternate key) and match-coupling
    option_set: str | None = None  # option mappings only: the option attribute of `entity`
    # Overrides what the connector knows (lastModifiedDateTime, modifiedon); "" declares there is none, so the
    # modified-records sync catches up by content.
    modified_field: str | None = None


class Companies(_Model):
    """Company striping (dual-write's legal entities, BC's companies), declared once per pack.

    `mapping` names the mapping whose records are the companies; every `company_specific` mapping gets the
    field pair `erp_field ⇄ crm_field` as a not-null lookup to it (`erp_by`: the field of the companies'
    ERP records that `erp_field` holds), and that pair in front of both natural keys. `only` limits the
    companies this deployment syncs (case-insensitive; default: all)."""

    mapping: str = Field(min_length=1)
    erp_field: str = Field(min_length=1)
    erp_by: str | None = None
    crm_field: str = Field(min_length=1)
    only: list[str] | None = None

    @field_validator("only")
    @classmethod
    def _only(cls, v: list[Any] | None) -> list[str] | None:
        if v is None:
            return None
        if not v:
            raise ValueError("'only' lists at least one company (leave it out to sync every company)")
        for i, item in enumerate(v):
            if not isinstance(item, str) or not item.strip():
                raise ValueError(f"'only[{i}]' must be a non-empty company code, got {item!r}")
        return [item.strip() for item in v]


class Filters(_Model):
    """OData `$filter` per side, evaluated in-process and sent to the source API when reading."""

    erp: str | None = None
    crm: str | None = None

    @field_validator("erp", "crm")
    @classmethod
    def _parses(cls, v: str | None) -> str | None:
        if v is None:
            return None
        try:
            parse_filter(v)
        except ODataFilterError as exc:
            raise ValueError(str(exc)) from exc
        return v.strip()

    def get(self, side: Side) -> str | None:
        return self.erp if side is Side.ERP else self.crm


class LookupSpec(_Model):
    """The field holds a reference to a record of mapping `mapping`. `erp_by`/`crm_by` name the field of
    the referenced record the value is (its primary key when omitted, e.g. BC `salespersonCode` holds the
    salesperson's `code`). `crm_bind` is the navigation property for `@odata.bind` when it differs from
    the attribute (polymorphic lookups: `parentcustomerid_account`)."""

    mapping: str
    erp_by: str | None = None
    crm_by: str | None = None
    crm_bind: str | None = None

    def by(self, side: Side) -> str | None:
        return self.erp_by if side is Side.ERP else self.crm_by


class MatchSpec(_Model):
    """Use the field for match-based coupling: lower priority numbers are tried first."""

    priority: int = Field(default=1, ge=1)
    case_sensitive: bool = False


class FieldMapping(_Model):
    erp: str | None = None
    crm: str | None = None
    constant: Any = None
    direction: Direction | None = None  # inherits the table mapping's direction
    default: Any = None
    value_map: ValueMap | None = None
    transforms: list[Transform] = []
    reverse_transforms: list[Transform] | None = None
    lookup: LookupSpec | None = None
    not_null: bool = False
    clear_on_fail: bool = False
    match: MatchSpec | None = None
    enabled: bool = True

    @model_validator(mode="after")
    def _shape(self) -> FieldMapping:
        if not self.erp and not self.crm:
            raise ValueError("a field mapping needs an 'erp' or a 'crm' field (or both)")
        sourceless = self.constant is not None or self.default is not None
        if (self.erp is None or self.crm is None) and not sourceless:
            raise ValueError("a field with only one side needs a 'constant' or a 'default' to write")
        if self.constant is not None:
            if self.erp and self.crm:
                raise ValueError("a 'constant' field names only the target field, not both sides")
            if self.transforms or self.value_map or self.lookup or self.default is not None:
                raise ValueError("a 'constant' cannot be combined with transforms, value_map, lookup or default")
        if self.lookup and (self.transforms or self.value_map or self.reverse_transforms):
            raise ValueError("a 'lookup' field takes the referenced id as is: no transforms or value_map")
        return self

    @property
    def label(self) -> str:
        """How messages name this field: `displayName ⇄ name`, or the single side for constants."""
        if self.erp and self.crm:
            return f"{self.erp} ⇄ {self.crm}"
        return self.erp or self.crm or "?"

    def name(self, side: Side) -> str | None:
        return self.erp if side is Side.ERP else self.crm

    @property
    def sourceless(self) -> bool:
        """Only one side named: the value is a constant or a default, never read."""
        return self.erp is None or self.crm is None


class OnCreate(_Model):
    """Values applied to records the integration creates (BC's config templates); mapped values win."""

    erp: dict[str, Any] = {}
    crm: dict[str, Any] = {}

    def get(self, side: Side) -> dict[str, Any]:
        return self.erp if side is Side.ERP else self.crm


class TableMapping(_Model):
    name: str
    description: str = ""
    kind: Literal["table", "option"] = "table"
    erp: EntityRef
    crm: EntityRef
    direction: Direction
    filters: Filters = Filters()
    only_coupled: bool = True  # BC's "Synch. Only Coupled Records"
    create_new: bool = True  # create the counterpart when match-based coupling finds none
    conflict: ConflictPolicy = ConflictPolicy.ERROR
    deletion: DeletionPolicy = DeletionPolicy.ERROR
    depends_on: list[str] = []
    on_create: OnCreate = OnCreate()
    enabled: bool = True
    company_specific: bool = False  # records belong to one company (the pack's `companies` declaration)
    fields: list[FieldMapping] = Field(min_length=1)
    # Set by the loader: the pack file (for messages), the mappings this one's lookups refer to, and the
    # company striping of a company-specific mapping (its `companies` declaration, expanded).
    _source: str = PrivateAttr(default="<memory>")
    _targets: dict[str, TableMapping] = PrivateAttr(default_factory=dict)
    _company: CompanyScope | None = PrivateAttr(default=None)

    @property
    def source(self) -> str:
        return self._source

    @property
    def company(self) -> CompanyScope | None:
        """How a company-specific mapping's records carry their company (None: not company-specific)."""
        return self._company

    def lookup_target(self, field: FieldMapping) -> TableMapping | None:
        """The mapping a lookup field refers to (None before the pack is loaded)."""
        return self._targets.get(field.lookup.mapping) if field.lookup else None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"mapping name {v!r} must be letters, digits, '-', '_' or '.'")
        return v

    def entity(self, side: Side) -> EntityRef:
        return self.erp if side is Side.ERP else self.crm

    def field_direction(self, field: FieldMapping) -> Direction:
        return field.direction or self.direction

    def fields_for(self, flow: Direction) -> list[FieldMapping]:
        """Enabled fields that carry data in the one-way direction `flow`."""
        return [f for f in self.fields if f.enabled and self.field_direction(f).allows(flow)]

    def lookups(self) -> list[FieldMapping]:
        return [f for f in self.fields if f.lookup is not None and f.enabled]

    def match_groups(self) -> list[list[FieldMapping]]:
        """Fields used for match-based coupling, grouped by priority (tried in this order)."""
        groups: dict[int, list[FieldMapping]] = {}
        for f in self.fields:
            if f.match and f.enabled and f.erp and f.crm:
                groups.setdefault(f.match.priority, []).append(f)
        return [groups[p] for p in sorted(groups)]

    def expands(self, side: Side) -> set[str]:
        """Relations a read on `side` must `$expand` for field_lookup transforms."""
        flow = Direction.from_source(side)
        found = set()
        for f in self.fields_for(flow):
            backward = self.field_direction(f) is Direction.BIDIRECTIONAL and side is Side.CRM
            chain = (f.reverse_transforms or []) if backward else f.transforms
            found |= {t.relation for t in chain if t.type == "field_lookup"}
        return found


class Systems(_Model):
    erp: Literal[System.BUSINESS_CENTRAL, System.FINANCE_OPERATIONS]
    crm: Literal[System.DATAVERSE]

    def get(self, side: Side) -> System:
        return self.erp if side is Side.ERP else self.crm


class Route(_Model):
    """One source entity feeding several mappings: the first mapping (in order) whose source-side filter
    the record satisfies takes it; `otherwise` says what happens when none does (P2C contacts)."""

    name: str
    side: Side
    entity: str
    mappings: list[str] = Field(min_length=2)
    otherwise: Literal["skip", "error"] = "skip"


class Pack(_Model):
    name: str = Field(min_length=1)
    version: str = Field(min_length=1)
    description: str = ""
    systems: Systems
    mappings: list[TableMapping] = Field(min_length=1)
    routes: list[Route] = []
    companies: Companies | None = None
    _source: str = PrivateAttr(default="<memory>")

    @property
    def source(self) -> str:
        """The file the pack was loaded from (named in every error)."""
        return self._source

    def mapping(self, name: str) -> TableMapping:
        for m in self.mappings:
            if m.name == name:
                return m
        known = ", ".join(m.name for m in self.mappings)
        raise UnknownMappingError(f"{self.source}: no mapping '{name}' (the pack has: {known})")

    def modified_field(self, mapping: TableMapping, side: Side) -> str | None:
        return mapping.entity(side).modified_field or MODIFIED_FIELD[self.systems.get(side)]

    def route_for(self, side: Side, entity: str) -> Route | None:
        return next((r for r in self.routes if r.side is side and r.entity == entity), None)
