"""The `dualsync` command line. Each sibling module adds its commands to `app` on import; list new
modules in `_COMMAND_MODULES` (e.g. `sync`, `couple`, `jobs`)."""

from __future__ import annotations

import importlib

from shared.cli.app import app

_COMMAND_MODULES = ("shared.cli.packs", "shared.cli.sync", "shared.cli.ops", "shared.cli.conflicts",
                    "shared.cli.pauses")

for _module in _COMMAND_MODULES:
    importlib.import_module(_module)


def main() -> None:
    """Console-script entry point (`dualsync = "shared.cli:main"`)."""
    app()


__all__ = ["app", "main"]
