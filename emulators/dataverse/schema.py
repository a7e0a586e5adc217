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
    labels: tuple[str, ...] = ()  # option sets: the user-language label of each value in `options`, same order
    read_only: bool = False
    # Customer/owner-style lookups bind through one navigation property per target: `parentcustomerid_account`.
    polymorphic: bool = False

    def label(self, value: int) -> str | None:
        """The option's label (what `…@OData.Community.Display.V1.FormattedValue` and the metadata show)."""
        return dict(zip(self.options, self.labels, strict=False)).get(value)

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
    # Written only by the platform here (the system job tables): the Web API refuses writes (api.py).
    api_read_only: bool = False

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
# Option sets with their labels, from the table references (Microsoft Learn, "account EntityType" …, "Choices").
CUSTOMER_TYPES = {1: "Competitor", 2: "Consultant", 3: "Customer", 4: "Investor", 5: "Partner", 6: "Influencer",
                  7: "Press", 8: "Prospect", 9: "Reseller", 10: "Supplier", 11: "Vendor", 12: "Other"}
PAYMENT_TERMS = {1: "Net 30", 2: "2% 10, Net 30", 3: "Net 45", 4: "Net 60"}
FREIGHT_TERMS = {1: "FOB", 2: "No Charge"}
SHIPPING_METHODS = {1: "Airborne", 2: "DHL", 3: "FedEx", 4: "UPS", 5: "Postal Mail", 6: "Full Load", 7: "Will Call"}


def _opt(name: str, labels: dict[int, str]) -> Attr:
    """An option set column with its values and labels (Microsoft Learn's table reference, "Choices")."""
    return Attr(name, "option", options=tuple(labels), labels=tuple(labels.values()))


def _system(owned: bool) -> list[Attr]:
    attrs = [Attr("createdon", "datetime", read_only=True), Attr("modifiedon", "datetime", read_only=True),
             Attr("createdby", "lookup", ("systemuser",), read_only=True),
             Attr("modifiedby", "lookup", ("systemuser",), read_only=True),
             Attr("versionnumber", "bigint", read_only=True)]
    if owned:
        attrs.append(Attr("ownerid", "lookup", ("systemuser",)))
    return attrs


def _table(entity_set: str, logical: str, primary: str, attrs: list[Attr], *, owned: bool = True,
           states: dict[int, tuple[int, ...]] | None = None,
           labels: tuple[dict[int, str], dict[int, str]] | None = None, api_read_only: bool = False) -> TableDef:
    """`labels`: (statecode labels, statuscode labels); default Active/Inactive."""
    everything = [Attr(f"{logical}id", "guid"), *attrs, *_system(owned)]
    if states:
        state_labels, status_labels = labels or ({0: "Active", 1: "Inactive"}, {1: "Active", 2: "Inactive"})
        statuses = tuple(s for v in states.values() for s in v)
        everything += [Attr("statecode", "option", options=tuple(states),
                            labels=tuple(state_labels[v] for v in states)),
                       Attr("statuscode", "option", options=statuses, labels=tuple(status_labels[v] for v in statuses))]
    return TableDef(entity_set, logical, {a.name: a for a in everything}, primary, states or {}, api_read_only)


_ACTIVE = {0: (1,), 1: (2,)}


