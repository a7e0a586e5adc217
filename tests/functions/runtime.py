"""Installing an `AppRuntime` around a test's engine, so the Function App's own handlers run against the
emulators and Azurite (dependency injection through `shared.app_runtime.install`, no patching)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from shared.app_runtime import AppRuntime, install
from shared.settings import Settings, load_settings
from shared.sync import SyncEngine


def app_settings(**extra: Any) -> Settings:
    """Valid settings whose connection values are never used (the engine is injected), plus `extra`."""
    return load_settings(storage={"connection_string": "UseDevelopmentStorage=true"},
                         erp={"tenant_id": "t", "client_id": "c", "company_id": "00000000-0000-0000-0000-000000000001"},
                         crm={"tenant_id": "t", "client_id": "c", "base_url": "http://dv.test"}, **extra)


@contextmanager
def installed(engine: SyncEngine, settings: Settings | None = None) -> Iterator[AppRuntime]:
    runtime = AppRuntime(settings=settings or app_settings(), engine=engine)
    previous = install(runtime)
    try:
        yield runtime
    finally:
        install(previous)
