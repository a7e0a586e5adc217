"""Fixtures shared by the whole suite."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from emulators.common.tls import trust_local_ca
from tests.support.azurite import Azurite

# The emulators serve HTTPS with the local CA, as the services do; trust it before any HTTPS client exists
# (aiohttp, which azure-identity uses, reads the trusted roots when it is imported).
trust_local_ca()


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """One Azurite Table server for the test session, started on a free port and stopped afterwards."""
    with Azurite() as server:
        yield server


@pytest.fixture
def table_connection_string(azurite: Azurite) -> str:
    return azurite.connection_string


@pytest.fixture
def table_prefix() -> str:
    """A unique table-name prefix per test, so tests sharing one Azurite never see each other's rows."""
    return "t" + uuid.uuid4().hex[:10]