def build_tables() -> dict[str, TableDef]:
    """All entity sets, keyed by entity set name."""
    money = "money"
    tables = [
        _table("accounts", "account", "name", [
            *_a(f"name accountnumber telephone1 telephone2 fax emailaddress1 websiteurl description {_ADDRESS}"),
            _opt("customertypecode", CUSTOMER_TYPES),
            _opt("paymenttermscode", PAYMENT_TERMS),
            _opt("address1_freighttermscode", FREIGHT_TERMS),
            _opt("address1_shippingmethodcode", SHIPPING_METHODS),
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
            _opt("accessmode", {0: "Read-Write", 1: "Administrative", 2: "Read", 3: "Support User",
                                4: "Non-interactive", 5: "Delegated Admin"}),
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
        ], states={0: (100001,), 1: (100002,)},
           labels=({0: "Active", 1: "Inactive"}, {100001: "Active", 100002: "Inactive"})),
        _table("products", "product", "name", [
            *_a("productnumber name description"),
            _opt("producttypecode", {1: "Sales Inventory", 2: "Miscellaneous Charges", 3: "Services", 4: "Flat Fees"}),
            Attr("price", money), Attr("standardcost", money), Attr("currentcost", money),
            Attr("quantitydecimal", "int"),
            *_a("defaultuomid:lookup=uom defaultuomscheduleid:lookup=uomschedule pricelevelid:lookup=pricelevel "
                "transactioncurrencyid:lookup=transactioncurrency"),
        ], owned=False, states={0: (1,), 1: (2,), 2: (0,), 3: (3,)},
           labels=({0: "Active", 1: "Retired", 2: "Draft", 3: "Under Revision"},
                   {1: "Active", 2: "Retired", 0: "Draft", 3: "Under Revision"})),
        _table("productpricelevels", "productpricelevel", "productid", [
            *_a("productid:lookup=product pricelevelid:lookup=pricelevel uomid:lookup=uom "
                "transactioncurrencyid:lookup=transactioncurrency"),
            Attr("amount", money),
            _opt("pricingmethodcode", {1: "Currency Amount", 2: "Percent of List", 3: "Percent Markup - Current Cost",
                                       4: "Percent Margin - Current Cost", 5: "Percent Markup - Standard Cost",
                                       6: "Percent Margin - Standard Cost"}),
        ], owned=False),
        _table("opportunities", "opportunity", "name", [
            *_a("name description estimatedclosedate:datetime"), Attr("estimatedvalue", money),
            Attr("closeprobability", "int"),
            Attr("customerid", "lookup", ("account", "contact"), polymorphic=True),
            *_a("transactioncurrencyid:lookup=transactioncurrency pricelevelid:lookup=pricelevel "
                "parentcontactid:lookup=contact parentaccountid:lookup=account"),
        ], states={0: (1, 2), 1: (3,), 2: (4, 5)},
           labels=({0: "Open", 1: "Won", 2: "Lost"},
                   {1: "In Progress", 2: "On Hold", 3: "Won", 4: "Canceled", 5: "Out-Sold"})),
        # Quote states: Draft (In Progress), Active (In Progress, Open), Won, Closed (Lost, Canceled, Revised).
        _table("quotes", "quote", "name", _order_attrs("quotenumber", "opportunityid:lookup=opportunity"),
               states={0: (1,), 1: (2, 3), 2: (4,), 3: (5, 6, 7)},
               labels=({0: "Draft", 1: "Active", 2: "Won", 3: "Closed"},
                       {1: "In Progress", 2: "In Progress", 3: "Open", 4: "Won", 5: "Lost", 6: "Canceled",
                        7: "Revised"})),
        _table("quotedetails", "quotedetail", "productdescription", _line_attrs("quoteid:lookup=quote"),
               owned=False),
        _table("salesorders", "salesorder", "name", _order_attrs("ordernumber", "opportunityid:lookup=opportunity"),
               states={0: (1, 2), 1: (3,), 2: (4,), 3: (100001, 100002), 4: (100003,)},
               labels=({0: "Active", 1: "Submitted", 2: "Canceled", 3: "Fulfilled", 4: "Invoiced"},
                       {1: "New", 2: "Pending", 3: "In Progress", 4: "No Money", 100001: "Complete",
                        100002: "Partial", 100003: "Invoiced"})),
        _table("salesorderdetails", "salesorderdetail", "productdescription",
               _line_attrs("salesorderid:lookup=salesorder"), owned=False),
        _table("invoices", "invoice", "name", [*_order_attrs("invoicenumber", "salesorderid:lookup=salesorder "
                                                                            "duedate:datetime"),
                                               Attr("totaltax", "money")],
               states={0: (1, 2, 4, 5, 6), 2: (100001, 100002), 3: (100003,)},
               labels=({0: "Active", 2: "Paid", 3: "Canceled"},
                       {1: "New", 2: "Partially Shipped", 4: "Billed", 5: "Booked (applies to services)",
                        6: "Installed (applies to services)", 100001: "Complete", 100002: "Partial",
                        100003: "Canceled"})),
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
            _opt("contract", {1: "OneWay", 2: "Queue", 3: "Rest", 4: "TwoWay", 5: "Topic", 6: "Queue (Persistent)",
                               7: "Event Hub", 8: "Webhook", 9: "Event Grid"}),
            _opt("authtype", {1: "ACS", 2: "SASKey", 3: "SASToken", 4: "WebhookKey", 5: "HttpHeader",
                              6: "HttpQueryString", 7: "Connection String", 8: "Access Key"}),
            _opt("messageformat", {1: "Binary XML", 2: "Json", 3: "Text XML"}),
        ], owned=False),
        _table("sdkmessageprocessingsteps", "sdkmessageprocessingstep", "name", [
            *_a("name description messagename primaryobjecttypecode filteringattributes"),
            _opt("stage", {10: "Pre-validation", 20: "Pre-operation", 40: "Post-operation"}),
            _opt("mode", {0: "Synchronous", 1: "Asynchronous"}),
            Attr("rank", "int"), Attr("asyncautodelete", "bool"),
            Attr("eventhandler", "lookup", ("serviceendpoint",), polymorphic=True),
        ], owned=False, states=_ACTIVE),
        _table("sdkmessageprocessingstepimages", "sdkmessageprocessingstepimage", "name", [
            *_a("name entityalias attributes messagepropertyname"),
            _opt("imagetype", {0: "PreImage", 1: "PostImage", 2: "Both"}),
            *_a("sdkmessageprocessingstepid:lookup=sdkmessageprocessingstep"),
        ], owned=False),
        # System jobs (Microsoft Learn, "System Job (AsyncOperation) table reference", "BulkDeleteOperation table
        # reference"): the BulkDelete action's job and its bulk delete operation (bulk_delete.py). A subset of
        # the columns; the platform writes them, the API only reads them here.
        _table("asyncoperations", "asyncoperation", "name", [
            *_a("name messagename message friendlymessage recurrencepattern"),
            _opt("operationtype", ASYNC_OPERATION_TYPES),
            Attr("errorcode", "int", read_only=True), Attr("retrycount", "int", read_only=True),
            Attr("depth", "int"), Attr("correlationid", "guid"), Attr("postponeuntil", "datetime"),
            Attr("startedon", "datetime", read_only=True), Attr("completedon", "datetime", read_only=True),
        ], states=JOB_STATES, labels=(JOB_STATE_LABELS, JOB_STATUS_LABELS), api_read_only=True),
        _table("bulkdeleteoperations", "bulkdeleteoperation", "name", [
            Attr("name", "string", read_only=True),
            Attr("asyncoperationid", "lookup", ("asyncoperation",), read_only=True),
            Attr("successcount", "int", read_only=True), Attr("failurecount", "int", read_only=True),
            Attr("isrecurring", "bool", read_only=True), Attr("nextrun", "datetime", read_only=True),
            Attr("processingqeindex", "int", read_only=True), Attr("orderedquerysetxml", "string", read_only=True),
        ], states=BULK_DELETE_STATES, labels=(JOB_STATE_LABELS, JOB_STATUS_LABELS), api_read_only=True),
    ]
    return {t.entity_set: t for t in tables}


