"""Entity sets of the BC API v2.0 the emulator serves, with their documented field names and types.

Field lists, enum type names (`NAV.contactType`, …) and navigation properties follow the "<entity> resource
type" pages of the Business Central API (v2.0) reference
(learn.microsoft.com/dynamics365/business-central/dev-itpro/api-reference/v2.0/resources/dynamics_<entity>).
BC never returns null for these fields: unset text is "", numbers 0, dates 0001-01-01, GUIDs all zeros,
so a new record is filled with those defaults.

This module is the one source of truth for the API's shape: reads, writes, `$metadata` and the service
document are all derived from `SERVED`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

EMPTY_GUID = "00000000-0000-0000-0000-000000000000"
EMPTY_DATE = "0001-01-01"
EMPTY_DATETIME = "0001-01-01T00:00:00Z"


# Field type → the Edm primitive type BC declares for it in `$metadata`.
EDM_TYPES = {"string": "Edm.String", "guid": "Edm.Guid", "decimal": "Edm.Decimal", "int": "Edm.Int32",
             "int64": "Edm.Int64", "bool": "Edm.Boolean", "date": "Edm.Date", "datetime": "Edm.DateTimeOffset"}
NAMESPACE = "Microsoft.NAV"


@dataclass(frozen=True)
class Field:
    type: str  # string | guid | decimal | int | int64 | bool | date | datetime
    max_len: int | None = None
    options: tuple[str, ...] | None = None  # enum captions in ordinal order (stored; on the wire: enums.py)
    read_only: bool = False
    enum: str | None = None  # the OData enum type of `options`, e.g. "contactType" (NAV.contactType)

    @property
    def edm(self) -> str:
        """The type `$metadata` declares: an Edm primitive, or Microsoft.NAV.<enum> for enums."""
        return f"{NAMESPACE}.{self.enum}" if self.enum else EDM_TYPES[self.type]

    @property
    def default(self) -> object:
        if self.options:
            return self.options[0]
        return {"string": "", "guid": EMPTY_GUID, "decimal": 0, "int": 0, "int64": 0, "bool": False,
                "date": EMPTY_DATE, "datetime": EMPTY_DATETIME}[self.type]


def S(n: int | None = None) -> Field:
    return Field("string", max_len=n)


def E(enum: str, *options: str, read_only: bool = False) -> Field:
    """An enum field: its OData enum type name (as the API reference names it) and its captions."""
    return Field("string", options=options, read_only=read_only, enum=enum)


G, D, B, INT, DATE = Field("guid"), Field("decimal"), Field("bool"), Field("int"), Field("date")
RO_G, RO_D, RO_S = Field("guid", read_only=True), Field("decimal", read_only=True), Field("string", read_only=True)
STAMP = Field("datetime", read_only=True)


@dataclass(frozen=True)
class Nav:
    """A navigation property. Single-valued: the target row whose key equals this row's `via` field
    (customer.currency: currencyId → currencies.id). Collection: the target rows whose `via` field equals
    this row's key (salesOrder.salesOrderLines: salesOrderLines.documentId → id)."""

    name: str
    target: str  # entity set name
    via: str
    many: bool = False


@dataclass(frozen=True)
class EntitySet:
    name: str  # the URL segment, e.g. "customers"
    type_name: str  # the OData type, Microsoft.NAV.<type_name>
    fields: dict[str, Field]
    series: tuple[str, int, int] | None = None  # (prefix, first, step) for `number` when not given
    unique: str | None = None  # the natural key that must be unique per company ("number" or "code")
    parent: str | None = None  # document lines: the header entity set (`documentId` points there)
    lines: str | None = None  # document headers: their lines entity set
    webhooks: bool = True
    writable: bool = True
    extra: dict[str, object] = field(default_factory=dict)
    navigation: tuple[Nav, ...] = ()
    key: str = "id"
    scoped: bool = True  # lives under companies({id})/ (False: at the API root)

    def nav(self, name: str) -> Nav | None:
        return next((n for n in self.navigation if n.name == name), None)

    @property
    def stamped(self) -> bool:
        return "lastModifiedDateTime" in self.fields


_ADDRESS = {"addressLine1": S(100), "addressLine2": S(50), "city": S(30), "state": S(30), "country": S(10),
            "postalCode": S(20)}

