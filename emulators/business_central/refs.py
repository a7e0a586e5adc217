"""References between records, resolved and kept consistent as BC's AL code does on validate:
`currencyCode` ⇄ `currencyId`, payment terms, shipment methods, salesperson codes, contacts' company,
documents' customer, lines' item and amounts. A reference to a missing record fails the write."""

from __future__ import annotations

from typing import Any

from emulators.business_central.errors import BCError
from emulators.business_central.schema import EMPTY_GUID
from emulators.business_central.state import Environment
from emulators.business_central.validate import empty_guid

_LABEL = {"currencies": "Currency", "paymentTerms": "Payment Terms", "shipmentMethods": "Shipment Method",
          "salespeoplePurchasers": "Salesperson/Purchaser", "unitsOfMeasure": "Unit of Measure",
          "customers": "Customer", "contacts": "Contact", "items": "Item", "salesOrders": "Sales Header",
          "salesInvoices": "Sales Header"}

# (id field, code field, target entity set, target code field); either side may be absent.
Pair = tuple[str | None, str | None, str, str]
_CURRENCY: Pair = ("currencyId", "currencyCode", "currencies", "code")
_TERMS: Pair = ("paymentTermsId", None, "paymentTerms", "code")
_SHIPMENT: Pair = ("shipmentMethodId", None, "shipmentMethods", "code")
_DOC: list[Pair] = [("customerId", "customerNumber", "customers", "number"),
                    ("billToCustomerId", "billToCustomerNumber", "customers", "number"),
                    _CURRENCY, _TERMS, _SHIPMENT, (None, "salesperson", "salespeoplePurchasers", "code")]
PAIRS: dict[str, list[Pair]] = {
    "customers": [_CURRENCY, _TERMS, _SHIPMENT, (None, "salespersonCode", "salespeoplePurchasers", "code")],
    "vendors": [_CURRENCY, _TERMS],
    "items": [("baseUnitOfMeasureId", "baseUnitOfMeasureCode", "unitsOfMeasure", "code")],
    "opportunities": [(None, "contactNumber", "contacts", "number"),
                      (None, "salespersonCode", "salespeoplePurchasers", "code")],
    "salesOrders": _DOC,
    "salesInvoices": _DOC,
    "salesOrderLines": [("itemId", "lineObjectNumber", "items", "number"),
                        ("unitOfMeasureId", "unitOfMeasureCode", "unitsOfMeasure", "code")],
}
PAIRS["salesInvoiceLines"] = PAIRS["salesOrderLines"]


def missing(entity: str, field: str, value: Any) -> BCError:
    return BCError(400, "Internal_RecordNotFound", f"The {_LABEL.get(entity, entity)} does not exist. "
                                                   f"Identification fields and values: {field}='{value}'")


def resolve(env: Environment, entity: str, company: str, changes: dict[str, Any]) -> None:
    """Check every reference named in `changes` and fill its twin field (id ⇄ code) in place."""
    for id_f, code_f, target, target_code in PAIRS.get(entity, []):
        if id_f and id_f in changes:
            value = changes[id_f]
            row = None if empty_guid(value) else env.find(target, company, value)
            if not empty_guid(value) and row is None:
                raise missing(target, "SystemId", value)
            code = row[target_code] if row else ""
            if code_f and code_f in changes and changes[code_f].casefold() != code.casefold():
                raise BCError(400, "Application_DialogException",
                              f"The values of {id_f} and {code_f} do not refer to the same {_LABEL[target]}.")
            if code_f:
                changes[code_f] = code
        elif code_f and code_f in changes:
            value = changes[code_f]
            row = env.find_by(target, company, target_code, value) if value else None
            if value and row is None:
                raise missing(target, target_code.capitalize(), value)
            if row:
                changes[code_f] = row[target_code]
            if id_f:
                changes[id_f] = row["id"] if row else EMPTY_GUID