# System job states and status reasons (asyncoperation StateCode / StatusCode choices). The bulk delete
# operation documents the same values plus Retrying (11) and Paused (12) under Suspended; its documented default
# statuses (1, 2, 2, 2) are not statuses of those states, so the first of each state is the default here
# (unconfirmed).
JOB_STATE_LABELS = {0: "Ready", 1: "Suspended", 2: "Locked", 3: "Completed"}
JOB_STATUS_LABELS = {0: "Waiting For Resources", 10: "Waiting", 11: "Retrying", 12: "Paused", 20: "In Progress",
                     21: "Pausing", 22: "Canceling", 30: "Succeeded", 31: "Failed", 32: "Canceled"}
JOB_STATES = {0: (0,), 1: (10,), 2: (20, 21, 22), 3: (30, 31, 32)}
BULK_DELETE_STATES = {0: (0,), 1: (10, 11, 12), 2: (20, 21, 22), 3: (30, 31, 32)}
# asyncoperation OperationType choices ("System Job Type"); 13 = Bulk Delete.
ASYNC_OPERATION_TYPES = {
    1: "System Event", 2: "Bulk Email", 3: "Import File Parse", 4: "Transform Parse Data", 5: "Import",
    6: "Activity Propagation", 7: "Duplicate Detection Rule Publish", 8: "Bulk Duplicate Detection",
    9: "SQM Data Collection", 10: "Workflow", 11: "Quick Campaign", 12: "Matchcode Update", 13: "Bulk Delete",
    14: "Deletion Service", 15: "Index Management", 16: "Collect Organization Statistics", 17: "Import Subprocess",
    18: "Calculate Organization Storage Size", 19: "Collect Organization Database Statistics",
    20: "Collection Organization Size Statistics", 21: "Database Tuning",
    22: "Calculate Organization Maximum Storage Size", 23: "Bulk Delete Subprocess", 24: "Update Statistic Intervals",
    25: "Organization Full Text Catalog Index", 26: "Database log backup", 27: "Update Contract States",
    28: "DBCC SHRINKDATABASE maintenance job", 29: "DBCC SHRINKFILE maintenance job",
    30: "Reindex all indices maintenance job", 31: "Storage Limit Notification",
    32: "Cleanup inactive workflow assemblies", 35: "Recurring Series Expansion", 38: "Import Sample Data",
    40: "Goal Roll Up", 41: "Audit Partition Creation", 42: "Check For Language Pack Updates",
    43: "Provision Language Pack", 44: "Update Organization Database", 45: "Update Solution",
    46: "Regenerate Entity Row Count Snapshot Data", 47: "Regenerate Read Share Snapshot Data", 49: "Post to Yammer",
    50: "Outgoing Activity", 51: "Incoming Email Processing", 52: "Mailbox Test Access",
    53: "Encryption Health Check", 54: "Execute Async Request", 56: "Update Entitlement States",
    57: "Calculate Rollup Field", 58: "Mass Calculate Rollup Field", 59: "Import Translation",
    62: "Convert Date And Time Behavior", 63: "EntityKey Index Creation", 65: "Update Knowledge Article States",
    68: "Resource Booking Sync", 69: "Relationship Assistant Cards", 71: "Cleanup Solution Components",
    72: "App Module Metadata Operation", 73: "ALM Anomaly Detection Operation", 75: "Flow Notification",
    76: "Ribbon Client Metadata Operation", 79: "CallbackRegistration Expander Operation",
    85: "Migrate notes to attachments job", 86: "Migrate article content to file storage",
    87: "Updated Deactived On for Resolved Cases job", 90: "CascadeAssign", 91: "CascadeDelete",
    92: "Event Expander Operation", 93: "Import Solution Metadata", 94: "Bulk Delete File Attachment",
    95: "Refresh Business Unit for Records Owned By Principal", 96: "Revoke Inherited Access",
    98: "Create Or Refresh Virtual Entity", 100: "Cascade FlowSession Permissions Async Operation",
    101: "Update Modern Flow Async Operation", 102: "AsyncArchive Async Operation",
    103: "Cancel Async Operations (System)", 201: "Provision language for user",
    202: "Export Solution Async Operation", 203: "Import Solution Async Operation", 204: "PublishAll Async Operation",
    207: "DeleteAndPromote Async Operation", 208: "UninstallSolution Async Operation",
    209: "ProvisionLanguage Async Operation", 210: "ImportTranslation Async Operation",
    211: "StageAndUpgrade Async Operation", 239: "Denormalization Async Operation",
    250: "Refresh Runtime Integration Components Async Operation", 300: "Bulk Archive Operation",
    301: "Archive Execution Async Operation", 302: "FinOps Deployment Async Operation",
    304: "Purge Archived Content Operation", 305: "Register Offering Async Operation",
    306: "Execute DataProcessing Configuration", 307: "Sync Synapse Tables Schema",
    308: "FinOps DB Sync Async Operation", 309: "FinOps Unit Test Async Operation",
    320: "Catalog Service Generate Package Async Operation",
    321: "Catalog Service Submit Approval Request Async Operation",
    322: "Catalog Service Install Request Async Operation",
    12801: "Cascade Grant or Revoke Access Version Tracking Async Operation", 190690091: "AI Builder Training Events",
    190690092: "AI Builder Prediction Events"}


