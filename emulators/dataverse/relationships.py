"""Many-to-one relationships, derived from the schema's lookup columns: one per (lookup, target table).

The metadata (`ManyToOneRelationships` / `OneToManyRelationships`, `$metadata` navigation properties) and
`$expand` both read this, so what the metadata promises is what a query can navigate. Each relationship has
a single-valued navigation property on the referencing table (`parentcustomerid_account` on contact) and a
collection-valued one on the referenced table, named as the relationship (`contact_customer_accounts` on
account). Schema names of standard relationships are Microsoft's (Microsoft Learn, "account EntityType" …
"Relationships"); others follow the pattern Dataverse gives a new lookup, `<referenced>_<referencing>_<column>`
(unconfirmed for the dual-write solution's tables).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import cache

from emulators.dataverse.schema import Attr, TableDef, build_tables

# (referencing table, lookup column, referenced table) → relationship schema name, where Microsoft's differs
# from the generic pattern.
KNOWN = {
    ("account", "primarycontactid", "contact"): "account_primary_contact",
    ("account", "parentaccountid", "account"): "account_parent_account",
    ("account", "transactioncurrencyid", "transactioncurrency"): "TransactionCurrency_Account",
    ("contact", "parentcustomerid", "account"): "contact_customer_accounts",
    ("contact", "parentcustomerid", "contact"): "contact_customer_contacts",
    ("contact", "transactioncurrencyid", "transactioncurrency"): "TransactionCurrency_Contact",
    ("opportunity", "customerid", "account"): "opportunity_customer_accounts",
    ("opportunity", "customerid", "contact"): "opportunity_customer_contacts",
    ("opportunity", "parentaccountid", "account"): "opportunity_parent_account",
    ("opportunity", "parentcontactid", "contact"): "opportunity_parent_contact",
    ("quote", "customerid", "account"): "quote_customer_accounts",
    ("quote", "customerid", "contact"): "quote_customer_contacts",
    ("quote", "opportunityid", "opportunity"): "opportunity_quotes",
    ("quotedetail", "quoteid", "quote"): "quote_details",
    ("salesorder", "customerid", "account"): "order_customer_accounts",
    ("salesorder", "customerid", "contact"): "order_customer_contacts",
    ("salesorder", "opportunityid", "opportunity"): "opportunity_sales_orders",
    ("salesorderdetail", "salesorderid", "salesorder"): "order_details",
    ("invoice", "customerid", "account"): "invoice_customer_accounts",
    ("invoice", "customerid", "contact"): "invoice_customer_contacts",
    ("invoice", "salesorderid", "salesorder"): "order_invoices",
    ("invoicedetail", "invoiceid", "invoice"): "invoice_details",
    ("product", "defaultuomid", "uom"): "unit_of_measurement_products",
    ("product", "defaultuomscheduleid", "uomschedule"): "unit_of_measurement_schedule_products",
    ("product", "pricelevelid", "pricelevel"): "price_level_products",
    ("productpricelevel", "productid", "product"): "product_price_levels",
    ("productpricelevel", "pricelevelid", "pricelevel"): "price_level_product_price_levels",
    ("uom", "uomscheduleid", "uomschedule"): "unit_of_measure_schedule_conversions",
    ("sdkmessageprocessingstep", "eventhandler", "serviceendpoint"): "serviceendpoint_sdkmessageprocessingstep",
    ("bulkdeleteoperation", "asyncoperationid", "asyncoperation"): "AsyncOperation_BulkDeleteOperation",
}
# System lookups present on every table: `lk_<table>base_createdby` etc. (the pattern of the standard tables).
_SYSTEM = {"createdby": "lk_{t}base_createdby", "modifiedby": "lk_{t}base_modifiedby", "ownerid": "user_{s}"}


@dataclass(frozen=True)
class Relationship:
    schema_name: str
    referencing: str  # logical name of the table holding the lookup
    attribute: str  # the lookup column
    referenced: str  # logical name of the target table
    referencing_nav: str  # single-valued navigation property on the referencing table
    metadata_id: str

    @property
    def referenced_nav(self) -> str:
        """Collection-valued navigation property on the referenced table: the relationship's schema name."""
        return self.schema_name


def _name(table: TableDef, attr: Attr, target: str) -> str:
    known = KNOWN.get((table.logical, attr.name, target))
    if known:
        return known
    if attr.name in _SYSTEM:
        return _SYSTEM[attr.name].format(t=table.logical, s=table.entity_set)
    return f"{target}_{table.logical}_{attr.name}"


@cache
def _all() -> tuple[Relationship, ...]:
    out = []
    for table in build_tables().values():
        for attr in table.attrs.values():
            if attr.type != "lookup":
                continue
            for target in attr.targets:
                name = _name(table, attr, target)
                nav = f"{attr.name}_{target}" if attr.polymorphic else attr.name
                out.append(Relationship(name, table.logical, attr.name, target, nav,
                                        str(uuid.uuid5(uuid.NAMESPACE_URL, f"dataverse-relationship:{name}"))))
    return tuple(out)


def relationships() -> tuple[Relationship, ...]:
    """Every many-to-one relationship of the served tables (stable ids across runs)."""
    return _all()


def many_to_one(logical: str) -> list[Relationship]:
    """Relationships where `logical` holds the lookup (its single-valued navigation properties)."""
    return [r for r in _all() if r.referencing == logical]


def one_to_many(logical: str) -> list[Relationship]:
    """Relationships where `logical` is the target (its collection-valued navigation properties)."""
    return [r for r in _all() if r.referenced == logical]


def single_valued(logical: str) -> dict[str, Relationship]:
    return {r.referencing_nav: r for r in many_to_one(logical)}


def collection_valued(logical: str) -> dict[str, Relationship]:
    return {r.referenced_nav: r for r in one_to_many(logical)}
