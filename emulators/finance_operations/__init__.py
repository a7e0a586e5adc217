"""Local Finance and Operations OData emulator: `create_app(settings)` gives an ASGI app (see emulators/README.md)."""

from __future__ import annotations

from emulators.finance_operations.app import create_app
from emulators.finance_operations.settings import FinanceOperationsSettings

__all__ = ["FinanceOperationsSettings", "create_app"]
