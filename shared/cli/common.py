"""Pieces the commands that talk to the services share: settings from the environment (one clear message
naming every missing variable, exit 2), the engine from `shared.runtime`, direction parsing, JSON output."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from enum import Enum
from typing import Any, TypeVar

import typer
from rich.console import Console

from shared.mapping import Direction, PackError, TableMapping, UnknownMappingError
from shared.runtime import build_engine, open_state
from shared.settings import Settings, SettingsError, load_settings
from shared.state import StateStore
from shared.sync import SyncEngine

T = TypeVar("T")

# Piped output (tests, scripts) gets a wide console so tables are not folded at 80 columns.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, soft_wrap=True)

JSON_HELP = "Print JSON instead of a table (for scripts)."


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


def run(work: Callable[[], Awaitable[T]]) -> T:
    """Run one command's async body on a fresh event loop."""
    return asyncio.run(work())  # type: ignore[arg-type]


@asynccontextmanager
async def engine_session(settings: Settings) -> AsyncIterator[SyncEngine]:
    """`build_engine`, turning an unreadable or invalid pack (DUALSYNC_PACK_PATH) into a clear message (exit 1)."""
    try:
        async with build_engine(settings) as engine:
            yield engine
    except PackError as exc:
        problems = "\n".join(f"  - {p}" for p in exc.problems)
        raise fail(f"mapping pack {settings.pack_path} is invalid:\n{problems}") from None


@asynccontextmanager
async def state_session(settings: Settings) -> AsyncIterator[StateStore]:
    async with open_state(settings) as state:
        yield state


def mapping_or_exit(engine: SyncEngine, name: str) -> TableMapping:
    try:
        return engine.mapping(name)
    except UnknownMappingError as exc:
        raise fail(str(exc), 2) from None


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


def since_or_exit(text: str | None) -> dt.datetime | None:
    """An age like `30m`, `12h`, `7d`, or an ISO date/time (UTC when no offset)."""
    if text is None:
        return None
    units = {"m": "minutes", "h": "hours", "d": "days"}
    if text[:-1].isdigit() and text[-1:] in units:
        return dt.datetime.now(dt.UTC) - dt.timedelta(**{units[text[-1]]: int(text[:-1])})
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise fail(f"--since takes an age (30m, 12h, 7d) or an ISO date/time, got {text!r}", 2) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def emit_json(document: Any) -> None:
    """Print `document` (dataclasses, enums and datetimes included) as indented JSON on stdout."""
    typer.echo(json.dumps(_plain(document), indent=2, ensure_ascii=False, default=str))


def when(moment: dt.datetime | None) -> str:
    return "" if moment is None else moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
