"""Pack commands: `dualsync validate`, `dualsync plan`, `dualsync map`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from shared.cli.app import app
from shared.mapping import (
    DependencyCycleError,
    Direction,
    Pack,
    PackError,
    Side,
    UnknownMappingError,
    check_compatible,
    dependencies,
    dependency_order,
    effective_filter,
    load_pack,
    map_record,
)

# Piped output (tests, support tickets) gets a wide console so plans are not folded at 80 columns.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, soft_wrap=True)


def _load_or_exit(path: Path) -> Pack:
    try:
        return load_pack(path)
    except PackError as exc:
        for problem in exc.problems:
            err.print(f"[red]✗[/] {problem}", markup=True, highlight=False)
        raise typer.Exit(1) from exc


@app.command()
def validate(
    packs: Annotated[list[Path] | None, typer.Argument(help="Pack files (default: templates/*.yaml)")] = None,
) -> None:
    """Validate mapping packs; list every problem and exit 1 if any pack is invalid.

    Packs given together are one deployment: two of them that write the same table of the same system
    (dual-write and Prospect to cash) are refused. Without arguments each standard pack is checked on its own
    (they are alternatives, not a deployment)."""
    paths = packs or sorted(Path("templates").glob("*.yaml"))
    if not paths:
        err.print("no packs given and none found in templates/")
        raise typer.Exit(2)
    failed = 0
    loaded: list[Pack] = []
    for path in paths:
        try:
            pack = load_pack(path)
        except PackError as exc:
            failed += 1
            err.print(f"[red]✗ {path}[/]: {len(exc.problems)} problem(s)", highlight=False)
            for problem in exc.problems:
                err.print(f"  - {problem}", markup=False, highlight=False)
            continue
        loaded.append(pack)
        enabled = sum(m.enabled for m in pack.mappings)
        out.print(f"[green]✓ {path}[/]: {pack.name} {pack.version}, {len(pack.mappings)} mappings "
                  f"({enabled} enabled), {pack.systems.erp.value} ⇄ {pack.systems.crm.value}", highlight=False)
    clashes = check_compatible(loaded) if packs and len(loaded) > 1 else []
    if clashes:
        err.print(f"[red]✗ packs cannot run together[/]: {len(clashes)} clash(es), each a table two packs write",
                  highlight=False)
        for problem in clashes:
            err.print(f"  - {problem}", markup=False, highlight=False)
    if failed or clashes:
        raise typer.Exit(1)


@app.command()
def plan(pack_path: Annotated[Path, typer.Argument(metavar="PACK", help="Pack file")]) -> None:
    """Show the pack's mappings in dependency order, with directions, filters and dependencies."""
    pack = _load_or_exit(pack_path)
    try:
        ordered = dependency_order(pack)
    except DependencyCycleError as exc:  # the loader reports cycles; kept for packs built in code
        err.print(str(exc), markup=False)
        raise typer.Exit(1) from exc
    table = Table(title=f"{pack.name} {pack.version}: {pack.systems.erp.value} ⇄ {pack.systems.crm.value}",
                  title_justify="left")
    for column in ("#", "mapping", "ERP entity", "dir", "CRM entity"):
        table.add_column(column, no_wrap=True)
    for column in ("depends on", "filters", "on"):
        table.add_column(column, overflow="fold")
    for i, m in enumerate(ordered, 1):
        filters = [f"{s.value}: {effective_filter(m, s)}" for s in Side if effective_filter(m, s)]
        crm = m.crm.entity + (f".{m.crm.option_set}" if m.crm.option_set else "")
        table.add_row(str(i), m.name, m.erp.entity, m.direction.arrow, crm, ", ".join(dependencies(m)),
                      "\n".join(filters), "yes" if m.enabled else "no")
    out.print(table, highlight=False)
    for r in pack.routes:
        out.print(f"route {r.name}: {r.side.value} {r.entity} → first of {', '.join(r.mappings)} "
                  f"whose filter matches, otherwise {r.otherwise}", highlight=False)


@app.command("map")
def map_command(
    pack_path: Annotated[Path, typer.Argument(metavar="PACK", help="Pack file")],
    mapping: Annotated[str, typer.Argument(help="Mapping name")],
    direction: Annotated[str, typer.Option("--direction", "-d", help="to-crm or to-erp")],
    creating: Annotated[bool, typer.Option("--create", help="Add the mapping's on_create values")] = False,
    resolve: Annotated[list[str] | None, typer.Option(help="Resolved lookup: FIELD=ID (repeatable)")] = None,
) -> None:
    """Map one record read from stdin (JSON) and print the target payload; exit 1 on field errors."""
    pack = _load_or_exit(pack_path)
    try:
        table = pack.mapping(mapping)
        flow = Direction.parse(direction)
        if flow is Direction.BIDIRECTIONAL:
            raise ValueError
    except UnknownMappingError as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(2) from exc
    except ValueError as exc:
        err.print(f"--direction must be to-crm or to-erp, got {direction!r}", markup=False)
        raise typer.Exit(2) from exc
    try:
        record = json.loads(sys.stdin.read())
    except json.JSONDecodeError as exc:
        err.print(f"stdin is not JSON: {exc}", markup=False)
        raise typer.Exit(2) from exc
    if not isinstance(record, dict):
        err.print("stdin must hold one JSON object (a record)", markup=False)
        raise typer.Exit(2)
    resolved = {}
    for item in resolve or []:
        name, sep, value = item.partition("=")
        if not sep:
            err.print(f"--resolve takes FIELD=ID, got {item!r}", markup=False)
            raise typer.Exit(2)
        resolved[name] = value or None
    result = map_record(table, record, flow, resolved=resolved or None, creating=creating)
    document = {
        "payload": result.payload,
        "errors": [str(e) for e in result.errors],
        "lookups": [{"field": lk.field, "mapping": lk.mapping, "value": lk.value, "by": lk.by}
                    for lk in result.lookups],
    }
    typer.echo(json.dumps(document, indent=2, ensure_ascii=False, default=str))
    if result.errors:
        raise typer.Exit(1)
