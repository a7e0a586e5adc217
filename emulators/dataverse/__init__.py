"""Local Dataverse Web API v9.2 emulator: `create_app(settings)` gives an ASGI app (see emulators/README.md)."""

from __future__ import annotations

from emulators.dataverse.app import create_app
from emulators.dataverse.settings import DataverseSettings

__all__ = ["DataverseSettings", "create_app"]
