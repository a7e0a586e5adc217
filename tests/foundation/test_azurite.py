"""Smoke test: the Azurite fixture gives a real Table-storage server that azure-data-tables can use."""

from __future__ import annotations

import pytest
from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError
from azure.data.tables import TableServiceClient, UpdateMode

pytestmark = pytest.mark.azurite


def test_write_and_read_an_entity(table_connection_string: str, table_prefix: str) -> None:
    service = TableServiceClient.from_connection_string(table_connection_string)
    table = service.create_table(f"{table_prefix}smoke")
    table.create_entity({"PartitionKey": "customers", "RowKey": "erp:42", "name": "Adatum", "count": 3})

    entity = table.get_entity("customers", "erp:42")

    assert entity["name"] == "Adatum"
    assert entity["count"] == 3
    assert entity.metadata["etag"]


def test_etag_guarded_update_refuses_a_stale_writer(table_connection_string: str, table_prefix: str) -> None:
    table = TableServiceClient.from_connection_string(table_connection_string).create_table(f"{table_prefix}etag")
    table.create_entity({"PartitionKey": "p", "RowKey": "r", "v": 1})
    first = table.get_entity("p", "r")
    table.update_entity({"PartitionKey": "p", "RowKey": "r", "v": 2}, mode=UpdateMode.MERGE,
                        etag=first.metadata["etag"], match_condition=MatchConditions.IfNotModified)

    with pytest.raises(ResourceModifiedError):
        table.update_entity({"PartitionKey": "p", "RowKey": "r", "v": 3}, mode=UpdateMode.MERGE,
                            etag=first.metadata["etag"], match_condition=MatchConditions.IfNotModified)
    assert table.get_entity("p", "r")["v"] == 2
