"""The three standard packs: they load, cover what the issue lists, and map realistic records."""

from __future__ import annotations

from shared.mapping import Direction, Side, map_record, matches

BC_TABLE = {  # FEATURES.md §1: mapping → (ERP entity set, CRM entity set, direction)
    "salespeople": ("salespeoplePurchasers", "systemusers", Direction.TO_ERP),
    "customers": ("customers", "accounts", Direction.BIDIRECTIONAL),
    "contacts": ("contacts", "contacts", Direction.BIDIRECTIONAL),
    "currencies": ("currencies", "transactioncurrencies", Direction.TO_CRM),
    "units-of-measure": ("unitsOfMeasure", "uomschedules", Direction.TO_CRM),
    "items": ("items", "products", Direction.BIDIRECTIONAL),
    "resources": ("resources", "products", Direction.BIDIRECTIONAL),
    "customer-price-groups": ("customerPriceGroups", "pricelevels", Direction.TO_CRM),
    "sales-prices": ("salesPrices", "productpricelevels", Direction.TO_CRM),
    "opportunities": ("opportunities", "opportunities", Direction.BIDIRECTIONAL),
    "sales-invoices": ("salesInvoices", "invoices", Direction.TO_CRM),
    "sales-invoice-lines": ("salesInvoiceLines", "invoicedetails", Direction.TO_CRM),
    "sales-orders": ("salesOrders", "salesorders", Direction.TO_CRM),
    "sales-order-status": ("salesOrders", "salesorders", Direction.BIDIRECTIONAL),
}


def test_bc_sales_has_the_14_mappings_and_3_option_mappings(bc_sales):
    for name, (erp, crm, direction) in BC_TABLE.items():
        m = bc_sales.mapping(name)
        assert (m.erp.entity, m.crm.entity, m.direction) == (erp, crm, direction), name
    options = {m.name: m.crm.option_set for m in bc_sales.mappings if m.kind == "option"}
    assert options == {"payment-terms": "paymenttermscode", "shipment-methods": "address1_freighttermscode",
                       "shipping-agents": "address1_shippingmethodcode"}
    assert set(bc_sales.mapping("customers").depends_on) == {
        "salespeople", "currencies", "payment-terms", "shipment-methods", "shipping-agents"}
    assert bc_sales.mapping("items").depends_on == ["units-of-measure"]


def test_bc_customer_to_account(bc_sales):
    customer = {"id": "b1", "number": "10000", "displayName": "Adatum Corporation", "addressLine1": "Station Street 52",
                "city": "Zaanstad", "postalCode": "1530", "country": "NL", "phoneNumber": "+31 20 000",
                "email": "robert@adatum.com", "website": "adatum.com", "blocked": "_x0020_", "creditLimit": 5000,
                "currencyId": "eur-bc", "salespersonCode": "PS", "paymentTermsId": "pt-bc",
                "shipmentMethodId": None}
    result = map_record(bc_sales.mapping("customers"), customer, "to_crm", creating=True, resolved={
        "transactioncurrencyid": "eur-crm", "ownerid": "user-ps", "paymenttermscode": 1})
    assert result.complete
    assert result.payload == {
        "customertypecode": 3, "accountnumber": "10000", "name": "Adatum Corporation",
        "address1_line1": "Station Street 52", "address1_city": "Zaanstad", "address1_postalcode": "1530",
        "address1_country": "Netherlands", "telephone1": "+31 20 000", "emailaddress1": "robert@adatum.com",
        "websiteurl": "adatum.com", "creditlimit": 5000.0, "statecode": 0,
        "transactioncurrencyid@odata.bind": "/transactioncurrencies(eur-crm)",
        "ownerid@odata.bind": "/systemusers(user-ps)", "paymenttermscode": 1,
        "address1_freighttermscode": None}


def test_bc_option_mapping_blanks_unknown_values(bc_sales):
    terms = bc_sales.mapping("payment-terms")
    assert map_record(terms, {"code": "30 DAYS"}, "to_crm").payload == {"paymenttermscode": 1}
    assert map_record(terms, {"code": "CM"}, "to_crm").payload == {"paymenttermscode": None}


def test_bc_salesperson_from_user(bc_sales):
    user = {"fullname": "Annette Hill-Larsen, Sales", "internalemailaddress": "annette@contoso.com"}
    payload = map_record(bc_sales.mapping("salespeople"), user, "to_erp").payload
    assert payload == {"code": "ANNETTEHILLLARSENSAL", "displayName": "Annette Hill-Larsen, Sales",
                       "email": "annette@contoso.com"}


def test_fo_dataverse_company_striping(fo_dataverse):
    customers = fo_dataverse.mapping("customers")
    company = next(f for f in customers.fields if f.erp == "dataAreaId")
    assert company.lookup.mapping == "companies" and company.not_null
    assert customers.erp.natural_key == ["dataAreaId", "CustomerAccount"]
    assert customers.crm.natural_key == ["msdyn_company", "accountnumber"]
    result = map_record(customers, {"dataAreaId": "usmf", "CustomerAccount": "US-001", "OrganizationName": "X",
                                    "CustomerGroupId": "10", "CreditLimitIsMandatory": "No"}, "to_crm",
                        resolved={"msdyn_company": "co-1", "msdyn_customergroupid": "cg-1"})
    assert result.payload["msdyn_company@odata.bind"] == "/cdm_companies(co-1)"
    assert result.payload["msdyn_customergroupid@odata.bind"] == "/msdyn_customergroups(cg-1)"
    assert result.payload["msdyn_creditlimitismandatory"] is False
    missing = map_record(customers, {"dataAreaId": None}, "to_crm")
    assert missing.errors[0].field == "dataAreaId ⇄ msdyn_company"
    assert {m.name for m in fo_dataverse.mappings} == {
        "companies", "currencies", "customer-groups", "payment-terms", "customers", "person-customers", "vendors",
        "contact-persons", "products"}
    # Organisations and persons are separate maps of one entity, chosen by the party type (an enum literal).
    assert matches(customers, {"PartyType": "Organization"}, Side.ERP)
    assert not matches(customers, {"PartyType": "Person"}, Side.ERP)
    assert matches(fo_dataverse.mapping("person-customers"), {"PartyType": "Person"}, Side.ERP)


def test_p2c_accounts_and_products(p2c):
    account = {"accountnumber": "A-1", "name": "Fourth Coffee", "address1_city": "  oslo ",
               "address1_country": "Norway"}
    payload = map_record(p2c.mapping("accounts-to-customers"), account, "to_erp").payload
    assert payload == {"dataAreaId": "usmf", "CustomerAccount": "A-1", "OrganizationName": "Fourth Coffee",
                       "PartyType": "Organization",
                       "CustomerGroupId": "10", "LanguageId": "en-us", "AddressCity": "Oslo",
                       "AddressCountryRegionId": "NOR"}
    products = p2c.mapping("products")
    assert products.direction is Direction.TO_CRM and products.entity(Side.ERP).entity == "CDSReleasedDistinctProducts"
    out = map_record(products, {"ProductNumber": "P1", "ProductName": "Chair", "SalesPrice": 10.005,
                                "ProductType": "Kit"}, "to_crm").payload
    assert out == {"productnumber": "P1", "name": "Chair", "price": 10.01, "producttypecode": 2}
