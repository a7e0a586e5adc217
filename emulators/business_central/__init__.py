"""Local emulator of the Business Central API v2.0 (see emulators/README.md for what it does and where that is
documented). Build it with `create_app(BusinessCentralSettings(...))` or run `python -m emulators.business_central`."""

from __future__ import annotations

from emulators.business_central.app import create_app
from emulators.business_central.settings import BusinessCentralSettings

__all__ = ["BusinessCentralSettings", "create_app"]
