"""The tables the emulator serves: entity set, logical name, primary key, attributes and their types, option
set values and valid statecode → statuscode pairs. Attribute names and types follow the Dataverse table
reference (Microsoft Learn, "account EntityType", "contact EntityType", …); a realistic subset, not all."""

from __future__ import annotations

from dataclasses import dataclass, field

# Edm names as the payload validation messages print them.
EDM = {"string": "Edm.String", "int": "Edm.Int32", "decimal": "Edm.Decimal", "money": "Edm.Decimal",
       "bool": "Edm.Boolean", "datetime": "Edm.DateTimeOffset", "guid": "Edm.Guid", "option": "Edm.Int32",
       "bigint": "Edm.Int64"}


@dataclass(frozen=True)
class Attr:
    name: str
    type: str  # string | int | bigint | decimal | money | bool | datetime | guid | option | lookup
    targets: tuple[str, ...] = ()  # lookups: logical names of the tables it may point at
    options: tuple[int, ...] = ()  # option sets: valid values (empty = not checked)
    read_only: bool = False
    # Customer/owner-style lookups bind through one navigation property per target: `parentcustomerid_account`.
    polymorphic: bool = False

    @property
    def field(self) -> str:
        """The name the attribute has in JSON: lookups read back as `_<name>_value`."""
        return f"_{self.name}_value" if self.type == "lookup" else self.name

    def nav_names(self) -> dict[str, str]:
        """Navigation property (for `@odata.bind`) → target logical name."""
        if self.type != "lookup" or self.read_only:
            return {}
        if self.polymorphic:
            return {f"{self.name}_{t}": t for t in self.targets}
        return {self.name: self.targets[0]}


@dataclass
class TableDef:
    entity_set: str
    logical: str
    attrs: dict[str, Attr]
    primary_name: str
    states: dict[int, tuple[int, ...]] = field(default_factory=dict)  # statecode → statuscodes (first = default)

    @property
    def key(self) -> str:
        return f"{self.logical}id"

    @property
    def fields(self) -> set[str]:
        """Names readable in `$select` / `$filter` / `$orderby`."""
        return {a.field for a in self.attrs.values()}

    def by_field(self, name: str) -> Attr | None:
        if name.startswith("_") and name.endswith("_value"):
            attr = self.attrs.get(name[1:-6])
            return attr if attr and attr.type == "lookup" else None
        attr = self.attrs.get(name)
        return attr if attr and attr.type != "lookup" else None

    def attr_name(self, field_name: str) -> str | None:
        """The attribute logical name behind a stored field (`_parentcustomerid_value` → `parentcustomerid`)."""
        attr = self.by_field(field_name)
        return attr.name if attr else None

    def navs(self) -> dict[str, tuple[Attr, str]]:
        return {nav: (a, t) for a in self.attrs.values() for nav, t in a.nav_names().items()}


def _a(spec: str) -> list[Attr]:
    """Compact attribute list: "name:type name2:type …" (lookups as name:lookup=target|target)."""
    out = []
    for item in spec.split():
        name, _, typ = item.partition(":")
        if typ.startswith("lookup="):
            out.append(Attr(name, "lookup", tuple(typ[7:].split("|"))))
        else:
            out.append(Attr(name, typ or "string"))
    return out


_ADDRESS = ("address1_line1 address1_line2 address1_city address1_stateorprovince address1_postalcode "
            "address1_country address1_telephone1")
# Option set values from the table references (account.customertypecode 3 = Customer; paymenttermscode
# 1 = Net 30, 2 = 2% 10 Net 30, 3 = Net 45, 4 = Net 60; freight terms 1 = FOB, 2 = No Charge; shipping
# method 1 Airborne … 7 Will Call; product type 1 Sales Inventory, 2 Miscellaneous Charges, 3 Services,
# 4 Flat Fees).
CUSTOMER_TYPES = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)
PAYMENT_TERMS = (1, 2, 3, 4)
FREIGHT_TERMS = (1, 2)
SHIPPING_METHODS = (1, 2, 3, 4, 5, 6, 7)


def _system(owned: bool) -> list[Attr]:
    attrs = [Attr("createdon", "datetime", read_only=True), Attr("modifiedon", "datetime", read_only=True),
             Attr("createdby", "lookup", ("systemuser",), read_only=True),
             Attr("modifiedby", "lookup", ("systemuser",), read_only=True),
             Attr("versionnumber", "bigint", read_only=True)]
    if owned:
        attrs.append(Attr("ownerid", "lookup", ("systemuser",)))
    return attrs


def _table(entity_set: str, logical: str, primary: str, attrs: list[Attr], *, owned: bool = True,
           states: dict[int, tuple[int, ...]] | None = None) -> TableDef:
    everything = [Attr(f"{logical}id", "guid"), *attrs, *_system(owned)]
    if states:
        everything += [Attr("statecode", "option", options=tuple(states)),
                       Attr("statuscode", "option", options=tuple(s for v in states.values() for s in v))]
    return TableDef(entity_set, logical, {a.name: a for a in everything}, primary, states or {})


_ACTIVE = {0: (1,), 1: (2,)}


