"""The dependency graph of a pack: what must be synchronised (coupled) before what.

A mapping depends on the mappings in its `depends_on` and on those its lookup fields refer to (a
customer's salesperson must be coupled before the customer can be written). Self-references (an
account's parent account) are not dependencies: they are resolved record by record.
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.mapping.errors import DependencyCycleError
from shared.mapping.model import Pack, TableMapping


def dependencies(mapping: TableMapping) -> list[str]:
    """Names of the mappings `mapping` depends on: explicit ones first, then lookup targets."""
    names = list(dict.fromkeys(mapping.depends_on))
    for f in mapping.fields:
        if f.lookup and f.enabled and f.lookup.mapping not in names and f.lookup.mapping != mapping.name:
            names.append(f.lookup.mapping)
    return names


def find_cycle(mappings: Sequence[TableMapping]) -> list[str] | None:
    """A dependency cycle as `[a, b, …, a]`, or None. Unknown names are ignored (validation reports them)."""
    graph = {m.name: [d for d in dependencies(m) if d != m.name] for m in mappings}
    for m in mappings:  # an explicit self-dependency is a cycle of one
        if m.name in m.depends_on:
            return [m.name, m.name]
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        path.append(name)
        for dep in graph.get(name, []):
            if dep not in graph:
                continue
            if state.get(dep) == 1:
                return [*path[path.index(dep):], dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        path.pop()
        state[name] = 2
        return None

    for m in mappings:
        if m.name not in state and (cycle := visit(m.name)):
            return cycle
    return None


def dependency_order(pack: Pack) -> list[TableMapping]:
    """Every mapping after everything it depends on; among independent mappings the pack's order is kept.
    Raises DependencyCycleError naming the cycle."""
    cycle = find_cycle(pack.mappings)
    if cycle:
        raise DependencyCycleError(pack.source, cycle)
    by_name = {m.name: m for m in pack.mappings}
    pending = {m.name: {d for d in dependencies(m) if d in by_name} for m in pack.mappings}
    ordered: list[TableMapping] = []
    while pending:
        # Kahn's algorithm, always taking the first ready mapping in pack order: a stable, readable plan.
        ready = next(m for m in pack.mappings if m.name in pending and not pending[m.name])
        ordered.append(ready)
        del pending[ready.name]
        for deps in pending.values():
            deps.discard(ready.name)
    return ordered