def derive(env: Environment, entity: str, company: str, changes: dict[str, Any], current: dict[str, Any]) -> None:
    """Fields BC computes from others (names copied from the referenced record, line amounts)."""
    merged = {**current, **changes}
    if entity == "contacts":
        if merged.get("type") == "Company":
            changes["companyName"] = merged.get("displayName", "")
            if "number" in merged and not merged.get("companyNumber"):
                changes["companyNumber"] = merged["number"]
        elif "companyNumber" in changes:
            comp = env.find_by("contacts", company, "number", changes["companyNumber"]) \
                if changes["companyNumber"] else None
            if changes["companyNumber"] and (comp is None or comp.get("type") != "Company"):
                raise missing("contacts", "No.", changes["companyNumber"])
            changes["companyName"] = comp["displayName"] if comp else ""
    elif entity == "opportunities" and "contactNumber" in changes:
        contact = env.find_by("contacts", company, "number", changes["contactNumber"])
        changes["contactName"] = contact["displayName"] if contact else ""
        changes["contactCompanyName"] = contact.get("companyName", "") if contact else ""
    elif entity in ("salesOrders", "salesInvoices") and "customerId" in changes:
        _copy_customer(env, company, changes)
    elif entity in ("salesOrderLines", "salesInvoiceLines"):
        _line(env, company, changes, merged)


def _copy_customer(env: Environment, company: str, changes: dict[str, Any]) -> None:
    cust = env.find("customers", company, changes["customerId"]) if not empty_guid(changes["customerId"]) else None
    if cust is None:
        return
    changes.setdefault("billToCustomerId", cust["id"])
    changes.setdefault("billToCustomerNumber", cust["number"])
    changes["customerName"] = changes["billToName"] = cust["displayName"]
    for src, dst in [("addressLine1", "sellToAddressLine1"), ("addressLine2", "sellToAddressLine2"),
                     ("city", "sellToCity"), ("country", "sellToCountry"), ("state", "sellToState"),
                     ("postalCode", "sellToPostCode"), ("phoneNumber", "phoneNumber"), ("email", "email"),
                     ("currencyId", "currencyId"), ("currencyCode", "currencyCode"),
                     ("paymentTermsId", "paymentTermsId"), ("shipmentMethodId", "shipmentMethodId"),
                     ("salespersonCode", "salesperson")]:
        changes.setdefault(dst, cust.get(src))
    changes.setdefault("shipToName", cust["displayName"])


def _line(env: Environment, company: str, changes: dict[str, Any], merged: dict[str, Any]) -> None:
    if "itemId" in changes and not empty_guid(changes["itemId"]):
        item = env.find("items", company, changes["itemId"])
        if item is not None:
            changes.setdefault("description", item["displayName"])
            changes.setdefault("unitPrice", item["unitPrice"])
            if not merged.get("unitOfMeasureCode"):
                changes["unitOfMeasureCode"] = item["baseUnitOfMeasureCode"]
                changes["unitOfMeasureId"] = item["baseUnitOfMeasureId"]
            merged = {**merged, **changes}
    qty, price = float(merged.get("quantity", 0)), float(merged.get("unitPrice", 0))
    gross = round(qty * price, 2)
    discount = float(changes.get("discountAmount", 0))
    if "discountPercent" in changes or "discountAmount" not in changes:
        discount = round(gross * float(merged.get("discountPercent", 0)) / 100, 2)
    net = round(gross - discount, 2)
    changes.update(discountAmount=discount, amountExcludingTax=net, netAmount=net, amountIncludingTax=net,
                   netAmountIncludingTax=net, totalTaxAmount=0, netTaxAmount=0)


def document_totals(env: Environment, lines_entity: str, company: str, document_id: str) -> dict[str, float]:
    """Header totals recomputed from its lines (no tax in the emulator: tax areas are not modelled)."""
    total = round(sum(float(r.get("amountExcludingTax", 0)) for r in env.rows(lines_entity, company)
                      if r.get("documentId") == document_id.lower()), 2)
    return {"totalAmountExcludingTax": total, "totalTaxAmount": 0, "totalAmountIncludingTax": total}