CUSTOMER_BLOCKED = (" ", "Ship", "Invoice", "All")

_customer = {
    "id": RO_G, "number": S(20), "displayName": S(100), "type": E("contactType", "Company", "Person"),
    **_ADDRESS, "phoneNumber": S(30), "email": S(80), "website": S(80), "salespersonCode": S(20), "balanceDue": RO_D,
    "creditLimit": D, "taxLiable": B, "taxAreaId": G, "taxAreaDisplayName": RO_S, "taxRegistrationNumber": S(20),
    "currencyId": G, "currencyCode": S(10), "paymentTermsId": G, "shipmentMethodId": G, "paymentMethodId": G,
    "blocked": E("customerBlocked", *CUSTOMER_BLOCKED), "lastModifiedDateTime": STAMP,
}
_vendor = {
    "id": RO_G, "number": S(20), "displayName": S(100), **_ADDRESS, "phoneNumber": S(30), "email": S(80),
    "website": S(80), "taxRegistrationNumber": S(20), "currencyId": G, "currencyCode": S(10), "irs1099Code": S(10),
    "paymentTermsId": G, "paymentMethodId": G, "taxLiable": B, "blocked": E("vendorBlocked", " ", "Payment", "All"),
    "balance": RO_D, "lastModifiedDateTime": STAMP,
}
_contact = {
    "id": RO_G, "number": S(20), "type": E("contactType", "Company", "Person"), "displayName": S(100),
    "jobTitle": S(30),
    "companyNumber": S(20), "companyName": RO_S, "businessRelation": RO_S, **_ADDRESS, "phoneNumber": S(30),
    "mobilePhoneNumber": S(30), "email": S(80), "website": S(80), "searchName": S(100), "privacyBlocked": B,
    "taxRegistrationNumber": S(20), "lastInteractionDate": Field("date", read_only=True),
    "lastModifiedDateTime": STAMP,
}
_item = {
    "id": RO_G, "number": S(20), "displayName": S(100), "displayName2": S(50),
    "type": E("itemType", "Inventory", "Service", "Non-Inventory"), "itemCategoryId": G, "itemCategoryCode": S(20),
    "blocked": B, "gtin": S(14), "inventory": RO_D, "unitPrice": D, "priceIncludesTax": B, "unitCost": D,
    "taxGroupId": G, "taxGroupCode": S(20), "baseUnitOfMeasureId": G, "baseUnitOfMeasureCode": S(10),
    "generalProductPostingGroupId": G, "generalProductPostingGroupCode": S(20), "inventoryPostingGroupId": G,
    "inventoryPostingGroupCode": S(20), "lastModifiedDateTime": STAMP,
}
_currency = {"id": RO_G, "code": S(10), "displayName": S(30), "symbol": S(10), "amountDecimalPlaces": S(5),
             "amountRoundingPrecision": D, "lastModifiedDateTime": STAMP}
_uom = {"id": RO_G, "code": S(10), "displayName": S(50), "internationalStandardCode": S(10), "symbol": S(10),
        "lastModifiedDateTime": STAMP}
_payment_terms = {"id": RO_G, "code": S(10), "displayName": S(100), "dueDateCalculation": S(32),
                  "discountDateCalculation": S(32), "discountPercent": D, "calculateDiscountOnCreditMemos": B,
                  "lastModifiedDateTime": STAMP}
_shipment_method = {"id": RO_G, "code": S(10), "displayName": S(100), "lastModifiedDateTime": STAMP}
# `commisionPercent` is spelled so in the BC API (sic).
_salesperson = {"id": RO_G, "code": S(20), "displayName": S(50), "email": S(80), "email2": S(80),
                "phoneNo": S(30), "jobTitle": S(30), "commisionPercent": D, "privacyBlocked": B, "blocked": B,
                "lastModifiedDateTime": STAMP}
