"""What the Functions host will index for each pack, and the bindings Azure reads from it."""

from __future__ import annotations

import json
import os

import azure.functions as func
import pytest

import function_app
from emulators.functions_host import index_functions
from function_app import ROOT, app, build_app
from shared.mapping import load_pack
from shared.settings import SettingsError

# Written out from the packs by hand: every (system, entity) a pack syncs FROM, for systems with webhooks.
EXPECTED_WEBHOOKS = {
    "bc-sales": {
        "webhook_business_central_contacts", "webhook_business_central_currencies",
        "webhook_business_central_customers", "webhook_business_central_items",
        "webhook_business_central_opportunities", "webhook_business_central_salesInvoiceLines",
        "webhook_business_central_salesInvoices", "webhook_business_central_salesOrders",
        "webhook_business_central_unitsOfMeasure",
        "webhook_dataverse_accounts", "webhook_dataverse_contacts", "webhook_dataverse_opportunities",
        "webhook_dataverse_products", "webhook_dataverse_salesorders", "webhook_dataverse_systemusers",
    },
    # F&O data events arrive at one endpoint per data entity the pack reads from F&O.
    "fo-dataverse": {"webhook_dataverse_accounts", "webhook_dataverse_contacts",
                     "webhook_dataverse_msdyn_customergroups", "webhook_dataverse_msdyn_vendors",
                     "webhook_dataverse_msdyn_paymentterms", "webhook_finance_operations_PaymentTerms",
                     "webhook_finance_operations_CDSReleasedDistinctProducts",
                     "webhook_finance_operations_LegalEntities", "webhook_finance_operations_Currencies",
                     "webhook_finance_operations_CustomerGroups", "webhook_finance_operations_CustomersV3",
                     "webhook_finance_operations_VendorsV2", "webhook_finance_operations_ContactPersonsV2"},
    "prospect-to-cash": {"webhook_dataverse_accounts", "webhook_dataverse_contacts", "webhook_dataverse_quotes",
                         "webhook_dataverse_quotedetails",
                         "webhook_finance_operations_CDSReleasedDistinctProducts",
                         "webhook_finance_operations_SalesOrderHeadersV2",
                         "webhook_finance_operations_SalesOrderLines",
                         "webhook_finance_operations_SalesInvoiceHeadersV2",
                         "webhook_finance_operations_SalesInvoiceLines"},
}


def _functions(pack_name: str) -> dict[str, func.decorators.function_app.Function]:
    built = build_app(load_pack(ROOT / "templates" / f"{pack_name}.yaml"))
    return {f.get_function_name(): f for f in built.get_functions()}


@pytest.mark.parametrize("pack_name", sorted(EXPECTED_WEBHOOKS))
def test_every_pack_gets_its_webhooks_and_the_processor(pack_name: str) -> None:
    functions = _functions(pack_name)
    webhooks = {name for name in functions if name.startswith("webhook_")}
    assert webhooks == EXPECTED_WEBHOOKS[pack_name]
    assert {"health", "processor"} <= set(functions)
    for name in webhooks:
        trigger = functions[name].get_trigger()
        system = next(s for s in ("business_central", "finance_operations", "dataverse")
                      if name.startswith(f"webhook_{s}_"))
        entity = name.removeprefix(f"webhook_{system}_")
        assert trigger.route == f"webhooks/{system}/{entity}"
        assert [str(m.value) for m in trigger.methods] == ["POST"]
        # The caller proves itself with the webhook's shared secret, checked by the function itself.
        assert trigger.auth_level == func.AuthLevel.ANONYMOUS


def test_disabled_mappings_get_no_webhook() -> None:
    # bc-sales' resources mapping is disabled and is the only one reading BC resources.
    assert "webhook_business_central_resources" not in _functions("bc-sales")


def test_processor_is_a_session_enabled_queue_trigger() -> None:
    trigger = _functions("bc-sales")["processor"].get_trigger()
    assert trigger.type == "serviceBusTrigger"
    assert trigger.is_sessions_enabled is True
    assert trigger.queue_name == "%DUALSYNC_QUEUE__NAME%"
    assert trigger.connection == "DUALSYNC_SERVICEBUS"


def test_the_module_level_app_is_the_default_pack() -> None:
    names = {f.get_function_name() for f in index_functions(app)}
    assert EXPECTED_WEBHOOKS["bc-sales"] <= names


def test_host_json_tunes_service_bus_sessions() -> None:
    host = json.loads((ROOT / "host.json").read_text())
    service_bus = host["extensions"]["serviceBus"]
    assert service_bus["maxConcurrentSessions"] >= 1
    assert service_bus["autoCompleteMessages"] is True  # a raised exception abandons → redelivery → DLQ
    # A lock must outlive the longest sync of one record, i.e. the function timeout.
    assert service_bus["maxAutoLockRenewalDuration"] >= host["functionTimeout"]


def test_in_azure_a_missing_setting_stops_the_app_at_start_naming_it(monkeypatch) -> None:
    for name in [n for n in os.environ if n.startswith("DUALSYNC_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("DUALSYNC_ERP__CLIENT_SECRET", "not-to-be-shown")
    function_app.check_settings_at_start()  # outside Azure: nothing checked at import
    monkeypatch.setenv("FUNCTIONS_WORKER_RUNTIME", "python")
    with pytest.raises(SettingsError) as caught:
        function_app.check_settings_at_start()
    assert "DUALSYNC_ERP__TENANT_ID" in str(caught.value) and "DUALSYNC_CRM__BASE_URL" in str(caught.value)
    assert "not-to-be-shown" not in str(caught.value)
