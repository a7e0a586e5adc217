"""Deterministic seed data: the same seed and record count give the same environment. Reference data
(users, currencies, units, a price list) always; N accounts with contacts, products, opportunities, orders
and invoices. The systemusers behind the token clients keep fixed ids (see core.user_id_for)."""

from __future__ import annotations

import uuid
from typing import Any

from emulators.common.fakedata import FakeData
from emulators.common.store import Actor
from emulators.dataverse import delta
from emulators.dataverse.core import USER_NAMESPACE, Emulator, user_id_for
from emulators.dataverse.payload import LOGICAL_ANNOTATION

SYSTEM_USER_ID = str(uuid.uuid5(USER_NAMESPACE, "SYSTEM"))
# (ISO code, name, symbol, rate per USD, precision): real codes that the Business Central seed also uses.
CURRENCIES = [("USD", "US Dollar", "$", 1.0, 2), ("EUR", "Euro", "€", 0.92, 2), ("GBP", "Pound Sterling", "£", 0.79, 2),
              ("DKK", "Danish Krone", "kr.", 6.86, 2), ("NOK", "Norwegian Krone", "kr", 10.6, 2),
              ("SEK", "Swedish Krona", "kr", 10.4, 2), ("CAD", "Canadian Dollar", "CA$", 1.36, 2)]
_COUNTRY_CURRENCY = {"US": "USD", "GB": "GBP", "DK": "DKK", "NO": "NOK", "SE": "SEK", "DE": "EUR", "FR": "EUR",
                     "NL": "EUR"}
_COUNTRY_NAME = {"US": "United States", "GB": "United Kingdom", "DK": "Denmark", "NO": "Norway", "SE": "Sweden",
                 "DE": "Germany", "FR": "France", "NL": "Netherlands"}
_TITLES = ["Purchasing Manager", "CEO", "CFO", "Sales Director", "Office Manager", "Buyer", "IT Manager",
           "Accountant", "Operations Lead"]


def reseed(emu: Emulator, records: int, seed: int) -> None:
    """Replace every table's content. Webhooks do not fire and older delta tokens become invalid."""
    store = emu.store
    with store.lock:
        listeners, store.listeners = store.listeners, []
        try:
            for table in store.tables.values():
                table.clear()
            store.changes.clear()
            _Seeder(emu, FakeData(seed)).run(records)
        finally:
            store.listeners = listeners
        setattr(emu, delta.MIN_SEQ_KEY, store.current_seq())


def _ref(row: dict[str, Any], name: str, rid: str | None, logical: str) -> None:
    row[f"_{name}_value"] = rid
    row[f"_{name}_value{LOGICAL_ANNOTATION}"] = logical if rid else None


