"""Pieces the commands that talk to the services share: settings from the environment (one clear message
naming every missing variable, exit 2), the engine from `shared.runtime`, argument checks, JSON output."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

import typer
from rich.console import Console

from shared.admin import params
from shared.admin.params import AdminError
from shared.mapping import Direction, PackError
from shared.runtime import build_engine
from shared.settings import Settings, SettingsError, load_settings
from shared.sync import SyncEngine

# Piped output (tests, scripts) gets a wide console so tables are not folded at 80 columns.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, soft_wrap=True)

JSON_HELP = "Print JSON instead of a table (for scripts)."
JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print `message` on stderr and return the Exit to raise (`raise fail(...)`)."""
    err.print(message, markup=False, highlight=False)
    return typer.Exit(code)


def settings_or_exit() -> Settings:
    """The settings from the environment; on a problem, list every variable at fault and exit 2."""
    try:
        return load_settings()
    except SettingsError as exc:
        lines = [f"dualsync needs these environment variables ({len(exc.problems)} missing or invalid):"]
        # pydantic says "Field required" for a variable missing from a group that is otherwise set.
        lines += [f"  {var}: {'missing' if why == 'Field required' else why}" for var, why in exc.problems]
        lines.append("See docs/cli.md (Configuration) for what each one holds.")
        raise fail("\n".join(lines), 2) from None


@asynccontextmanager
async def engine_session(settings: Settings) -> AsyncIterator[SyncEngine]:
    """`build_engine`, turning an unreadable or invalid pack (DUALSYNC_PACK_PATH) into a clear message (exit 1)."""
    try:
        async with build_engine(settings) as engine:
            yield engine
    except PackError as exc:
        problems = "\n".join(f"  - {p}" for p in exc.problems)
        raise fail(f"mapping pack {settings.pack_path} is invalid:\n{problems}") from None


def direction_or_exit(text: str | None, *, one_way: bool = True) -> Direction | None:
    """`to-crm` / `to-erp` (and `bidirectional` unless `one_way`); None stays None."""
    if text is None:
        return None
    try:
        flow = Direction.parse(text)
    except ValueError:
        flow = None
    if flow is None or (one_way and flow is Direction.BIDIRECTIONAL):
        raise fail(f"--direction must be to-crm or to-erp, got {text!r}", 2)
    return flow


def since_or_exit(text: str | None) -> str | None:
    """`text` when it is an age like `30m`, `12h`, `7d` or an ISO date/time (the admin API's `since`, which
    both transports parse), else exit 2 naming the option."""
    if text is not None:
        try:
            params.since({"since": text})
        except AdminError:
            raise fail(f"--since takes an age (30m, 12h, 7d) or an ISO date/time, got {text!r}", 2) from None
    return text


def emit_json(document: Any) -> None:
    """Print a JSON document (an admin API answer) as indented JSON on stdout."""
    typer.echo(json.dumps(document, indent=2, ensure_ascii=False))


def show(document: Any, as_json: bool, table: Callable[[], None]) -> None:
    """`--json`: the document as is; otherwise `table()` (a renderer bound to it)."""
    if as_json:
        emit_json(document)
    else:
        table()
