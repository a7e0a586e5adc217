"""`make demo`: dualsync end to end on this machine, through the same Function App Azure would run: Business
Central ⇄ Sales here, then Finance and Operations (dual-write and Prospect to cash, `scripts/demo_fo.py`).

Starts the sandbox (Azurite, both emulators, the local Functions host serving the app), lets people enter a
few records on each side, registers the webhooks (Dataverse service endpoints + steps; BC subscriptions by
the app's own timer, with the validation handshake), runs a full sync of the bc-sales pack through the admin
API (dry run first), then makes live edits on each side and shows each arriving on the other side with the
measured delay, the trace of one change (where its time went), an echo of our own write being dropped, a
conflict settled by the mapping's policy, and a reconcile report with zero drift. Stops everything it
started; exit 0 on success, 1 with the reason if not.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from typing import Any

from emulators.sandbox import Sandbox
from scripts import demo_fo, demo_trace
from scripts.demo_kit import DemoFailed, console, full_sync, is_, now, reconcile, table, until

BC_DELAY_MS = 1000  # a tenant batches changes for 30 s before notifying; 1 s keeps the demo short
CUSTOMERS = [  # what Annie enters in Business Central
    {"number": "C10001", "displayName": "Adatum Corporation", "type": "Company", "city": "Atlanta",
     "phoneNumber": "+1 404 555 0101"},
    {"number": "C10002", "displayName": "Trey Research", "type": "Company", "city": "Chicago",
     "phoneNumber": "+1 312 555 0102"},
    {"number": "C10003", "displayName": "Alpine Ski House", "type": "Company", "city": "Denver",
     "phoneNumber": "+1 303 555 0103"},
]
for _c in CUSTOMERS:  # what BC's customer card fills in by default
    _c.update(blocked=" ", creditLimit=0)
ACCOUNTS = [  # what Anna enters in Sales: one is Adatum already (same number: the full sync couples them)
    {"accountnumber": "C10001", "name": "Adatum Corporation", "address1_city": "Atlanta",
     "telephone1": "+1 404 555 0101", "customertypecode": 3, "creditlimit": 0},
    {"accountnumber": "C20001", "name": "Fourth Coffee", "address1_city": "Seattle",
     "telephone1": "+1 206 555 0201", "customertypecode": 3, "creditlimit": 0},
]


async def run(*, keep_console: bool = False) -> None:
    """The demo; with `keep_console` (`make console`), the BC ⇄ Sales story only, then the stack stays up with
    the console open until Ctrl-C."""
    console.rule("[bold]dualsync sandbox")
    with demo_trace.recording():
        async with Sandbox(records=0, notification_delay_ms=BC_DELAY_MS, dataverse_delay_ms=200,
                           register_webhooks=False) as sb:
            console.print(f"Azurite, Business Central {sb.bc_url}, Dataverse {sb.dv_url}, "
                          f"Functions host {sb.functions_url} ({len(sb.host.functions)} functions)")
            await story(sb)
            console.print(f"[bold]Console[/] (open while this stack runs): {console_url(sb)}")
            if keep_console:
                await keep_open(sb)
    if keep_console:
        console.print("[bold]console closed[/]: everything it started has been stopped")
        return
    await demo_fo.run()
    console.rule("[bold green]done: every process the demo started has stopped")
    console.print("[bold]make console[/] runs the BC ⇄ Sales story again and keeps its console open at the URL it "
                  "prints, until Ctrl-C")


def console_url(sb: Sandbox) -> str:
    """The operators' console of the sandbox's Function App; the function key (this run's own, local) in the
    address, as on a key-only deployment."""
    return f"{sb.functions_url}/api/console?code={sb.function_key}"


async def keep_open(sb: Sandbox) -> None:
    console.rule("[bold]console")
    console.print(f"Open [bold]{console_url(sb)}[/] in a browser. The stack serves HTTPS with this checkout's "
                  f"own CA ({sb.tls.ca}): let the browser trust it, or accept its warning for 127.0.0.1.")
    console.print("People can go on editing as a named user through the emulators' admin routes, e.g. PATCH "
                  f"{sb.bc_url}/_admin/tables/customers/<id>?as=bc-user-annie (emulators/README.md). "
                  "Ctrl-C stops everything.")
    # Until Ctrl-C cancels the demo, or a SIGTERM: either way the sandbox then stops what it started (Azurite,
    # a child process, would outlive a plain SIGTERM).
    stop = asyncio.Event()
    with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows' event loop: Ctrl-C only
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()


async def story(sb: Sandbox) -> None:
    customers = [await sb.bc_create("customers", c) for c in CUSTOMERS]
    accounts = [await sb.dv_create("accounts", a) for a in ACCOUNTS]
    console.print(table("Business Central · customers (entered by Annie)",
                        ["number", "displayName", "city", "phoneNumber"], customers))
    console.print(table("Dataverse · accounts (entered by Anna)",
                        ["accountnumber", "name", "address1_city", "telephone1"], accounts))

    await sb.register_webhooks()
    console.print(f"[bold]Webhooks[/]: {len(sb.dataverse_hooks)} Dataverse service endpoints (HttpHeader key) "
                  f"with Create/Update/Delete steps; {len(sb.subscriptions)} BC subscriptions created by the "
                  "app's timer after the validationToken handshake")
    for refused in sorted(sb.unsubscribed):
        console.print(f"  [yellow]BC refused:[/] {refused} (the modified-records timer covers it)")

    await full_sync(sb, echo_wait_s=BC_DELAY_MS / 1000 + 0.3)
    adatum = await coupled(sb, customers[0]["id"])
    await live_edits(sb, customers[0]["id"], adatum)
    await conflict(sb, customers[0]["id"], adatum)
    await reconcile(sb)


async def coupled(sb: Sandbox, customer_id: str) -> str:
    by_number = {a["accountnumber"]: a for a in await sb.dv_rows("accounts")}
    if "C10002" not in by_number or "C10001" not in by_number:
        raise DemoFailed("the full sync did not create Trey Research / couple Adatum in Sales")
    bc_numbers = {c["number"] for c in await sb.bc_rows("customers")}
    if "C20001" not in bc_numbers:
        raise DemoFailed("the full sync did not create Fourth Coffee in Business Central")
    console.print("[green]✓[/] Adatum coupled by number, Trey Research and Alpine Ski House created in Sales, "
                  "Fourth Coffee created in Business Central")
    # The salesperson decides the account's owner (a BC → Sales field): Annie gives Fourth Coffee to Anna,
    # who owns it in Sales already, so both sides agree on it too.
    anna = next(p for p in await sb.bc_rows("salespeoplePurchasers") if p.get("displayName") == "Anna Berg")
    fourth = next(c for c in await sb.bc_rows("customers") if c["number"] == "C20001")
    await sb.bc_edit("customers", fourth["id"], {"salespersonCode": anna["code"]})
    return by_number["C10001"]["accountid"]


async def live_edits(sb: Sandbox, customer_id: str, account_id: str) -> None:
    console.rule("live edits")
    edited = time.monotonic()
    await sb.bc_edit("customers", customer_id, {"phoneNumber": "+1 404 555 0199"})
    delay = await until(lambda: is_(sb.dv_row("accounts", account_id), "telephone1", "+1 404 555 0199"),
                        "BC phone → Sales")
    console.print(f"[green]⇒ Sales[/]  Annie changed Adatum's phone in BC; the account had it after "
                  f"[bold]{delay * 1000:.0f} ms[/] (BC batches for {BC_DELAY_MS / 1000:.0f} s here, 30 s in a tenant)")
    await until(lambda: now(bool(_dropped(sb, edited))), "the Dataverse echo")
    echo = _dropped(sb, edited)[-1]
    console.print(f"  [cyan]echo suppressed[/]: our write fired Dataverse's Update step as the integration user; "
                  f"the webhook said: “{echo.message}”")
    demo_trace.show(customer_id, "to_crm")  # where the time of that change went

    version = (await sb.dv_row("accounts", account_id))["versionnumber"]
    edited = time.monotonic()
    await sb.dv_edit("accounts", account_id, {"name": "Adatum Corp."})
    delay = await until(lambda: is_(sb.bc_row("customers", customer_id), "displayName", "Adatum Corp."),
                        "Sales name → BC")
    console.print(f"[green]⇒ BC[/]     Anna renamed the account in Sales; the BC customer had it after "
                  f"[bold]{delay * 1000:.0f} ms[/]")
    # BC's notification of our own write cannot name its author: it reaches the processor, which finds
    # nothing to do (the values already match) and writes nothing.
    await until(lambda: now(bool(sb.events_since(edited, f"customers to_crm {customer_id}"))),
                "the BC echo", timeout=BC_DELAY_MS / 1000 + 10)
    await sb.settle()
    outcome = sb.events_since(edited, f"customers to_crm {customer_id}")[-1].message.rsplit(": ", 1)[-1]
    after = (await sb.dv_row("accounts", account_id))["versionnumber"]
    if outcome not in ("unchanged", "skipped") or after != version + 1:
        raise DemoFailed(f"BC's echo was not suppressed: outcome {outcome}, account version {version} → {after}")
    console.print(f"  [cyan]echo suppressed[/]: BC notified us of our own write; the processor's outcome was "
                  f"[bold]{outcome}[/], the account's version stayed {after} (only Anna's edit)")


async def conflict(sb: Sandbox, customer_id: str, account_id: str) -> None:
    console.rule("conflict (customers: erp_wins)")
    edited = time.monotonic()
    # Both people change the city before either change is synchronised.
    await sb.dv_edit("accounts", account_id, {"address1_city": "Savannah"})
    await sb.bc_edit("customers", customer_id, {"city": "Macon"})
    console.print("Anna set the city to Savannah in Sales; Annie set it to Macon in BC, a moment later")
    await until(lambda: _both(sb, customer_id, account_id, "Macon"), "the conflict being settled",
                timeout=BC_DELAY_MS / 1000 + 10)
    await asyncio.sleep(BC_DELAY_MS / 1000 + 0.2)
    await sb.settle()
    settled = sb.events_since(edited, "conflict in customers")
    if not await _both(sb, customer_id, account_id, "Macon"):
        raise DemoFailed("the conflict did not end with Business Central's value on both sides")
    console.print(f"[green]✓[/] both sides say [bold]Macon[/]: the ERP wins; engine: "
                  f"“{settled[0].message if settled else 'BC change applied last'}”")


def _dropped(sb: Sandbox, since: float) -> list[Any]:
    """The intake's log lines for Dataverse account notices of which at least one was an echo."""
    return [e for e in sb.events_since(since, "crm/accounts:") if ", 0 echo" not in e.message]


async def _both(sb: Sandbox, customer_id: str, account_id: str, city: str) -> bool:
    return ((await sb.bc_row("customers", customer_id)).get("city") == city
            and (await sb.dv_row("accounts", account_id)).get("address1_city") == city)


def main() -> int:
    keep_console = "--console" in sys.argv[1:]
    try:
        asyncio.run(run(keep_console=keep_console))
    except KeyboardInterrupt:
        if keep_console:
            console.print("[bold]console closed[/]: everything it started has been stopped")
            return 0
        console.print("[bold red]demo interrupted[/]: everything it started has been stopped")
        return 130
    except Exception as exc:  # the demo is a script: say what failed, exit non-zero
        console.print(f"[bold red]demo failed:[/] {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