_opportunity = {
    "id": RO_G, "number": S(20), "contactNumber": S(20), "contactName": RO_S, "contactCompanyName": RO_S,
    "salespersonCode": S(20), "description": S(100),
    "status": E("opportunityStatus", "Not Started", "In Progress", "Won", "Lost"),
    "closed": B, "creationDate": DATE, "dateClosed": DATE, "calculatedCurrentValue": D, "chancesOfSuccessPrc": D,
    "completedPrc": D, "estimatedValue": D, "estimatedClosingDate": DATE, "lastModifiedDateTime": STAMP,
}
_SELL_TO = {"sellToAddressLine1": S(100), "sellToAddressLine2": S(50), "sellToCity": S(30),
            "sellToCountry": S(10), "sellToState": S(30), "sellToPostCode": S(20)}
_DOC_COMMON = {
    "id": RO_G, "number": S(20), "externalDocumentNumber": S(35), "postingDate": DATE, "customerId": G,
    "customerNumber": S(20), "customerName": RO_S, "billToName": RO_S, "billToCustomerId": G,
    "billToCustomerNumber": S(20), "shipToName": S(100), "shipToContact": S(100), **_SELL_TO, "currencyId": G,
    "currencyCode": S(10), "pricesIncludeTax": B, "paymentTermsId": G, "shipmentMethodId": G,
    "salesperson": S(20), "discountAmount": D, "discountAppliedBeforeTax": Field("bool", read_only=True),
    "totalAmountExcludingTax": RO_D, "totalTaxAmount": RO_D, "totalAmountIncludingTax": RO_D,
    "phoneNumber": S(30), "email": S(80), "lastModifiedDateTime": STAMP,
}
_sales_order = {**_DOC_COMMON, "orderDate": DATE, "requestedDeliveryDate": DATE, "partialShipping": B,
                "fullyShipped": Field("bool", read_only=True),
                "status": E("salesOrderEntityBufferStatus", "Draft", "In Review", "Open", "Released", read_only=True)}
_sales_invoice = {**_DOC_COMMON, "invoiceDate": DATE, "dueDate": DATE, "customerPurchaseOrderReference": S(35),
                  "orderId": RO_G, "orderNumber": RO_S,
                  "status": E("invoiceEntityAggregateStatus", "Draft", "In Review", "Open", "Paid", "Canceled",
                              "Corrective", read_only=True)}
_LINE_COMMON = {
    "id": RO_G, "documentId": G, "sequence": INT,
    "lineType": E("invoiceLineAggLineType", "Item", "Comment", "Account", "Resource", "Fixed Asset", "Charge"),
    "itemId": G, "accountId": G,
    "lineObjectNumber": S(20), "description": S(100), "description2": S(50), "unitOfMeasureId": G,
    "unitOfMeasureCode": S(10), "quantity": D, "unitPrice": D, "discountAmount": D, "discountPercent": D,
    "discountAppliedBeforeTax": Field("bool", read_only=True), "amountExcludingTax": RO_D, "taxCode": S(20),
    "taxPercent": RO_D, "totalTaxAmount": RO_D, "amountIncludingTax": RO_D, "invoiceDiscountAllocation": RO_D,
    "netAmount": RO_D, "netTaxAmount": RO_D, "netAmountIncludingTax": RO_D, "shipmentDate": DATE,
    "itemVariantId": G, "locationId": G,
}
_sales_order_line = {**_LINE_COMMON, "shippedQuantity": RO_D, "invoicedQuantity": RO_D, "invoiceQuantity": D,
                     "shipQuantity": D}
_sales_invoice_line = dict(_LINE_COMMON)

# Navigation properties the API reference lists whose targets the emulator serves (countryRegion, picture,
# defaultDimensions… are not served, so not declared). Single-valued ones follow the record's id field.
_CURRENCY, _TERMS, _SHIPMENT = Nav("currency", "currencies", "currencyId"), \
    Nav("paymentTerm", "paymentTerms", "paymentTermsId"), Nav("shipmentMethod", "shipmentMethods", "shipmentMethodId")
_DOC_NAV = (Nav("customer", "customers", "customerId"), _CURRENCY, _TERMS, _SHIPMENT)
_LINE_NAV = (Nav("item", "items", "itemId"), Nav("unitOfMeasure", "unitsOfMeasure", "unitOfMeasureId"))

