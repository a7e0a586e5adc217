"""Deterministic seed data: the same seed and record count give the same environment. Three legal entities
(USMF, DEMF, GBSI), currencies, customer/vendor groups and payment terms per company; N customers in USMF
and N/4 in DEMF and GBSI (organisations and persons), one account (`C-1001`) that exists in both USMF and
DEMF, vendors, contact persons, released products and a few quotations, orders and invoices with lines.
Everything goes through writes.insert, so number sequences continue after the seeded numbers."""

from __future__ import annotations

from typing import Any

from emulators.common.fakedata import FakeData
from emulators.finance_operations import writes
from emulators.finance_operations.core import SYSTEM_ACTOR, Emulator

# (id, name, country, currency)
LEGAL_ENTITIES = [("USMF", "Contoso Entertainment System USA", "USA", "USD"),
                  ("DEMF", "Contoso Entertainment System Germany", "DEU", "EUR"),
                  ("GBSI", "Contoso Entertainment System UK", "GBR", "GBP")]
CURRENCIES = [("USD", "US Dollar", "$"), ("EUR", "Euro", "€"), ("GBP", "Pound Sterling", "£"),
              ("DKK", "Danish Krone", "kr."), ("SEK", "Swedish Krona", "kr"), ("CAD", "Canadian Dollar", "CA$")]
CUSTOMER_GROUPS = [("10", "Wholesale customers"), ("20", "Major customers"), ("30", "Retail customers"),
                   ("90", "Intercompany customers")]
VENDOR_GROUPS = [("10", "Parts vendors"), ("20", "Service vendors"), ("30", "Other vendors")]
PAYMENT_TERMS = [("Net10", "Net 10 days", 10), ("Net30", "Net 30 days", 30), ("Net45", "Net 45 days", 45)]
SHARED_ACCOUNT = "C-1001"
_COUNTRY = {"usmf": ("USA", "USD"), "demf": ("DEU", "EUR"), "gbsi": ("GBR", "GBP")}


def reseed(emu: Emulator, records: int, seed: int) -> None:
    """Replace every table's content and restart number sequences. No data events fire."""
    store = emu.store
    with store.lock:
        listeners, store.listeners = store.listeners, []
        try:
            for table in store.tables.values():
                table.clear()
            store.changes.clear()
            emu.sequences.clear()
            _Seeder(emu, FakeData(seed)).run(records)
        finally:
            store.listeners = listeners


