"""The state store: one object handing out the six table stores, over an injected TableServiceClient."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from azure.data.tables.aio import TableServiceClient

from shared.http.redact import Redactor
from shared.settings import StorageSettings
from shared.state.conflicts import ConflictStore
from shared.state.coupling_batches import DEFAULT_PARTITION_RATE
from shared.state.couplings import CouplingStore
from shared.state.error_records import ErrorStore
from shared.state.jobs import JobStore
from shared.state.pauses import PauseStore
from shared.state.subscriptions import SubscriptionStore
from shared.state.watermarks import WatermarkStore


@dataclass(frozen=True)
class TableNames:
    couplings: str = "dualsynccouplings"
    watermarks: str = "dualsyncwatermarks"
    jobs: str = "dualsyncjobs"
    errors: str = "dualsyncerrors"
    subscriptions: str = "dualsyncsubscriptions"
    conflicts: str = "dualsyncconflicts"

    @classmethod
    def from_settings(cls, storage: StorageSettings) -> TableNames:
        return cls(**storage.table_names())

    @classmethod
    def with_prefix(cls, prefix: str) -> TableNames:
        """Names `<prefix>couplings` … (tests use a unique prefix each)."""
        return cls(*(prefix + name for name in ("couplings", "watermarks", "jobs", "errors", "subscriptions",
                                                "conflicts")))

    def as_dict(self) -> Mapping[str, str]:
        return {"couplings": self.couplings, "watermarks": self.watermarks, "jobs": self.jobs,
                "errors": self.errors, "subscriptions": self.subscriptions, "conflicts": self.conflicts}


class StateStore:
    """`store.couplings`, `.watermarks`, `.jobs`, `.errors`, `.subscriptions`, `.conflicts` over one service
    client, and `.pauses` (paused mappings, kept in the watermarks table).

    The caller owns `service` (and closes it); call `ensure_tables()` once at start-up to create missing
    tables. Use one StateStore per event loop: the aio clients are bound to the loop they first ran on.
    """

    def __init__(self, service: TableServiceClient, names: TableNames | None = None, *,
                 redactor: Redactor | None = None, partition_rate: float | None = DEFAULT_PARTITION_RATE) -> None:
        self.service = service
        self.names = names or TableNames()
        table = service.get_table_client
        self.couplings = CouplingStore(table(self.names.couplings), partition_rate=partition_rate)
        self.watermarks = WatermarkStore(table(self.names.watermarks))
        self.jobs = JobStore(table(self.names.jobs))
        self.errors = ErrorStore(table(self.names.errors), redactor=redactor)
        self.subscriptions = SubscriptionStore(table(self.names.subscriptions))
        self.conflicts = ConflictStore(table(self.names.conflicts), redactor=redactor)
        self.pauses = PauseStore(table(self.names.watermarks))

    async def ensure_tables(self) -> None:
        """Create every table that does not exist yet (idempotent)."""
        for name in self.names.as_dict().values():
            await self.service.create_table_if_not_exists(name)


# aiohttp looks for a proxy and a .netrc in the environment on every request when told to trust it (a thread
# pool hop each time: a few per cent of a live change's CPU); Table storage is reached directly.
CLIENT_OPTIONS = {"use_env_settings": False}


def service_from_settings(storage: StorageSettings) -> TableServiceClient:
    """A TableServiceClient from a connection string, or from the account URL with the managed identity."""
    if storage.connection_string is not None and storage.connection_string.get_secret_value():
        return TableServiceClient.from_connection_string(storage.connection_string.get_secret_value(),
                                                         **CLIENT_OPTIONS)
    from azure.identity.aio import DefaultAzureCredential  # only in Azure: managed identity

    assert storage.account_url is not None  # guaranteed by StorageSettings validation
    return TableServiceClient(endpoint=storage.account_url, credential=DefaultAzureCredential(), **CLIENT_OPTIONS)
