"""CRONUS-like seed data: two companies with reference data (currencies by ISO code, payment terms,
shipment methods, units of measure, salespeople) and `records` customers with their contacts, plus vendors,
items, opportunities, sales orders and invoices with lines. The same (records, seed) gives the same data.

Rows are written straight to the store (not through the API), consistent by construction; the reference
checks of the API are not needed for data the emulator builds itself.
"""

from __future__ import annotations

from typing import Any

from emulators.business_central.schema import ENTITY_SETS, format_number
from emulators.business_central.state import COMPANY, SYSTEM_ACTOR, Environment
from emulators.common.fakedata import FakeData

CURRENCIES = [("USD", "US dollar", "$"), ("EUR", "Euro", "€"), ("GBP", "British pound", "£"),
              ("DKK", "Danish krone", "kr"), ("NOK", "Norwegian krone", "kr"), ("SEK", "Swedish krona", "kr"),
              ("CAD", "Canadian dollar", "$"), ("CHF", "Swiss franc", "CHF"), ("JPY", "Japanese yen", "¥")]
PAYMENT_TERMS = [("14 DAYS", "Net 14 days", "14D"), ("30 DAYS", "Net 30 days", "30D"),
                 ("60 DAYS", "Net 60 days", "60D"), ("7 DAYS", "Net 7 days", "7D"),
                 ("1M(8D)", "1 Month/2% 8 days", "1M"), ("CM", "Current month", "CM"),
                 ("COD", "Cash on delivery", "0D")]
SHIPMENT_METHODS = [("EXW", "Ex Works"), ("FOB", "Free on Board"), ("CIF", "Cost Insurance and Freight"),
                    ("CFR", "Cost and Freight"), ("DDP", "Delivered Duty Paid"), ("DAP", "Delivered at Place"),
                    ("PICKUP", "Pickup at Location")]
UNITS = [("PCS", "Piece", "C62"), ("BOX", "Box", "BX"), ("HOUR", "Hour", "HUR"), ("DAY", "Day", "DAY"),
         ("KG", "Kilogram", "KGM"), ("SET", "Set", "SET"), ("PACK", "Pack", "PK")]
# Customer currency by country; "" is the company's local currency (USD in CRONUS USA).
COUNTRY_CURRENCY = {"US": "", "GB": "GBP", "DK": "DKK", "NO": "NOK", "SE": "SEK", "DE": "EUR", "FR": "EUR",
                    "NL": "EUR"}
_JOBS = ["Purchasing Manager", "Sales Manager", "Accountant", "CEO", "Office Manager", "IT Manager",
         "Production Manager", "Buyer"]
_TOPICS = ["Office furniture for new branch", "Conference room refit", "Reception area", "Yearly chair renewal",
           "Storage upgrade", "Home office packages"]


class _Seeder:
    def __init__(self, env: Environment, fake: FakeData, company: str) -> None:
        self.env, self.fake, self.company = env, fake, company
        self.counters: dict[str, int] = {}

    def put(self, entity: str, values: dict[str, Any]) -> dict[str, Any]:
        spec = ENTITY_SETS[entity]
        record = {name: f.default for name, f in spec.fields.items() if name != "id"}
        if spec.series is not None and "number" not in values:
            _, first, step = spec.series
            n = self.counters[entity] = self.counters.get(entity, first - step) + step
            record["number"] = format_number(spec, n)
            self.env.number_series[(self.company, entity)] = n
        record.update(values)
        record["id"] = self.fake.guid()
        record[COMPANY] = self.company
        return self.env.store.table(entity).insert(record, SYSTEM_ACTOR)


