"""`dualsync pause MAPPING` and `dualsync resume MAPPING`: stop a mapping (its notices are kept, timers skip
it, a full sync refuses to run on it) and let it run again, catching up at once (shared/admin/pauses.py
explains the design). Here or with `--remote`; `--json` prints the mapping's status document."""

from __future__ import annotations

from typing import Annotated

import typer

from shared.cli import render
from shared.cli.app import app
from shared.cli.backend import Document, call
from shared.cli.common import JsonOpt, show

MappingArg = Annotated[str, typer.Argument(metavar="MAPPING", help="Mapping name, e.g. customers")]


@app.command()
def pause(
    mapping: MappingArg,
    reason: Annotated[str | None, typer.Option("--reason", "-r", help="Why (shown with the mapping's state "
                                                                      "until it is resumed)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Pause a mapping: its changes are kept on the queue, not synced, until it is resumed."""
    doc = call(lambda backend: backend.pause(mapping, reason))
    show(doc, as_json, lambda: paused(doc))


@app.command()
def resume(
    mapping: MappingArg,
    catch_up: Annotated[bool, typer.Option("--catch-up/--no-catch-up", help="Sync the records changed while "
                                           "paused now (default), or leave it to the modified-records timer")
                        ] = True,
    as_json: JsonOpt = False,
) -> None:
    """Resume a paused mapping and catch up on what changed meanwhile; exit 1 when the catch-up failed."""
    doc = call(lambda backend: backend.resume(mapping, catch_up=catch_up))
    show(doc, as_json, lambda: resumed(doc))
    if doc.get("catch_up") and not doc["catch_up"]["ok"]:
        raise typer.Exit(1)


def paused(doc: Document) -> None:
    by = doc["paused"]["by"] if doc.get("paused") else "?"
    render.say(f"{doc['name']}: {render.state(doc)} (by {by}); its changes are kept until "
               f"`dualsync resume {doc['name']}`")


def resumed(doc: Document) -> None:
    caught = doc.get("catch_up")
    render.say(f"{doc['name']}: {render.state(doc)}" + ("" if caught else " (nothing caught up here)"))
    if caught and caught.get("error"):
        render.say(f"the catch-up failed: {caught['error']}; the modified-records timer tries again")
    elif caught:
        render.modified_runs(caught, f"catch-up · {doc['name']}")