class _Seeder:
    def __init__(self, emu: Emulator, fake: FakeData) -> None:
        self.emu = emu
        self.fake = fake

    def add(self, entity_set: str, body: dict[str, Any]) -> dict[str, Any]:
        return writes.insert(self.emu, self.emu.entities[entity_set], body, SYSTEM_ACTOR, trusted=True)

    def run(self, records: int) -> None:
        for code, name, country, currency in LEGAL_ENTITIES:
            self.add("LegalEntities", {"LegalEntityId": code, "Name": name, "AddressCountryRegionId": country,
                                       "CurrencyCode": currency})
        for code, name, symbol in CURRENCIES:
            self.add("Currencies", {"CurrencyCode": code, "Name": name, "Symbol": symbol})
        for company in ("usmf", "demf", "gbsi"):
            for term, desc, days in PAYMENT_TERMS:
                self.add("PaymentTerms", {"dataAreaId": company, "Name": term, "Description": desc,
                                          "NumberOfDays": days})
            for group, desc in CUSTOMER_GROUPS:
                self.add("CustomerGroups", {"dataAreaId": company, "CustomerGroupId": group, "Description": desc,
                                            "PaymentTermId": "Net30"})
            for group, desc in VENDOR_GROUPS:
                self.add("VendorGroups", {"dataAreaId": company, "VendorGroupId": group, "Description": desc})
        products = {c: [self._product(c, i) for i in range(max(4, records // 5))] for c in ("usmf", "demf", "gbsi")}
        for company, share in (("usmf", 1.0), ("demf", 0.25), ("gbsi", 0.25)):
            n = int(records * share) if company == "usmf" else max(2, int(records * share)) if records else 0
            customers = [self._customer(company, i) for i in range(n)]
            if company in ("usmf", "demf"):
                customers.append(self._customer(company, 0, account=SHARED_ACCOUNT))
            # Contact persons work for organisations; a person customer is its own contact.
            organisations = [c for c in customers if c["PartyType"] == "Organization"]
            for i, c in enumerate(organisations[: max(1, len(organisations) // 2)]):
                self._contact(company, c["CustomerAccount"], i)
            for i in range(max(1, n // 5) if n else 0):
                self._vendor(company, i)
            self._documents(company, customers[:3], products[company])

    def _customer(self, company: str, i: int, account: str | None = None) -> dict[str, Any]:
        f = self.fake
        addr, phone = f.address()
        country, currency = _COUNTRY[company]
        body: dict[str, Any] = {"dataAreaId": company, "CustomerGroupId": ["10", "20", "30"][i % 3],
                                "SalesCurrencyCode": currency, "PaymentTerms": "Net30",
                                "AddressStreet": addr.line1, "AddressCity": addr.city,
                                "AddressZipCode": addr.postal_code, "AddressCountryRegionId": country,
                                "AddressState": addr.state,
                                "PrimaryContactPhone": phone, "CreditLimit": float(f.rng.choice([0, 5000, 25000]))}
        if account:
            body["CustomerAccount"] = account
        if i % 4 == 3 and not account:
            first, last = f.person()
            body.update({"PartyType": "Person", "PersonFirstName": first, "PersonLastName": last,
                         "PrimaryContactEmail": f.email(first, last, "example.com")})
        else:
            name = f.company()
            body.update({"PartyType": "Organization", "OrganizationName": name, "NameAlias": name.split(" ")[0],
                         "PrimaryContactEmail": f"info@{f.domain(name)}", "PrimaryContactURL": f"https://{f.domain(name)}"})
        return self.add("CustomersV3", body)

    def _contact(self, company: str, account: str, i: int) -> None:
        first, last = self.fake.person()
        self.add("ContactPersonsV2", {"dataAreaId": company, "FirstName": first, "LastName": last,
                                      "JobTitle": ["Purchasing Manager", "CEO", "Buyer"][i % 3],
                                      "PrimaryEmailAddress": self.fake.email(first, last, "example.com"),
                                      "ContactForParty": account})

    def _vendor(self, company: str, i: int) -> None:
        addr, phone = self.fake.address()
        name = self.fake.company()
        self.add("VendorsV2", {"dataAreaId": company, "VendorOrganizationName": name,
                               "VendorGroupId": VENDOR_GROUPS[i % 3][0], "CurrencyCode": _COUNTRY[company][1],
                               "AddressStreet": addr.line1, "AddressCity": addr.city,
                               "AddressZipCode": addr.postal_code, "AddressCountryRegionId": _COUNTRY[company][0],
                               "PrimaryPhoneNumber": phone,
                               "PrimaryEmailAddress": f"sales@{self.fake.domain(name)}"})

    def _product(self, company: str, i: int) -> dict[str, Any]:
        number = f"D{i + 1:04d}"  # the same item numbers in every company, as released products usually are
        service = i % 7 == 6
        return self.add("CDSReleasedDistinctProducts", {
            "dataAreaId": company, "ProductNumber": number, "ItemNumber": number,
            "ProductName": "Installation service" if service else self.fake.item().title(),
            "ProductType": "Service" if service else "Item", "SalesPrice": self.fake.price(20, 900),
            "SalesUnitSymbol": "hr" if service else "ea"})

    def _documents(self, company: str, customers: list[dict[str, Any]], products: list[dict[str, Any]]) -> None:
        rng = self.fake.rng
        for c in customers:
            account, currency = c["CustomerAccount"], c["SalesCurrencyCode"]
            quote = self.add("SalesQuotationHeadersV2", {"dataAreaId": company, "QuotationCustomerAccount": account,
                                                         "InvoiceCustomerAccount": account, "CurrencyCode": currency,
                                                         "SalesQuotationName": c["OrganizationName"],
                                                         "RequestedShippingDate": "2025-03-01"})
            order = self.add("SalesOrderHeadersV2", {"dataAreaId": company, "OrderingCustomerAccountNumber": account,
                                                     "InvoiceCustomerAccountNumber": account, "CurrencyCode": currency,
                                                     "SalesOrderName": c["OrganizationName"],
                                                     "SalesOrderStatus": "Invoiced"})
            invoice_lines = []
            for n in range(1, 3):
                p = rng.choice(products)
                qty = float(rng.randint(1, 10))
                base = {"dataAreaId": company, "LineNumber": float(n), "ItemNumber": p["ProductNumber"],
                        "SalesPrice": p["SalesPrice"], "SalesUnitSymbol": p["SalesUnitSymbol"]}
                self.add("SalesQuotationLines", {**base, "SalesQuotationNumber": quote["SalesQuotationNumber"],
                                                 "RequestedSalesQuantity": qty})
                self.add("SalesOrderLines", {**base, "SalesOrderNumber": order["SalesOrderNumber"],
                                             "OrderedSalesQuantity": qty})
                invoice_lines.append({**base, "InvoicedQuantity": qty, "ProductName": p["ProductName"]})
            total = round(sum(ln["InvoicedQuantity"] * ln["SalesPrice"] for ln in invoice_lines), 2)
            invoice = self.add("SalesInvoiceHeadersV2", {
                "dataAreaId": company, "SalesOrderNumber": order["SalesOrderNumber"],
                "InvoiceCustomerAccountNumber": account, "CurrencyCode": currency, "InvoiceDate": "2025-03-05",
                "TotalInvoiceAmount": total})
            for ln in invoice_lines:
                self.add("SalesInvoiceLines", {**ln, "InvoiceNumber": invoice["InvoiceNumber"]})
