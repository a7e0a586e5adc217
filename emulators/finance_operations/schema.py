"""The one source of truth for what the F&O emulator serves: legal entities' entity sets, their public
entity names, keys, properties with Edm types, enums, navigation properties, mandatory fields, foreign
keys and number sequences. `$metadata`, the metadata API, validation, seeding and data events all read it.

Names follow the documented OData public entities (Microsoft Learn data entity pages: "Customers V3",
"Vendors V2", "Sales order headers V2", "Sales order lines V2", …) as far as they were confirmed; the rest
are marked (unconfirmed) and kept stable because the mapping packs use them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

NAMESPACE = "Microsoft.Dynamics.DataEntities"
EDM = {"string": "Edm.String", "decimal": "Edm.Decimal", "int": "Edm.Int32", "int64": "Edm.Int64",
       "date": "Edm.Date", "datetime": "Edm.DateTimeOffset"}
# Metadata API "DataType" per kind (unconfirmed wording: the API prints X++ base types).
AX_TYPE = {"string": "String", "decimal": "Real", "int": "Integer", "int64": "Int64", "date": "Date",
           "datetime": "UtcDateTime", "enum": "Enum"}

# Enum name → (member name, value). Values of NoYes, CustVendorBlocked and SalesStatus are the X++ enums';
# DirPartyBaseType, SalesQuotationStatus and EcoResProductType values are (unconfirmed).
ENUMS: dict[str, list[tuple[str, int]]] = {
    "NoYes": [("No", 0), ("Yes", 1)],
    "DirPartyBaseType": [("None", 0), ("Person", 1), ("Organization", 2)],
    "CustVendorBlocked": [("No", 0), ("Invoice", 1), ("All", 2), ("Payment", 3), ("Requisition", 4),
                          ("Never", 5)],
    "EcoResProductType": [("Item", 1), ("Service", 2)],
    "SalesStatus": [("None", 0), ("Backorder", 1), ("Delivered", 2), ("Invoiced", 3), ("Canceled", 4)],
    "SalesQuotationStatus": [("Created", 0), ("Sent", 1), ("Confirmed", 2), ("Lost", 3), ("Cancelled", 4)],
}


@dataclass(frozen=True)
class Prop:
    name: str
    type: str = "string"  # string | decimal | int | int64 | date | datetime | enum
    enum: str | None = None
    label: str = ""  # as F&O's infolog names the field ("Customer group")
    read_only: bool = False  # assigned by the service (number sequences excepted, see EntityDef.numbering)
    # Virtual (unmapped) fields: not stored in a table, so changing only them raises no data event.
    virtual: bool = False

    @property
    def edm(self) -> str:
        return f"{NAMESPACE}.{self.enum}" if self.type == "enum" else EDM[self.type]


@dataclass(frozen=True)
class ForeignKey:
    field: str
    target: str  # entity set
    target_field: str
    table_label: str  # "Customer groups" in "…is not found in the related table 'Customer groups'."


@dataclass(frozen=True)
class Navigation:
    name: str
    target: str  # entity set (collection)
    on: tuple[tuple[str, str], ...]  # (this entity's field, target's field)


@dataclass
class EntityDef:
    entity_set: str
    public: str  # public entity name (the EntityType)
    table: str  # AOT entity name, as write errors name it
    table_label: str  # the table a duplicate-key error names
    keys: tuple[str, ...]
    props: dict[str, Prop]
    mandatory: tuple[str, ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = ()
    navigations: tuple[Navigation, ...] = ()
    numbering: str | None = None  # the key field a number sequence fills when blank
    defaults: dict[str, object] = field(default_factory=dict)
    read_only: bool = False
    category: str = "Master"

    @property
    def company_specific(self) -> bool:
        return self.keys[0] == "dataAreaId"

    @property
    def fields(self) -> set[str]:
        return set(self.props)


def _props(spec: str) -> dict[str, Prop]:
    """"Name Name:decimal Name:enum=NoYes Name:ro Name:virtual Name|Label text" → Props (space-separated items,
    `_` in a label for a space)."""
    out: dict[str, Prop] = {}
    for item in spec.split():
        head, _, label = item.partition("|")
        name, *flags = head.split(":")
        typ, enum, ro, virtual = "string", None, False, False
        for f in flags:
            if f.startswith("enum="):
                typ, enum = "enum", f[5:]
            elif f == "ro":
                ro = True
            elif f == "virtual":
                virtual = True
            else:
                typ = f
        out[name] = Prop(name, typ, enum, label.replace("_", " "), ro, virtual)
    return out


def _fk(field_: str, target: str, target_field: str, label: str) -> ForeignKey:
    return ForeignKey(field_, target, target_field, label)


_CUSTOMER = _fk("CustomerAccount", "CustomersV3", "CustomerAccount", "Customers")
_ITEM = _fk("ItemNumber", "CDSReleasedDistinctProducts", "ProductNumber", "Released products")
_CUR = "Currencies"


def build_entities() -> dict[str, EntityDef]:
    e = [
        EntityDef("LegalEntities", "LegalEntity", "OMLegalEntity", "Legal entities", ("LegalEntityId",),
                  _props("LegalEntityId Name AddressCountryRegionId CurrencyCode"), read_only=True,
                  category="Reference"),
        EntityDef("Currencies", "Currency", "Currency", "Currencies", ("CurrencyCode",),
                  _props("CurrencyCode Name Symbol CurrencyGender ReferenceCurrencyForTriangulation"),
                  mandatory=("CurrencyCode",), category="Reference"),
        EntityDef("CustomerGroups", "CustomerGroup", "CustCustomerGroupEntity", "Customer groups",
                  ("dataAreaId", "CustomerGroupId"),
                  _props("dataAreaId CustomerGroupId|Customer_group Description PaymentTermId "
                         "ClearingPeriodPaymentTermName"),
                  mandatory=("CustomerGroupId",), category="Reference"),
        EntityDef("VendorGroups", "VendorGroup", "VendVendorGroupEntity", "Vendor groups",
                  ("dataAreaId", "VendorGroupId"), _props("dataAreaId VendorGroupId|Group Description"),
                  mandatory=("VendorGroupId",), category="Reference"),
        # (unconfirmed) property names of PaymentTerms.
        EntityDef("PaymentTerms", "PaymentTerm", "PaymTermEntity", "Terms of payment", ("dataAreaId", "Name"),
                  _props("dataAreaId Name|Terms_of_payment Description NumberOfDays:int"),
                  mandatory=("Name",), category="Reference"),
        EntityDef("CustomersV3", "CustomerV3", "CustCustomerV3Entity", "Customers (CustTable)",
                  ("dataAreaId", "CustomerAccount"),
                  _props("dataAreaId CustomerAccount|Customer_account PartyType:enum=DirPartyBaseType "
                         "OrganizationName|Name PersonFirstName PersonLastName|Last_name NameAlias "
                         "CustomerGroupId|Customer_group SalesCurrencyCode|Currency LanguageId "
                         "PaymentTerms|Terms_of_payment AddressStreet AddressCity AddressZipCode "
                         "AddressCountryRegionId AddressState PrimaryContactPhone PrimaryContactEmail "
                         "PrimaryContactURL CreditLimit:decimal CreditLimitIsMandatory:enum=NoYes "
                         "OnHoldStatus:enum=CustVendorBlocked SiteId WarehouseId PartyNumber:ro "
                         "FullPrimaryAddress:ro:virtual CustomerNote:virtual"),
                  mandatory=("CustomerGroupId",),
                  foreign_keys=(_fk("CustomerGroupId", "CustomerGroups", "CustomerGroupId", "Customer groups"),
                                _fk("SalesCurrencyCode", _CUR, "CurrencyCode", "Currencies"),
                                _fk("PaymentTerms", "PaymentTerms", "Name", "Terms of payment")),
                  numbering="CustomerAccount",
                  defaults={"PartyType": "Organization", "LanguageId": "en-us", "CreditLimit": 0.0,
                            "CreditLimitIsMandatory": "No", "OnHoldStatus": "No"}),
        EntityDef("VendorsV2", "VendorV2", "VendVendorV2Entity", "Vendors (VendTable)",
                  ("dataAreaId", "VendorAccountNumber"),
                  _props("dataAreaId VendorAccountNumber|Vendor_account VendorOrganizationName|Name "
                         "VendorGroupId|Group CurrencyCode|Currency AddressStreet AddressCity AddressZipCode "
                         "AddressCountryRegionId PrimaryPhoneNumber PrimaryEmailAddress "
                         "OnHoldStatus:enum=CustVendorBlocked"),
                  mandatory=("VendorGroupId", "VendorOrganizationName"),
                  foreign_keys=(_fk("VendorGroupId", "VendorGroups", "VendorGroupId", "Vendor groups"),
                                _fk("CurrencyCode", _CUR, "CurrencyCode", "Currencies")),
                  numbering="VendorAccountNumber", defaults={"OnHoldStatus": "No"}),
        # (unconfirmed) entity set name and fields of contact persons.
        EntityDef("ContactPersonsV2", "ContactPersonV2", "ContactPersonV2Entity", "Contact persons (ContactPerson)",
                  ("dataAreaId", "ContactPersonId"),
                  _props("dataAreaId ContactPersonId|Contact_ID FirstName LastName|Last_name JobTitle "
                         "PrimaryEmailAddress PrimaryPhoneNumber ContactForParty|Contact_for CustomerAccount "
                         "IsContactPersonExternallyMaintained:enum=NoYes"),
                  mandatory=("LastName",),
                  foreign_keys=(_fk("ContactForParty", "CustomersV3", "CustomerAccount", "Customers"),
                                _CUSTOMER),
                  numbering="ContactPersonId", defaults={"IsContactPersonExternallyMaintained": "No"}),
        # (unconfirmed) the dual-write product entity's name and fields.
        EntityDef("CDSReleasedDistinctProducts", "CDSReleasedDistinctProduct", "CDSReleasedDistinctProductsEntity",
                  "Released products (InventTable)", ("dataAreaId", "ProductNumber"),
                  _props("dataAreaId ProductNumber|Product_number ProductName|Product_name ProductDescription "
                         "ProductType:enum=EcoResProductType SalesPrice:decimal SalesUnitSymbol ItemNumber"),
                  mandatory=("ProductNumber", "ProductName"), defaults={"ProductType": "Item", "SalesPrice": 0.0}),
        EntityDef("SalesQuotationHeadersV2", "SalesQuotationHeaderV2", "SalesQuotationHeaderV2Entity",
                  "Quotations (SalesQuotationTable)", ("dataAreaId", "SalesQuotationNumber"),
                  _props("dataAreaId SalesQuotationNumber|Quotation QuotationCustomerAccount|Customer_account "
                         "InvoiceCustomerAccount CurrencyCode|Currency SalesQuotationStatus:enum=SalesQuotationStatus "
                         "SalesQuotationName RequestedShippingDate:date ReceiptDateRequested:date "
                         "QuotationExpiryDate:date CustomerRequisitionNumber"),
                  mandatory=("QuotationCustomerAccount", "CurrencyCode"),
                  foreign_keys=(_fk("QuotationCustomerAccount", "CustomersV3", "CustomerAccount", "Customers"),
                                _fk("InvoiceCustomerAccount", "CustomersV3", "CustomerAccount", "Customers"),
                                _fk("CurrencyCode", _CUR, "CurrencyCode", "Currencies")),
                  navigations=(Navigation("SalesQuotationLines", "SalesQuotationLines",
                                          (("dataAreaId", "dataAreaId"),
                                           ("SalesQuotationNumber", "SalesQuotationNumber"))),),
                  numbering="SalesQuotationNumber", defaults={"SalesQuotationStatus": "Created"},
                  category="Document"),
        # (unconfirmed) quotation lines keyed like order lines (InventoryLotId).
        EntityDef("SalesQuotationLines", "SalesQuotationLine", "SalesQuotationLineV2Entity",
                  "Quotation lines (SalesQuotationLine)", ("dataAreaId", "InventoryLotId"),
                  _props("dataAreaId InventoryLotId SalesQuotationNumber|Quotation LineNumber:decimal "
                         "ItemNumber|Item_number RequestedSalesQuantity:decimal SalesPrice:decimal "
                         "LineAmount:decimal SalesUnitSymbol LineDescription RequestedShippingDate:date"),
                  mandatory=("SalesQuotationNumber", "ItemNumber"),
                  foreign_keys=(_fk("SalesQuotationNumber", "SalesQuotationHeadersV2", "SalesQuotationNumber",
                                    "Quotations"), _ITEM),
                  numbering="InventoryLotId", category="Document"),
        EntityDef("SalesOrderHeadersV2", "SalesOrderHeaderV2", "SalesOrderHeaderV2Entity",
                  "Sales orders (SalesTable)", ("dataAreaId", "SalesOrderNumber"),
                  _props("dataAreaId SalesOrderNumber|Sales_order OrderingCustomerAccountNumber|Customer_account "
                         "InvoiceCustomerAccountNumber CurrencyCode|Currency SalesOrderStatus:enum=SalesStatus "
                         "SalesOrderName RequestedShippingDate:date RequestedReceiptDate:date "
                         "CustomerRequisitionNumber CustomersOrderReference"),
                  mandatory=("OrderingCustomerAccountNumber", "CurrencyCode"),
                  foreign_keys=(_fk("OrderingCustomerAccountNumber", "CustomersV3", "CustomerAccount", "Customers"),
                                _fk("InvoiceCustomerAccountNumber", "CustomersV3", "CustomerAccount", "Customers"),
                                _fk("CurrencyCode", _CUR, "CurrencyCode", "Currencies")),
                  navigations=(Navigation("SalesOrderLines", "SalesOrderLines",
                                          (("dataAreaId", "dataAreaId"), ("SalesOrderNumber", "SalesOrderNumber"))),),
                  numbering="SalesOrderNumber", defaults={"SalesOrderStatus": "Backorder"}, category="Document"),
        EntityDef("SalesOrderLines", "SalesOrderLine", "SalesOrderLineV2Entity", "Order lines (SalesLine)",
                  ("dataAreaId", "InventoryLotId"),
                  _props("dataAreaId InventoryLotId SalesOrderNumber|Sales_order LineNumber:decimal "
                         "ItemNumber|Item_number OrderedSalesQuantity:decimal SalesPrice:decimal LineAmount:decimal "
                         "SalesUnitSymbol LineDescription RequestedShippingDate:date"),
                  mandatory=("SalesOrderNumber", "ItemNumber"),
                  foreign_keys=(_fk("SalesOrderNumber", "SalesOrderHeadersV2", "SalesOrderNumber", "Sales orders"),
                                _ITEM),
                  numbering="InventoryLotId", category="Document"),
        # Posted invoices: read-only through OData (unconfirmed), written by the seed and the admin routes.
        EntityDef("SalesInvoiceHeadersV2", "SalesInvoiceHeaderV2", "SalesInvoiceHeaderV2Entity",
                  "Customer invoice journal (CustInvoiceJour)", ("dataAreaId", "InvoiceNumber"),
                  _props("dataAreaId InvoiceNumber|Invoice SalesOrderNumber "
                         "InvoiceCustomerAccountNumber|Invoice_account "
                         "InvoiceDate:date CurrencyCode TotalInvoiceAmount:decimal TotalTaxAmount:decimal "
                         "TotalDiscountAmount:decimal"),
                  mandatory=("InvoiceCustomerAccountNumber",),
                  foreign_keys=(_fk("InvoiceCustomerAccountNumber", "CustomersV3", "CustomerAccount", "Customers"),),
                  navigations=(Navigation("SalesInvoiceLines", "SalesInvoiceLines",
                                          (("dataAreaId", "dataAreaId"), ("InvoiceNumber", "InvoiceNumber"))),),
                  numbering="InvoiceNumber", read_only=True, category="Document"),
        EntityDef("SalesInvoiceLines", "SalesInvoiceLine", "SalesInvoiceLineEntity",
                  "Customer invoice lines (CustInvoiceTrans)", ("dataAreaId", "InvoiceNumber", "LineNumber"),
                  _props("dataAreaId InvoiceNumber LineNumber:decimal ItemNumber InvoicedQuantity:decimal "
                         "SalesPrice:decimal LineAmount:decimal SalesUnitSymbol ProductName"),
                  foreign_keys=(_fk("InvoiceNumber", "SalesInvoiceHeadersV2", "InvoiceNumber", "Invoices"),),
                  read_only=True, category="Document"),
    ]
    return {d.entity_set: d for d in e}


ENTITIES = build_entities()
BY_PUBLIC = {d.public.lower(): d for d in ENTITIES.values()}

# Number sequences per legal entity: `{co}` is the company's two-letter prefix, `{n}` the next number.
# (unconfirmed) formats; real environments configure their own. Party numbers are shared across companies.
NUMBER_FORMATS = {
    "CustomerAccount": "{co}-{n:06d}",
    "VendorAccountNumber": "{co}V-{n:06d}",
    "ContactPersonId": "{co}CP-{n:06d}",
    "SalesQuotationNumber": "{co}Q-{n:06d}",
    "SalesOrderNumber": "{co}SO-{n:06d}",
    "InvoiceNumber": "{co}INV-{n:06d}",
    "InventoryLotId": "{co}LOT-{n:08d}",
}
PARTY_FORMAT = "{n:09d}"


def enum_member(enum: str, value: str) -> str | None:
    """The member's own spelling for a (case-insensitive) name, or None when it is no member."""
    for name, _ in ENUMS[enum]:
        if name.lower() == value.lower():
            return name
    return None
