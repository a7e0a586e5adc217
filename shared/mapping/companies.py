"""Company striping: a pack's `companies` declaration, checked and expanded into its company-specific mappings.

Dual-write stripes records by legal entity (`dataAreaId` in F&O, the `msdyn_company` lookup in Dataverse);
Business Central by company. A pack declares it once::

    companies: {mapping: companies, erp_field: dataAreaId, erp_by: LegalEntityId, crm_field: msdyn_company,
                only: [USMF, DEMF]}

and marks mappings `company_specific: true`. At load each of those gets, exactly as if written by hand:
- the field `erp_field ⇄ crm_field`: `not_null`, `lookup: {mapping: <companies>, erp_by: <erp_by>}`, in the
  mapping's direction (placed first, so the existing lookup machinery reads `_msdyn_company_value` and writes
  `msdyn_company@odata.bind`; it also makes the companies mapping a dependency);
- the company field in front of both natural keys (when the side has one), so creates, natural-key searches,
  matches and reconcile stay within one company;
- `mapping.company`, a `CompanyScope`: the fields, the `only` list, and the ERP `$filter` that limits reads
  to those companies (`source_filter` / `matches` add it to the mapping's ERP filter).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shared.mapping.errors import PackProblem
from shared.mapping.model import Companies, EntityRef, FieldMapping, LookupSpec, TableMapping
from shared.mapping.types import Side


@dataclass(frozen=True)
class CompanyScope:
    """The company striping of one company-specific mapping (`TableMapping.company`).

    `field` is the expanded company field mapping (a lookup to `mapping`); `only` the companies this
    deployment syncs, casefolded (None: all)."""

    mapping: str
    erp_field: str
    crm_field: str
    erp_by: str | None
    field: FieldMapping
    only: frozenset[str] | None = None
    only_listed: tuple[str, ...] = ()  # as the pack spells them, for messages

    def name(self, side: Side) -> str:
        """The company attribute as the pack names it on `side` (`dataAreaId`, `msdyn_company`)."""
        return self.erp_field if side is Side.ERP else self.crm_field

    def allows(self, code: Any) -> bool:
        """True when company `code` (the ERP's value, e.g. `usmf`) is one this deployment syncs."""
        if self.only is None:
            return True
        return isinstance(code, str) and code.strip().casefold() in self.only

    def erp_filter(self) -> str | None:
        """`$filter` limiting ERP reads to the `only` companies (lower-case literals: F&O's dataAreaId is
        lower-case and both ERPs compare text case-insensitively), or None when every company syncs. An `or`
        chain rather than `in`: F&O's OData does not take `in`."""
        if self.only is None:
            return None
        quoted = (f"{self.erp_field} eq '{code.replace(chr(39), chr(39) * 2)}'" for code in sorted(self.only))
        return " or ".join(quoted)

    def erp_outside(self, record: Mapping[str, Any]) -> str | None:
        """Why an ERP record is outside the companies this deployment syncs (None: inside)."""
        code = record.get(self.erp_field)
        if self.allows(code):
            return None
        return self.outside_message(code, f"its {self.erp_field}")

    def outside_message(self, code: Any, what: str) -> str:
        listed = ", ".join(self.only_listed)
        return (f"company {str(code).upper() if isinstance(code, str) else code!r} ({what}) is not among the "
                f"companies this deployment syncs (only: {listed})")


def company_field(decl: Companies) -> FieldMapping:
    """The field a company-specific mapping gets: `erp_field ⇄ crm_field`, a not-null lookup to the companies."""
    return FieldMapping(erp=decl.erp_field, crm=decl.crm_field, not_null=True,
                        lookup=LookupSpec(mapping=decl.mapping, erp_by=decl.erp_by))


def check_companies(file: str, decl: Companies | None, mappings: Sequence[TableMapping],
                    broken: Sequence[str] = ()) -> list[PackProblem]:
    """Problems of the declaration and of the mappings that use it, each naming file, mapping and field."""
    out: list[PackProblem] = []
    specific = [m for m in mappings if m.company_specific]
    if decl is None:
        for m in specific:
            out.append(PackProblem(file, m.name, "company_specific", "a company-specific mapping needs the pack's "
                                   "'companies' declaration (mapping, erp_field, erp_by, crm_field)"))
        return out
    by_name = {m.name: m for m in mappings}
    target = by_name.get(decl.mapping)
    if target is None and decl.mapping not in broken:
        out.append(PackProblem(file, None, "companies.mapping",
                               f"refers to unknown mapping '{decl.mapping}' (the mapping whose records are the "
                               "companies)"))
    elif target is not None:
        if target.company_specific:
            out.append(PackProblem(file, target.name, "company_specific", "the companies mapping (companies."
                                   "mapping) cannot itself be company-specific"))
        if target.kind != "table":
            out.append(PackProblem(file, target.name, "kind", "the companies mapping must be a table mapping"))
    for m in specific:
        if m.kind != "table":
            out.append(PackProblem(file, m.name, "company_specific", "an option mapping cannot be company-specific"))
        for f in m.fields:
            clash = [n for n, own in ((f.erp, decl.erp_field), (f.crm, decl.crm_field)) if n is not None and n == own]
            if clash:
                out.append(PackProblem(file, m.name, f.label, f"'{clash[0]}' is the company field: the pack's "
                                       "'companies' declaration maps it for every company-specific mapping; "
                                       "remove this field"))
    return out


def expand(decl: Companies, mapping: TableMapping) -> TableMapping:
    """A company-specific mapping with its company field and per-company natural keys (unchanged otherwise)."""
    field = company_field(decl)

    def keyed(ref: EntityRef, name: str) -> EntityRef:
        if not ref.natural_key:
            return ref
        return ref.model_copy(update={"natural_key": [name, *(k for k in ref.natural_key if k != name)]})

    expanded = mapping.model_copy(update={
        "fields": [field, *mapping.fields],
        "erp": keyed(mapping.erp, decl.erp_field),
        "crm": keyed(mapping.crm, decl.crm_field),
    })
    only = frozenset(c.casefold() for c in decl.only) if decl.only else None
    expanded._company = CompanyScope(decl.mapping, decl.erp_field, decl.crm_field, decl.erp_by, field, only,
                                     tuple(decl.only or ()))
    return expanded