def build_tables() -> dict[str, TableDef]:
    """All entity sets, keyed by entity set name."""
    money = "money"
    tables = [
        _table("accounts", "account", "name", [
            *_a(f"name accountnumber telephone1 telephone2 fax emailaddress1 websiteurl description {_ADDRESS}"),
            Attr("customertypecode", "option", options=CUSTOMER_TYPES),
            Attr("paymenttermscode", "option", options=PAYMENT_TERMS),
            Attr("address1_freighttermscode", "option", options=FREIGHT_TERMS),
            Attr("address1_shippingmethodcode", "option", options=SHIPPING_METHODS),
            Attr("creditlimit", money), Attr("revenue", money), Attr("creditonhold", "bool"),
            Attr("numberofemployees", "int"),
            *_a("transactioncurrencyid:lookup=transactioncurrency primarycontactid:lookup=contact "
                "parentaccountid:lookup=account"),
            # Dual-write solution columns: the legal entity, the customer group, credit limit mandatory, terms.
            *_a("msdyn_company:lookup=cdm_company msdyn_customergroupid:lookup=msdyn_customergroup "
                "msdyn_paymentterm:lookup=msdyn_paymentterm"),
            Attr("msdyn_creditlimitismandatory", "bool"),
        ], states=_ACTIVE),
        _table("contacts", "contact", "fullname", [
            *_a(f"firstname lastname jobtitle emailaddress1 telephone1 mobilephone description {_ADDRESS}"),
            Attr("fullname", "string", read_only=True), Attr("birthdate", "datetime"),
            Attr("parentcustomerid", "lookup", ("account", "contact"), polymorphic=True),
            *_a("transactioncurrencyid:lookup=transactioncurrency"),
            # Dual-write (company, contact person id) and Prospect to cash solution columns (unconfirmed names).
            *_a("msdyn_company:lookup=cdm_company msdyn_contactpersonid msdyn_contactnumber msdyn_customeraccount"),
            Attr("msdyn_isactivecustomer", "bool"), Attr("msdyn_iscompanyanaccount", "bool"),
        ], states=_ACTIVE),
        _table("systemusers", "systemuser", "fullname", [
            *_a("firstname lastname internalemailaddress domainname title mobilephone"),
            Attr("fullname", "string", read_only=True), Attr("isdisabled", "bool"), Attr("islicensed", "bool"),
            Attr("accessmode", "option", options=(0, 1, 2, 3, 4, 5)),  # 0 Read-Write … 4 Non-interactive
            Attr("azureactivedirectoryobjectid", "guid"), Attr("applicationid", "guid"),
        ], owned=False),
        _table("transactioncurrencies", "transactioncurrency", "currencyname", [
            *_a("isocurrencycode currencyname currencysymbol"), Attr("exchangerate", "decimal"),
            Attr("currencyprecision", "int"),
        ], owned=False, states=_ACTIVE),
        _table("uomschedules", "uomschedule", "name", _a("name baseuomname description"), owned=False,
               states=_ACTIVE),
        _table("uoms", "uom", "name", [
            *_a("name uomscheduleid:lookup=uomschedule baseuom:lookup=uom"), Attr("quantity", "decimal"),
            Attr("isschedulebaseuom", "bool"),
        ], owned=False),
        _table("pricelevels", "pricelevel", "name", [
            *_a("name description begindate:datetime enddate:datetime "
                "transactioncurrencyid:lookup=transactioncurrency"),
        ], states={0: (100001,), 1: (100002,)}),
        _table("products", "product", "name", [
            *_a("productnumber name description"),
            Attr("producttypecode", "option", options=(1, 2, 3, 4)),
            Attr("price", money), Attr("standardcost", money), Attr("currentcost", money),
            Attr("quantitydecimal", "int"),
            *_a("defaultuomid:lookup=uom defaultuomscheduleid:lookup=uomschedule pricelevelid:lookup=pricelevel "
                "transactioncurrencyid:lookup=transactioncurrency"),
        ], owned=False, states={0: (1,), 1: (2,), 2: (0,), 3: (3,)}),  # Active, Retired, Draft, Under Revision
        _table("productpricelevels", "productpricelevel", "productid", [
            *_a("productid:lookup=product pricelevelid:lookup=pricelevel uomid:lookup=uom "
                "transactioncurrencyid:lookup=transactioncurrency"),
            Attr("amount", money), Attr("pricingmethodcode", "option", options=(1, 2, 3, 4, 5, 6)),
        ], owned=False),
        _table("opportunities", "opportunity", "name", [
            *_a("name description estimatedclosedate:datetime"), Attr("estimatedvalue", money),
            Attr("closeprobability", "int"),
            Attr("customerid", "lookup", ("account", "contact"), polymorphic=True),
            *_a("transactioncurrencyid:lookup=transactioncurrency pricelevelid:lookup=pricelevel "
                "parentcontactid:lookup=contact parentaccountid:lookup=account"),
        ], states={0: (1, 2), 1: (3,), 2: (4, 5)}),  # Open, Won, Lost
        # Quote states: Draft (In Progress), Active (In Progress, Open), Won, Closed (Lost, Canceled, Revised).
        _table("quotes", "quote", "name", _order_attrs("quotenumber", "opportunityid:lookup=opportunity"),
               states={0: (1,), 1: (2, 3), 2: (4,), 3: (5, 6, 7)}),
        _table("quotedetails", "quotedetail", "productdescription", _line_attrs("quoteid:lookup=quote"),
               owned=False),
        _table("salesorders", "salesorder", "name", _order_attrs("ordernumber", "opportunityid:lookup=opportunity"),
               states={0: (1, 2), 1: (3,), 2: (4,), 3: (100001, 100002), 4: (100003,)}),
        _table("salesorderdetails", "salesorderdetail", "productdescription",
               _line_attrs("salesorderid:lookup=salesorder"), owned=False),
        _table("invoices", "invoice", "name", [*_order_attrs("invoicenumber", "salesorderid:lookup=salesorder "
                                                                            "duedate:datetime"),
                                               Attr("totaltax", "money")],
               states={0: (1, 2, 4, 5, 6), 2: (100001, 100002), 3: (100003,)}),
        _table("invoicedetails", "invoicedetail", "productdescription",
               _line_attrs("invoiceid:lookup=invoice"), owned=False),
        # Dual-write solution tables (F&O ⇄ Dataverse): legal entities and company-specific reference data.
        _table("cdm_companies", "cdm_company", "cdm_name", _a("cdm_companycode cdm_name"), owned=False,
               states=_ACTIVE),
        _table("msdyn_customergroups", "msdyn_customergroup", "msdyn_groupid",
               _a("msdyn_groupid msdyn_description msdyn_company:lookup=cdm_company"), states=_ACTIVE),
        _table("msdyn_vendors", "msdyn_vendor", "msdyn_vendorname", [
            *_a("msdyn_vendoraccountnumber msdyn_vendorname msdyn_addressstreet msdyn_addresscity "
                "msdyn_addresszipcode msdyn_telephone1 msdyn_emailaddress1 msdyn_company:lookup=cdm_company "
                "transactioncurrencyid:lookup=transactioncurrency"),
        ], states=_ACTIVE),
        _table("msdyn_paymentterms", "msdyn_paymentterm", "msdyn_name",
               _a("msdyn_name msdyn_description msdyn_company:lookup=cdm_company"), states=_ACTIVE),
        # Plug-in registration tables, enough to register webhooks through the API (see webhooks.py).
        _table("serviceendpoints", "serviceendpoint", "name", [
            *_a("name url description authvalue"),
            Attr("contract", "option", options=(1, 2, 3, 4, 5, 6, 7, 8, 9)),  # 8 = Webhook
            # authtype: 4 WebhookKey, 5 HttpHeader, 6 HttpQueryString
            Attr("authtype", "option", options=(1, 2, 3, 4, 5, 6, 7, 8)),
            Attr("messageformat", "option", options=(1, 2, 3)),
        ], owned=False),
        _table("sdkmessageprocessingsteps", "sdkmessageprocessingstep", "name", [
            *_a("name description messagename primaryobjecttypecode filteringattributes"),
            Attr("stage", "option", options=(10, 20, 40)), Attr("mode", "option", options=(0, 1)),
            Attr("rank", "int"), Attr("asyncautodelete", "bool"),
            Attr("eventhandler", "lookup", ("serviceendpoint",), polymorphic=True),
        ], owned=False, states=_ACTIVE),
        _table("sdkmessageprocessingstepimages", "sdkmessageprocessingstepimage", "name", [
            *_a("name entityalias attributes messagepropertyname"),
            Attr("imagetype", "option", options=(0, 1, 2)),  # 0 PreImage, 1 PostImage, 2 Both
            *_a("sdkmessageprocessingstepid:lookup=sdkmessageprocessingstep"),
        ], owned=False),
    ]
    return {t.entity_set: t for t in tables}


