"""What every part of `make demo` shares: the console, tables, waiting for something to happen, the full sync
through the admin API (dry run first) and the reconcile report."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from emulators.sandbox import Sandbox

console = Console()


class DemoFailed(RuntimeError):
    pass


def table(title: str, columns: list[str], rows: list[dict[str, Any]]) -> Table:
    out = Table(title=title, title_justify="left")
    for c in columns:
        out.add_column(c)
    for r in rows:
        out.add_row(*("" if r.get(c) is None else str(r[c]) for c in columns))
    return out


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 15.0) -> float:
    """Seconds until `check` holds (polled every 10 ms); DemoFailed naming `what` after `timeout`."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > timeout:
            raise DemoFailed(f"{what} did not happen within {timeout:.0f} s")
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def full_sync(sb: Sandbox, *, echo_wait_s: float) -> None:
    """The dry-run plan, then a full sync of every table mapping in dependency order (as the admin API lists
    them); `echo_wait_s`: how long the ERP takes to send the echoes of our writes, which are then let pass."""
    plan = await sb.manage("POST", "full-sync")  # a dry run unless dry_run=false
    shown = [r for r in plan["runs"] if r["planned"]]
    console.print(table("Full sync · dry run (nothing written)", ["mapping", "direction", "planned"],
                        [{**r, "planned": ", ".join(f"{k} {v}" for k, v in r["planned"].items())} for r in shown]))
    listed = (await sb.manage("GET", "mappings"))["mappings"]
    names = [m["name"] for m in listed if m["enabled"] and m["kind"] == "table"]  # option sets go with tables
    totals: dict[str, int] = {}
    columns = (TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        overall = progress.add_task(f"full sync ({sb.pack.name})", total=len(names))
        for name in names:  # dependencies first, as the API lists them
            task = progress.add_task(f"  {name}", total=2)
            result = await sb.manage("POST", "full-sync", params={"mapping": name, "dry_run": "false"})
            for run in result["runs"]:
                for outcome, n in run["counts"].items():
                    totals[outcome] = totals.get(outcome, 0) + n
                if run["failures"]:
                    raise DemoFailed(f"full sync of {name} {run['direction']}: {run['failures'][0]['message']}")
                progress.advance(task)
            progress.update(task, completed=2)
            progress.advance(overall)
    console.print("full sync: " + ", ".join(f"{n} {k}" for k, n in sorted(totals.items())))
    # Our writes come back as webhooks / data events; let them pass.
    await asyncio.sleep(echo_wait_s)
    await sb.settle()


async def reconcile(sb: Sandbox) -> None:
    report = await sb.manage("GET", "reconcile")  # every enabled table mapping of the pack
    rows = [{"mapping": r["mapping"], "erp": r["checked"]["erp"], "crm": r["checked"]["crm"],
             "drift": len(r["drift"])} for r in report["reports"]]
    console.print(table(f"Reconcile · {sb.pack.name} (admin API, read-only)", ["mapping", "erp", "crm", "drift"],
                        rows))
    if not report["clean"]:
        raise DemoFailed(f"drift found: {[d['message'] for r in report['reports'] for d in r['drift']][:5]}")
    console.print("[bold green]zero drift[/]")


async def is_(row: Awaitable[dict[str, Any]], field: str, value: Any) -> bool:
    return (await row).get(field) == value


async def now(value: bool) -> bool:
    return value
