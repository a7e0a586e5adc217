from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from azure.data.tables.aio import TableServiceClient

from shared.http.redact import Redactor
from shared.state import StateStore, TableNames


@pytest.fixture
async def store(table_connection_string: str, table_prefix: str) -> AsyncIterator[StateStore]:
    async with TableServiceClient.from_connection_string(table_connection_string) as service:
        state = StateStore(service, TableNames.with_prefix(table_prefix), redactor=Redactor(["s3cr3t-value"]))
        await state.ensure_tables()
        yield state
