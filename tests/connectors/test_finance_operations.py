"""The F&O connector against the F&O emulator over HTTP: composite keys across legal entities, writes with
If-Match, F&O's own refusals as clear errors, multipart `$batch` and service protection."""

from __future__ import annotations

import httpx
import pytest

from shared.connectors import ConcurrencyConflict, NotFound, PermanentError, WriteOp
from shared.connectors.finance_operations import FinanceOperationsConnector
from tests.support.connectors import FO_URL, Sent, configure

CUSTOMER = {"dataAreaId": "usmf", "CustomerGroupId": "10", "PartyType": "Organization",
            "OrganizationName": "Northwind Traders", "SalesCurrencyCode": "USD"}


async def everything(fo: FinanceOperationsConnector, entity: str, **kwargs: object) -> list:
    return [r async for page in fo.list(entity, **kwargs) for r in page]  # type: ignore[arg-type]


async def test_reads_span_every_legal_entity_with_cross_company(fo: FinanceOperationsConnector, sent: Sent) -> None:
    customers = await everything(fo, "CustomersV3", select=["OrganizationName"], page_size=4)
    companies = {r.values["dataAreaId"] for r in customers}
    assert companies == {"usmf", "demf", "gbsi"}
    assert all("cross-company=true" in str(r.url) for r in sent.to("/data/CustomersV3", "GET"))
    # The same account number in two legal entities is two records with two ids.
    shared = [r for r in customers if r.values["CustomerAccount"] == "C-1001"]
    assert sorted(r.id for r in shared) == ["dataAreaId='demf',CustomerAccount='C-1001'",
                                            "dataAreaId='usmf',CustomerAccount='C-1001'"]
    assert len({r.id for r in customers}) == len(customers)
    only = await everything(fo, "CustomersV3", filter="dataAreaId eq 'demf'")
    assert only and {r.values["dataAreaId"] for r in only} == {"demf"}


async def test_create_read_update_delete_on_a_composite_key(fo: FinanceOperationsConnector) -> None:
    created = await fo.create("CustomersV3", {**CUSTOMER, "CustomerAccount": "N/1 O'Hara & Sons"})
    assert created.id == "dataAreaId='usmf',CustomerAccount='N/1 O''Hara & Sons'"
    assert created.etag and created.values["OrganizationName"] == "Northwind Traders"
    read = await fo.get("CustomersV3", created.id)
    assert read.values == created.values and read.etag == created.etag
    updated = await fo.update("CustomersV3", created.id, {"AddressCity": "Seattle"}, etag=created.etag)
    assert updated.values["AddressCity"] == "Seattle" and updated.etag != created.etag
    with pytest.raises(ConcurrencyConflict):
        await fo.update("CustomersV3", created.id, {"AddressCity": "Tacoma"}, etag=created.etag)
    await fo.delete("CustomersV3", created.id, etag=updated.etag)
    await fo.delete("CustomersV3", created.id)  # already gone: fine
    with pytest.raises(NotFound):
        await fo.get("CustomersV3", created.id)


async def test_a_blank_account_number_takes_the_companys_number_sequence(fo: FinanceOperationsConnector) -> None:
    us = await fo.create("CustomersV3", CUSTOMER)
    de = await fo.create("CustomersV3", {**CUSTOMER, "dataAreaId": "demf", "SalesCurrencyCode": "EUR"})
    assert us.values["CustomerAccount"].startswith("US-") and de.values["CustomerAccount"].startswith("DE-")
    assert us.id.startswith("dataAreaId='usmf'") and de.id.startswith("dataAreaId='demf'")


async def test_fo_refusals_carry_fo_s_own_message(fo: FinanceOperationsConnector) -> None:
    with pytest.raises(PermanentError) as missing:
        await fo.create("CustomersV3", {k: v for k, v in CUSTOMER.items() if k != "CustomerGroupId"})
    assert "Customer group" in missing.value.message and missing.value.code == "AxODataWriteException"
    with pytest.raises(PermanentError) as unknown:
        await fo.create("CustomersV3", {**CUSTOMER, "CustomerGroupId": "77"})
    assert "77" in unknown.value.message


async def test_batch_creates_and_updates_with_one_refusal_in_the_middle(fo: FinanceOperationsConnector) -> None:
    existing = (await everything(fo, "CustomersV3", filter="dataAreaId eq 'gbsi'"))[0]
    ops = [WriteOp("create", "CustomersV3", {**CUSTOMER, "CustomerAccount": "B-1"}, ref="a"),
           WriteOp("create", "CustomersV3", {**CUSTOMER, "CustomerAccount": "B-2", "CustomerGroupId": "77"}, ref="b"),
           WriteOp("update", "CustomersV3", {"AddressCity": "Leeds"}, id=existing.id, etag=existing.etag, ref="c")]
    results = await fo.write_batch(ops)
    assert [r.ok for r in results] == [True, False, True]
    assert results[0].record is not None and results[0].record.id == "dataAreaId='usmf',CustomerAccount='B-1'"
    assert "77" in (results[1].error.message if results[1].error else "")
    assert (await fo.get("CustomersV3", existing.id)).values["AddressCity"] == "Leeds"


async def test_an_atomic_batch_is_all_or_nothing(fo: FinanceOperationsConnector) -> None:
    ops = [WriteOp("create", "CustomersV3", {**CUSTOMER, "CustomerAccount": "T-1"}),
           WriteOp("create", "CustomersV3", {**CUSTOMER, "CustomerAccount": "T-2", "CustomerGroupId": "77"})]
    results = await fo.write_batch(ops, atomic=True)
    assert not any(r.ok for r in results)
    with pytest.raises(NotFound):
        await fo.get("CustomersV3", "dataAreaId='usmf',CustomerAccount='T-1'")


async def test_keyset_pages_resume_after_a_composite_key(fo: FinanceOperationsConnector) -> None:
    orderby, _ = fo.keyset("CustomersV3", None)
    ordered = await everything(fo, "CustomersV3", orderby=orderby, page_size=5)
    middle = ordered[len(ordered) // 2]
    _, after = fo.keyset("CustomersV3", middle.id)
    rest = await everything(fo, "CustomersV3", orderby=orderby, filter=after)
    assert [r.id for r in rest] == [r.id for r in ordered[len(ordered) // 2 + 1:]]


async def test_throttling_is_waited_out(fo: FinanceOperationsConnector, fo_http: httpx.AsyncClient,
                                        sent: Sent) -> None:
    await configure(fo_http, FO_URL, limits={"window_requests": 3, "window_seconds": 0.3})
    for _ in range(6):
        await fo.get("Currencies", "CurrencyCode='USD'")
    assert len(sent.to("Currencies", "GET")) > 6  # some were refused with 429 + Retry-After, then retried


async def test_a_taken_key_is_already_exists_so_the_engine_couples_instead(fo: FinanceOperationsConnector) -> None:
    from shared.connectors import AlreadyExists
    with pytest.raises(AlreadyExists, match="already exists"):
        await fo.create("CustomersV3", {**CUSTOMER, "CustomerAccount": "C-1001"})
    [result] = await fo.write_batch([WriteOp("create", "CustomersV3", {**CUSTOMER, "CustomerAccount": "C-1001"})])
    assert isinstance(result.error, AlreadyExists)