ENTITY_SETS: dict[str, EntitySet] = {e.name: e for e in [
    EntitySet("customers", "customer", _customer, series=("C", 10, 10), unique="number",
              navigation=(_CURRENCY, _TERMS, _SHIPMENT)),
    EntitySet("vendors", "vendor", _vendor, series=("V", 10, 10), unique="number", navigation=(_CURRENCY, _TERMS)),
    EntitySet("contacts", "contact", _contact, series=("CT", 1, 1), unique="number",
              extra={"width": 6}),
    EntitySet("items", "item", _item, series=("", 1000, 1), unique="number", extra={"width": 0},
              navigation=(Nav("unitOfMeasure", "unitsOfMeasure", "baseUnitOfMeasureId"),)),
    EntitySet("currencies", "currency", _currency, unique="code"),
    EntitySet("unitsOfMeasure", "unitOfMeasure", _uom, unique="code"),
    EntitySet("paymentTerms", "paymentTerm", _payment_terms, unique="code"),
    EntitySet("shipmentMethods", "shipmentMethod", _shipment_method, unique="code"),
    EntitySet("salespeoplePurchasers", "salespersonPurchaser", _salesperson, unique="code"),
    EntitySet("opportunities", "opportunity", _opportunity, series=("OP", 1, 1), unique="number",
              extra={"width": 6}),
    EntitySet("salesOrders", "salesOrder", _sales_order, series=("S-ORD", 101001, 1), unique="number",
              lines="salesOrderLines", extra={"width": 0},
              navigation=(*_DOC_NAV, Nav("salesOrderLines", "salesOrderLines", "documentId", many=True))),
    EntitySet("salesOrderLines", "salesOrderLine", _sales_order_line, parent="salesOrders", webhooks=False,
              navigation=(Nav("salesOrder", "salesOrders", "documentId"), *_LINE_NAV)),
    EntitySet("salesInvoices", "salesInvoice", _sales_invoice, series=("S-INV", 102201, 1), unique="number",
              lines="salesInvoiceLines", extra={"width": 0},
              navigation=(*_DOC_NAV, Nav("salesInvoiceLines", "salesInvoiceLines", "documentId", many=True))),
    EntitySet("salesInvoiceLines", "salesInvoiceLine", _sales_invoice_line, parent="salesInvoices",
              webhooks=False, navigation=(Nav("salesInvoice", "salesInvoices", "documentId"), *_LINE_NAV)),
]}

# Company records carry their company in this hidden field (see state.py); a company's navigation to each of
# its entity sets follows it.
COMPANY = "_companyId"

# `timestamp` is the company row's version (a BigInteger in AL, hence Edm.Int64; unconfirmed).
COMPANY_FIELDS = {"id": RO_G, "systemVersion": RO_S, "timestamp": Field("int64", read_only=True), "name": RO_S,
                  "displayName": RO_S, "businessProfileId": RO_S, "systemCreatedAt": STAMP,
                  "systemCreatedBy": RO_G, "systemModifiedAt": STAMP, "systemModifiedBy": RO_G}

SUBSCRIPTION_FIELDS = {"subscriptionId": RO_S, "notificationUrl": S(250), "resource": S(250), "userId": RO_G,
                       "lastModifiedDateTime": STAMP, "clientState": S(2048), "expirationDateTime": STAMP,
                       "systemCreatedAt": STAMP, "systemCreatedBy": RO_G, "systemModifiedAt": STAMP,
                       "systemModifiedBy": RO_G}

COMPANIES = EntitySet("companies", "company", COMPANY_FIELDS, webhooks=False, writable=False, scoped=False,
                      navigation=tuple(Nav(name, name, COMPANY, many=True) for name in ENTITY_SETS))
SUBSCRIPTIONS = EntitySet("subscriptions", "subscription", SUBSCRIPTION_FIELDS, webhooks=False,
                          key="subscriptionId", scoped=False)

# Every entity set the API serves, in service-document order.
SERVED: dict[str, EntitySet] = {e.name: e for e in [COMPANIES, *ENTITY_SETS.values(), SUBSCRIPTIONS]}


def format_number(entity: EntitySet, n: int) -> str:
    """The `number` a number series gives its n-th value, e.g. C00010, CT000001, 1000, S-ORD101001."""
    prefix = entity.series[0] if entity.series else ""
    width = int(entity.extra.get("width", 5))  # type: ignore[call-overload]
    return f"{prefix}{n:0{width}d}" if width else f"{prefix}{n}"
