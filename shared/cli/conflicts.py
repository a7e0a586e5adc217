"""`dualsync conflicts [--mapping M]` lists the conflicts the sync settled (both values, the last-synced one,
the winner and the policy); `dualsync conflicts reverse ID` gives the field the value that lost, on both sides.
Local or `--remote`, like every operator command."""

from __future__ import annotations

from typing import Annotated

import typer

from shared.cli import render
from shared.cli.app import app
from shared.cli.backend import call
from shared.cli.common import JsonOpt, show

conflicts_app = typer.Typer(help="Conflicts the sync settled: list them (no subcommand) or reverse one.",
                            invoke_without_command=True)
app.add_typer(conflicts_app, name="conflicts")


@conflicts_app.callback()
def conflicts(
    ctx: typer.Context,
    mapping: Annotated[str | None, typer.Option("--mapping", "-m", help="Only this mapping")] = None,
    reversed_: Annotated[bool | None, typer.Option("--reversed/--open", help="Only reversed / only not "
                                                                            "reversed entries")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Newest N entries")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """List settled conflicts, newest first: each side's value, the last-synced value, winner and policy."""
    if ctx.invoked_subcommand is not None:
        return
    doc = call(lambda backend: backend.conflicts(mapping, reversed_=reversed_, limit=limit))
    show(doc, as_json, lambda: render.conflicts(doc))


@conflicts_app.command("reverse")
def reverse(
    entry_id: Annotated[str, typer.Argument(metavar="ID", help="The entry's id (from `dualsync conflicts`)")],
    as_json: JsonOpt = False,
) -> None:
    """Write the losing value to the winning side and sync the pair, so both sides end with it; exit 1 when
    the pair's sync failed (the value is on the winning side; the next sync carries it over)."""
    doc = call(lambda backend: backend.reverse(entry_id))
    show(doc, as_json, lambda: render.reversed_conflict(doc))
    if not doc["ok"]:
        raise typer.Exit(1)