def _order_attrs(number: str, extra: str) -> list[Attr]:
    return [
        *_a(f"name {number} description requestdeliveryby:datetime {extra}"),
        Attr("totalamount", "money"), Attr("totallineitemamount", "money"),
        Attr("paymenttermscode", "option", options=PAYMENT_TERMS),
        Attr("shippingmethodcode", "option", options=SHIPPING_METHODS),
        Attr("freighttermscode", "option", options=FREIGHT_TERMS),
        Attr("customerid", "lookup", ("account", "contact"), polymorphic=True),
        *_a("transactioncurrencyid:lookup=transactioncurrency pricelevelid:lookup=pricelevel"),
    ]


def _line_attrs(parent: str) -> list[Attr]:
    return [
        *_a(f"productdescription {parent} productid:lookup=product uomid:lookup=uom "
            "transactioncurrencyid:lookup=transactioncurrency"),
        Attr("quantity", "decimal"), Attr("priceperunit", "money"), Attr("baseamount", "money"),
        Attr("extendedamount", "money"), Attr("manualdiscountamount", "money"),
        Attr("isproductoverridden", "bool"), Attr("lineitemnumber", "int"),
    ]


def by_logical(tables: dict[str, TableDef]) -> dict[str, TableDef]:
    return {t.logical: t for t in tables.values()}