def _order_attrs(number: str, extra: str) -> list[Attr]:
    return [
        *_a(f"name {number} description requestdeliveryby:datetime {extra}"),
        Attr("totalamount", "money"), Attr("totallineitemamount", "money"),
        _opt("paymenttermscode", PAYMENT_TERMS),
        _opt("shippingmethodcode", SHIPPING_METHODS),
        _opt("freighttermscode", FREIGHT_TERMS),
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


@dataclass(frozen=True)
class TableFacts:
    """What the table definitions (EntityMetadata) say about a table beyond its columns: schema name, display
    names and ObjectTypeCode. Microsoft's tables keep their documented codes (Microsoft Learn table reference,
    and the `EntityTypeCode` of the SDK's generated classes); a solution's tables get codes from 10000 up, fixed
    here so they stay stable (a real environment numbers them in install order)."""

    schema_name: str
    display: str
    plural: str
    type_code: int
    ownership: str | None = None  # OwnershipTypes member when not implied by an `ownerid` column


# Keyed by logical name; a test checks these cover exactly the tables build_tables() serves.
TABLE_FACTS: dict[str, TableFacts] = {f.schema_name.lower(): f for f in (
    TableFacts("Account", "Account", "Accounts", 1),
    TableFacts("Contact", "Contact", "Contacts", 2),
    TableFacts("Opportunity", "Opportunity", "Opportunities", 3),
    TableFacts("SystemUser", "User", "Users", 8, "BusinessOwned"),
    TableFacts("TransactionCurrency", "Currency", "Currencies", 9105),
    TableFacts("UoMSchedule", "Unit Group", "Unit Groups", 1056),
    TableFacts("UoM", "Unit", "Units", 1055),
    TableFacts("PriceLevel", "Price List", "Price Lists", 1022),
    TableFacts("Product", "Product", "Products", 1024),
    TableFacts("ProductPriceLevel", "Price List Item", "Price List Items", 1026),
    TableFacts("Quote", "Quote", "Quotes", 1084),
    TableFacts("QuoteDetail", "Quote Product", "Quote Products", 1085),
    TableFacts("SalesOrder", "Order", "Orders", 1088),
    TableFacts("SalesOrderDetail", "Order Product", "Order Products", 1089),
    TableFacts("Invoice", "Invoice", "Invoices", 1090),
    TableFacts("InvoiceDetail", "Invoice Product", "Invoice Products", 1091),
    TableFacts("ServiceEndpoint", "Service Endpoint", "Service Endpoints", 4618),
    TableFacts("SdkMessageProcessingStep", "Sdk Message Processing Step", "Sdk Message Processing Steps", 4608),
    TableFacts("SdkMessageProcessingStepImage", "Sdk Message Processing Step Image",
               "Sdk Message Processing Step Images", 4615),
    TableFacts("AsyncOperation", "System Job", "System Jobs", 4700),
    # Documented OwnershipType None, although the table has an owner column.
    TableFacts("BulkDeleteOperation", "Bulk Delete Operation", "Bulk Delete Operations", 4424, "None"),
    # Dual-write solution tables (schema names and labels unconfirmed).
    TableFacts("cdm_company", "Company", "Companies", 10000),
    TableFacts("msdyn_customergroup", "Customer group", "Customer groups", 10001),
    TableFacts("msdyn_vendor", "Vendor", "Vendors", 10002),
    TableFacts("msdyn_paymentterm", "Payment term", "Payment terms", 10003),
)}