class _Seeder:
    def __init__(self, emu: Emulator, fake: FakeData) -> None:
        self.emu = emu
        self.fake = fake
        self.actor = Actor(SYSTEM_USER_ID, "SYSTEM")

    def add(self, entity_set: str, row: dict[str, Any]) -> dict[str, Any]:
        key = self.emu.tables[entity_set].key
        row.setdefault(key, self.fake.guid())
        return self.emu.store.table(entity_set).insert(row, self.actor)

    def run(self, records: int) -> None:
        sales = self.users()
        currencies = {iso: self.add("transactioncurrencies", {
            "isocurrencycode": iso, "currencyname": name, "currencysymbol": sym, "exchangerate": rate,
            "currencyprecision": prec}) for iso, name, sym, rate, prec in CURRENCIES}
        usd = currencies["USD"]["transactioncurrencyid"]
        schedule = self.add("uomschedules", {"name": "Default Unit", "baseuomname": "Primary Unit"})
        sid = schedule["uomscheduleid"]
        base = self.add("uoms", {"name": "Primary Unit", "quantity": 1.0, "isschedulebaseuom": True})
        uoms = {"Primary Unit": base}
        for name, qty in (("PCS", 1.0), ("BOX", 12.0), ("HOUR", 1.0)):
            row = {"name": name, "quantity": qty, "isschedulebaseuom": False}
            _ref(row, "baseuom", base["uomid"], "uom")
            uoms[name] = self.add("uoms", row)
        for u in uoms.values():
            self.emu.store.table("uoms").rows[u["uomid"]].update(
                {"_uomscheduleid_value": sid, f"_uomscheduleid_value{LOGICAL_ANNOTATION}": "uomschedule"})
        price_list = {"name": "Default Price List", "begindate": "2024-01-01T00:00:00Z"}
        _ref(price_list, "transactioncurrencyid", usd, "transactioncurrency")
        plid = self.add("pricelevels", price_list)["pricelevelid"]
        accounts = self.accounts(records, sales, currencies)
        self.contacts(accounts, sales)
        products = self.products(max(5, records // 2) if records else 0, uoms, sid, plid, usd)
        self.documents(records, accounts, products, sales, plid, usd, uoms["PCS"]["uomid"])

    def users(self) -> list[str]:
        self.add("systemusers", {"systemuserid": SYSTEM_USER_ID, "firstname": "", "lastname": "SYSTEM",
                                 "domainname": "SYSTEM", "isdisabled": False, "islicensed": False,
                                 "accessmode": 0})
        sales = []
        for c in self.emu.settings.clients:
            uid = user_id_for(c.client_id)
            row: dict[str, Any] = {"systemuserid": uid, "isdisabled": False,
                                   "azureactivedirectoryobjectid": str(uuid.uuid5(USER_NAMESPACE, f"aad:{c.client_id}"))
                                   }
            if c.application:
                # Application user (Microsoft Learn, "Manage application users"): non-interactive, unlicensed.
                row.update(firstname="#", lastname=c.name.lstrip("# "), accessmode=4, islicensed=False,
                           domainname=f"{c.client_id}@application.emulator.local",
                           applicationid=str(uuid.uuid5(USER_NAMESPACE, "app:" + c.client_id)))
            else:
                first, _, last = c.name.partition(" ")
                email = self.fake.email(first, last, "contoso-sales.example.com")
                row.update(firstname=first, lastname=last, accessmode=0, islicensed=True, domainname=email,
                           internalemailaddress=email, title="Sales Representative")
                sales.append(uid)
            self.add("systemusers", row)
        for _ in range(3):  # more licensed sales people without an app registration
            first, last = self.fake.person()
            email = self.fake.email(first, last, "contoso-sales.example.com")
            sales.append(self.add("systemusers", {
                "firstname": first, "lastname": last, "domainname": email, "internalemailaddress": email,
                "isdisabled": False, "islicensed": True, "accessmode": 0, "title": "Account Manager",
                "azureactivedirectoryobjectid": self.fake.guid()})["systemuserid"])
        self.add("systemusers", {"firstname": "Former", "lastname": "Employee", "isdisabled": True,
                                 "islicensed": False, "accessmode": 0,
                                 "domainname": "former.employee@contoso-sales.example.com"})
        return sales

    def accounts(self, n: int, sales: list[str], currencies: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        r = self.fake.rng
        out = []
        for i in range(n):
            name = self.fake.company()
            addr, phone = self.fake.address()
            domain = self.fake.domain(name)
            iso = _COUNTRY_CURRENCY.get(addr.country, "USD")
            row = {"name": name, "accountnumber": f"ACC-{10001 + i}", "telephone1": phone,
                   "emailaddress1": f"info@{domain}", "websiteurl": f"https://www.{domain}",
                   "address1_line1": addr.line1, "address1_city": addr.city,
                   "address1_stateorprovince": addr.state or None, "address1_postalcode": addr.postal_code,
                   "address1_country": _COUNTRY_NAME.get(addr.country, addr.country),
                   "customertypecode": 3 if r.random() < 0.85 else r.choice([8, 5, 9]),
                   "paymenttermscode": r.choice([1, 1, 2, 3, 4]), "address1_freighttermscode": r.choice([1, 2]),
                   "address1_shippingmethodcode": r.choice([1, 2, 4, 6]),
                   "creditlimit": float(r.choice([5000, 10000, 25000, 50000, 100000])),
                   "numberofemployees": r.randint(5, 2000), "creditonhold": r.random() < 0.05}
            _ref(row, "transactioncurrencyid", currencies[iso]["transactioncurrencyid"], "transactioncurrency")
            _ref(row, "ownerid", r.choice(sales), "systemuser")
            out.append(self.add("accounts", row))
        return out

    def contacts(self, accounts: list[dict[str, Any]], sales: list[str]) -> None:
        r = self.fake.rng
        for i, account in enumerate(accounts):
            first, last = self.fake.person()
            domain = account["emailaddress1"].split("@", 1)[1]
            local = self.fake.email(first, last, domain).split("@")[0]
            row = {"firstname": first, "lastname": last, "jobtitle": r.choice(_TITLES),
                   "emailaddress1": f"{local}{i + 1}@{domain}", "telephone1": account["telephone1"],
                   "mobilephone": f"{account['telephone1'][:-4]}{r.randint(1000, 9999)}",
                   "address1_line1": account["address1_line1"], "address1_city": account["address1_city"],
                   "address1_postalcode": account["address1_postalcode"],
                   "address1_country": account["address1_country"]}
            _ref(row, "parentcustomerid", account["accountid"], "account")
            _ref(row, "transactioncurrencyid", account["_transactioncurrencyid_value"], "transactioncurrency")
            _ref(row, "ownerid", account["_ownerid_value"] or r.choice(sales), "systemuser")
            contact = self.add("contacts", row)
            link: dict[str, Any] = {}
            _ref(link, "primarycontactid", contact["contactid"], "contact")
            self.emu.store.table("accounts").update(account["accountid"], link, self.actor)

    def products(self, n: int, uoms: dict[str, dict[str, Any]], sid: str, plid: str,
                 usd: str) -> list[dict[str, Any]]:
        out = []
        for i in range(n):
            service = i % 7 == 6
            price = self.fake.price(20, 60) if service else self.fake.price(25, 1500)
            uom = uoms["HOUR" if service else "PCS"]["uomid"]
            row = {"productnumber": f"PRD-{1001 + i}", "name": "Installation service" if service else self.fake.item(),
                   "producttypecode": 3 if service else 1, "price": price,
                   "standardcost": round(price * 0.6, 2), "currentcost": round(price * 0.62, 2),
                   "quantitydecimal": 0 if not service else 2}
            _ref(row, "defaultuomid", uom, "uom")
            _ref(row, "defaultuomscheduleid", sid, "uomschedule")
            _ref(row, "pricelevelid", plid, "pricelevel")
            _ref(row, "transactioncurrencyid", usd, "transactioncurrency")
            product = self.add("products", row)
            ppl = {"amount": price, "pricingmethodcode": 1}
            for name, rid, logical in (("productid", product["productid"], "product"),
                                       ("pricelevelid", plid, "pricelevel"),
                                       ("uomid", uom, "uom"), ("transactioncurrencyid", usd, "transactioncurrency")):
                _ref(ppl, name, rid, logical)
            self.add("productpricelevels", ppl)
            out.append(product)
        return out

    def documents(self, n: int, accounts: list[dict[str, Any]], products: list[dict[str, Any]], sales: list[str],
                  plid: str, usd: str, pcs: str) -> None:
        r = self.fake.rng
        for i in range(n // 5):
            account = accounts[i]
            value = float(r.randint(5, 200) * 100)
            opp = {"name": f"{r.randint(5, 50)} desks for {account['name']}", "estimatedvalue": value,
                   "closeprobability": r.choice([10, 25, 50, 75]),
                   "estimatedclosedate": f"2025-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}T00:00:00Z"}
            for name, rid, logical in (("customerid", account["accountid"], "account"),
                                       ("pricelevelid", plid, "pricelevel"),
                                       ("transactioncurrencyid", usd, "transactioncurrency"),
                                       ("ownerid", r.choice(sales), "systemuser")):
                _ref(opp, name, rid, logical)
            self.add("opportunities", opp)
            order_id = self.document("salesorders", "salesorderdetails", "salesorderid", f"ORD-{2001 + i}",
                                     "ordernumber", account, products, plid, usd, pcs, sales)
            if i % 2 == 0:
                self.document("invoices", "invoicedetails", "invoiceid", f"INV-{3001 + i}", "invoicenumber",
                              account, products, plid, usd, pcs, sales, order_id)

    def document(self, entity_set: str, lines_set: str, parent: str, number: str, number_field: str,
                 account: dict[str, Any], products: list[dict[str, Any]], plid: str, usd: str, pcs: str,
                 sales: list[str], order_id: str | None = None) -> str:
        r = self.fake.rng
        chosen = r.sample(products, k=min(2, len(products)))
        total = 0.0
        lines = []
        for n, product in enumerate(chosen, start=1):
            qty = float(r.randint(1, 10))
            amount = round(qty * product["price"], 2)
            total += amount
            line = {"quantity": qty, "priceperunit": product["price"], "baseamount": amount,
                    "extendedamount": amount, "productdescription": product["name"], "lineitemnumber": n,
                    "isproductoverridden": False}
            _ref(line, "productid", product["productid"], "product")
            _ref(line, "uomid", product["_defaultuomid_value"] or pcs, "uom")
            _ref(line, "transactioncurrencyid", usd, "transactioncurrency")
            lines.append(line)
        doc = {"name": f"{account['name']} {number}", number_field: number, "totalamount": round(total, 2),
               "totallineitemamount": round(total, 2), "paymenttermscode": account["paymenttermscode"]}
        for name, rid, logical in (("customerid", account["accountid"], "account"),
                                   ("pricelevelid", plid, "pricelevel"),
                                   ("transactioncurrencyid", usd, "transactioncurrency"),
                                   ("ownerid", r.choice(sales), "systemuser")):
            _ref(doc, name, rid, logical)
        if order_id:
            _ref(doc, "salesorderid", order_id, "salesorder")
        doc_id = self.add(entity_set, doc)[f"{entity_set[:-1]}id"]
        for line in lines:
            _ref(line, parent, doc_id, entity_set[:-1])
            self.add(lines_set, line)
        return doc_id
