"""The whole local stack in one context manager, for the demo, the end-to-end tests and the benchmarks:
Azurite (Table storage), the Business Central and Dataverse emulators, and the local Functions host serving
the Function App with settings pointing at them and the webhooks registered on both sides.

    from emulators.sandbox import Sandbox

    async with Sandbox(records=10, notification_delay_ms=1000) as sb:
        await sb.bc_edit("customers", customer_id, {"phoneNumber": "+1 425 555 0100"})   # as a BC user
        print(await sb.manage("GET", "reconcile"))                                        # the admin API

Pieces: `stack` (`Sandbox`), `settings` (`stack_settings`: the DUALSYNC_* settings for emulators on given
URLs), `register` (Dataverse service endpoints and steps), `azurite` (Azurite's Table service). Names are
imported lazily so `tests/support/azurite.py` can re-export `azurite` without loading the Function App.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Sandbox", "SandboxError", "stack_settings"]


def __getattr__(name: str) -> Any:
    if name in ("Sandbox", "SandboxError"):
        from emulators.sandbox import stack
        return getattr(stack, name)
    if name == "stack_settings":
        from emulators.sandbox.settings import stack_settings
        return stack_settings
    raise AttributeError(f"module 'emulators.sandbox' has no attribute {name!r}")
