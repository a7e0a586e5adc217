"""Checks that need more than one field or one mapping: names, directions, inverses, routes, cycles.

Each returns PackProblems naming the file, the mapping and the field, so a pack author sees every
problem at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shared.mapping.errors import PackProblem
from shared.mapping.graph import find_cycle
from shared.mapping.model import FieldMapping, Route, TableMapping
from shared.mapping.types import Direction, Side


def check_pack(file: str, mappings: Sequence[TableMapping], routes: Sequence[Route],
               broken: Sequence[str] = ()) -> list[PackProblem]:
    """Cross-checks over the mappings that passed structural validation. `broken` names the mappings that
    did not (their own problems are already reported): references to them are not "unknown"."""
    problems: list[PackProblem] = []
    names = [m.name for m in mappings]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(PackProblem(file, name, "name", "two mappings have this name"))
    known = set(names) | set(broken)
    for m in mappings:
        problems += _check_mapping(file, m, known)
    cycle = find_cycle(mappings)
    if cycle:
        problems.append(PackProblem(file, cycle[0], "depends_on", f"dependency cycle: {' → '.join(cycle)}"))
    by_name = {m.name: m for m in mappings}
    for r in routes:
        problems += _check_route(file, r, by_name, known)
    return problems


def _check_mapping(file: str, m: TableMapping, known: set[str]) -> list[PackProblem]:
    out: list[PackProblem] = []

    def problem(field: str | None, message: str) -> None:
        out.append(PackProblem(file, m.name, field, message))

    for dep in m.depends_on:
        if dep not in known:
            problem("depends_on", f"depends on unknown mapping '{dep}'")
    if (m.kind == "option") != (m.crm.option_set is not None):
        problem("crm.option_set", "an option mapping (kind: option) names its CRM option_set, and only it does")
    for side in Side:
        names = {f.name(side) for f in m.fields if f.name(side)} | {m.entity(side).key}
        for key in m.entity(side).natural_key:
            if key not in names:
                problem(f"{side.value}.natural_key", f"natural key field '{key}' is not a mapped {side.value} field")
    written: dict[tuple[Direction, str], str] = {}
    for f in m.fields:
        for message in _check_field(m, f, known):
            problem(f.label, message)
        for flow in (Direction.TO_CRM, Direction.TO_ERP):
            target = f.name(flow.target)
            if f.enabled and target and m.field_direction(f).allows(flow):
                if (flow, target) in written:
                    problem(f.label, f"'{target}' is already written {flow.value} by '{written[flow, target]}'")
                written[flow, target] = f.label
    return out


def _check_field(m: TableMapping, f: FieldMapping, known: set[str]) -> list[str]:
    out = []
    direction = m.field_direction(f)
    if m.direction is not Direction.BIDIRECTIONAL and direction is not m.direction:
        out.append(f"direction {direction.value} contradicts the mapping's direction {m.direction.value}")
        return out
    if f.sourceless:
        side = Side.ERP if f.erp else Side.CRM
        if direction is Direction.BIDIRECTIONAL or direction.target is not side:
            out.append(f"a constant or default without a source must flow towards {side.value} "
                       f"(set direction: to_{side.value})")
        if f.match:
            out.append("a field without a source cannot be used for match-based coupling")
    if direction is Direction.BIDIRECTIONAL:
        if f.reverse_transforms is None:
            for i, t in enumerate(f.transforms):
                if t.inverse_kind() == "none":
                    out.append(f"transforms[{i}] ({t.type}) has no inverse, so this bidirectional field "
                               "cannot map back: add reverse_transforms or make the field one-way")
        if f.value_map is not None and not f.value_map.invertible():
            dupes = ", ".join(repr(v) for v in f.value_map.duplicate_targets())
            out.append(f"value_map sends several values to {dupes}, so it cannot map back: add 'reverse'")
    elif f.reverse_transforms is not None:
        out.append("reverse_transforms only apply to bidirectional fields")
    if f.lookup is not None and f.lookup.mapping not in known:
        out.append(f"lookup refers to unknown mapping '{f.lookup.mapping}'")
    if f.value_map is not None:
        out += _yaml_booleans(f.value_map.values, "value_map.values")
        out += _yaml_booleans(f.value_map.reverse or {}, "value_map.reverse")
    return out


def _yaml_booleans(values: dict[Any, Any], where: str) -> list[str]:
    """YAML 1.1 reads bare yes/no/on/off as booleans: a map of country codes then holds `false` for NO
    (Norway). Booleans among text keys or values are that mistake."""
    out = []
    for label, items in (("key", list(values)), ("value", list(values.values()))):
        texts = [v for v in items if isinstance(v, str)]
        flags = [v for v in items if isinstance(v, bool)]
        if texts and flags:
            out.append(f"{where}: a {label} reads as {str(flags[0]).lower()} among text {label}s; YAML turns bare "
                       "NO/YES/ON/OFF into booleans: quote it (e.g. \"NO\")")
    return out


def _check_route(file: str, r: Route, by_name: dict[str, TableMapping], known: set[str]) -> list[PackProblem]:
    out = []
    flow = Direction.from_source(r.side)
    for i, name in enumerate(r.mappings):
        m = by_name.get(name)
        where = f"routes.{r.name}"
        if m is None:
            if name not in known:  # a structurally broken mapping is reported on its own
                out.append(PackProblem(file, None, where, f"route refers to unknown mapping '{name}'"))
            continue
        if m.entity(r.side).entity != r.entity:
            out.append(PackProblem(file, name, where, f"the route reads {r.side.value} entity '{r.entity}' "
                                   f"but the mapping reads '{m.entity(r.side).entity}'"))
        if not m.direction.allows(flow):
            out.append(PackProblem(file, name, where, f"the mapping does not flow {flow.value}"))
        if i < len(r.mappings) - 1 and m.filters.get(r.side) is None:
            out.append(PackProblem(file, name, f"filters.{r.side.value}", f"route '{r.name}' needs a "
                                   f"{r.side.value} filter here, or the mappings after it never get a record"))
    return out