def seed(env: Environment, records: int, seed_value: int) -> None:
    """Fill an empty environment."""
    fake = FakeData(seed_value)
    companies = [("CRONUS USA, Inc.", records), ("CRONUS International Ltd.", max(records // 5, min(records, 2)))]
    for name, n in companies:
        cid = fake.guid()
        env.store.table("companies").insert({"id": cid, "name": name, "displayName": name, "businessProfileId": "",
                                             "timestamp": 0}, SYSTEM_ACTOR)
        _seed_company(_Seeder(env, fake, cid), n)


def _seed_company(s: _Seeder, n: int) -> None:
    f, r = s.fake, s.fake.rng
    cur = {code: s.put("currencies", {"code": code, "displayName": name, "symbol": sym, "amountDecimalPlaces": "2:2",
                                      "amountRoundingPrecision": 0.01}) for code, name, sym in CURRENCIES}
    terms = [s.put("paymentTerms", {"code": c, "displayName": d, "dueDateCalculation": due})
             for c, d, due in PAYMENT_TERMS]
    ships = [s.put("shipmentMethods", {"code": c, "displayName": d}) for c, d in SHIPMENT_METHODS]
    uoms = {c: s.put("unitsOfMeasure", {"code": c, "displayName": d, "internationalStandardCode": iso, "symbol": ""})
            for c, d, iso in UNITS}
    people = []
    for _ in range(5):
        first, last = f.person()
        code = (first[0] + last[0]).upper()
        while any(p["code"] == code for p in people):
            code += str(len(people))
        people.append(s.put("salespeoplePurchasers", {
            "code": code, "displayName": f"{first} {last}", "email": f.email(first, last, "cronus.example.com"),
            "phoneNo": f.address()[1], "jobTitle": r.choice(["Sales Manager", "Account Manager", "Purchaser"]),
            "commisionPercent": float(r.choice([0, 2, 2.5, 5]))}))
    customers, persons = [], []
    for _ in range(n):
        addr, phone = f.address()
        is_person = r.random() < 0.1
        first, last = f.person()
        name = f"{first} {last}" if is_person else f.company()
        domain = f.domain(name)
        code = COUNTRY_CURRENCY.get(addr.country, "EUR")
        cust = s.put("customers", {
            "displayName": name, "type": "Person" if is_person else "Company", "addressLine1": addr.line1,
            "city": addr.city, "state": addr.state, "country": addr.country, "postalCode": addr.postal_code,
            "phoneNumber": phone, "email": f.email(first, last, domain) if is_person else f"info@{domain}",
            "website": "" if is_person else f"www.{domain}", "salespersonCode": r.choice(people)["code"],
            "creditLimit": float(r.choice([0, 5000, 10000, 25000, 50000])), "taxLiable": addr.country == "US",
            "currencyId": cur[code]["id"] if code else "00000000-0000-0000-0000-000000000000",
            "currencyCode": code, "paymentTermsId": r.choice(terms)["id"], "shipmentMethodId": r.choice(ships)["id"],
            "blocked": r.choices([" ", "Ship", "Invoice", "All"], weights=[90, 4, 3, 3])[0]})
        customers.append(cust)
        contact_base = {"addressLine1": addr.line1, "city": addr.city, "state": addr.state, "country": addr.country,
                        "postalCode": addr.postal_code, "phoneNumber": phone}
        if is_person:
            persons.append(s.put("contacts", {**contact_base, "type": "Person", "displayName": name,
                                              "email": cust["email"], "searchName": name.upper(),
                                              "businessRelation": "Customer"}))
            continue
        comp = s.put("contacts", {**contact_base, "type": "Company", "displayName": name, "companyName": name,
                                  "email": cust["email"], "website": cust["website"], "searchName": name.upper(),
                                  "businessRelation": "Customer"})
        s.env.store.table("contacts").update(comp["id"], {"companyNumber": comp["number"]}, SYSTEM_ACTOR)
        for _ in range(r.randint(1, 2)):
            pf, pl = f.person()
            persons.append(s.put("contacts", {
                **contact_base, "type": "Person", "displayName": f"{pf} {pl}", "companyNumber": comp["number"],
                "companyName": name, "jobTitle": r.choice(_JOBS), "email": f.email(pf, pl, domain),
                "mobilePhoneNumber": f.address()[1], "searchName": f"{pf} {pl}".upper()}))
    for _ in range(max(n // 2, 1) if n else 0):
        addr, phone = f.address()
        name = f.company()
        code = COUNTRY_CURRENCY.get(addr.country, "EUR")
        s.put("vendors", {"displayName": name, "addressLine1": addr.line1, "city": addr.city, "state": addr.state,
                          "country": addr.country, "postalCode": addr.postal_code, "phoneNumber": phone,
                          "email": f"orders@{f.domain(name)}", "website": f"www.{f.domain(name)}",
                          "currencyId": cur[code]["id"] if code else "00000000-0000-0000-0000-000000000000",
                          "currencyCode": code, "paymentTermsId": r.choice(terms)["id"]})
    items = []
    for i in range(n):
        service = i % 10 == 9
        uom = uoms["HOUR" if service else r.choice(["PCS", "PCS", "BOX", "SET"])]
        price = f.price(40, 90) if service else f.price(25, 1500)
        items.append(s.put("items", {
            "displayName": "Installation service" if service else f.item(), "type": "Service" if service else
            "Inventory", "unitPrice": price, "unitCost": round(price * 0.6, 2), "baseUnitOfMeasureId": uom["id"],
            "baseUnitOfMeasureCode": uom["code"], "inventory": 0.0 if service else float(r.randint(0, 400)),
            "taxGroupCode": "LABOR" if service else "FURNITURE"}))
    for _ in range(n // 5 if persons else 0):
        contact = r.choice(persons)
        status = r.choice(["Not Started", "In Progress", "In Progress", "Won", "Lost"])
        s.put("opportunities", {
            "contactNumber": contact["number"], "contactName": contact["displayName"],
            "contactCompanyName": contact.get("companyName", ""), "salespersonCode": r.choice(people)["code"],
            "description": r.choice(_TOPICS), "status": status, "closed": status in ("Won", "Lost"),
            "creationDate": f"2024-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}",
            "estimatedValue": float(r.randint(5, 200) * 100), "chancesOfSuccessPrc": float(r.choice([25, 50, 75]))})
    if customers and items:
        _documents(s, customers, items, max(n // 5, 1))


def _documents(s: _Seeder, customers: list[dict[str, Any]], items: list[dict[str, Any]], n: int) -> None:
    r = s.fake.rng
    balance: dict[str, float] = {}
    for kind, lines_kind, date_field in [("salesOrders", "salesOrderLines", "orderDate"),
                                         ("salesInvoices", "salesInvoiceLines", "invoiceDate")]:
        for _ in range(n):
            cust = r.choice(customers)
            date = f"2025-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}"
            doc = s.put(kind, {
                "customerId": cust["id"], "customerNumber": cust["number"], "customerName": cust["displayName"],
                "billToCustomerId": cust["id"], "billToCustomerNumber": cust["number"],
                "billToName": cust["displayName"], "shipToName": cust["displayName"],
                "sellToAddressLine1": cust["addressLine1"], "sellToCity": cust["city"],
                "sellToCountry": cust["country"], "sellToState": cust["state"],
                "sellToPostCode": cust["postalCode"], "currencyId": cust["currencyId"],
                "currencyCode": cust["currencyCode"], "paymentTermsId": cust["paymentTermsId"],
                "shipmentMethodId": cust["shipmentMethodId"], "salesperson": cust["salespersonCode"],
                date_field: date, "postingDate": date, "status": "Open" if kind == "salesInvoices" else "Draft",
                "phoneNumber": cust["phoneNumber"], "email": cust["email"]})
            total = 0.0
            for seq in range(1, r.randint(2, 4)):
                item = r.choice(items)
                qty = float(r.randint(1, 12))
                amount = round(qty * item["unitPrice"], 2)
                total += amount
                s.put(lines_kind, {
                    "documentId": doc["id"], "sequence": seq * 10000, "lineType": "Item", "itemId": item["id"],
                    "lineObjectNumber": item["number"], "description": item["displayName"],
                    "unitOfMeasureId": item["baseUnitOfMeasureId"], "unitOfMeasureCode": item["baseUnitOfMeasureCode"],
                    "quantity": qty, "unitPrice": item["unitPrice"], "amountExcludingTax": amount,
                    "netAmount": amount, "amountIncludingTax": amount, "netAmountIncludingTax": amount})
            total = round(total, 2)
            s.env.store.table(kind).update(doc["id"], {"totalAmountExcludingTax": total,
                                                       "totalAmountIncludingTax": total}, SYSTEM_ACTOR)
            if kind == "salesInvoices":
                balance[cust["id"]] = round(balance.get(cust["id"], 0.0) + total, 2)
    for cid, amount in balance.items():
        s.env.store.table("customers").update(cid, {"balanceDue": amount}, SYSTEM_ACTOR)
