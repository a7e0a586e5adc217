"""The Bicep templates, parsed with pycep: security properties, least-privilege roles, app settings that match
what shared/settings.py reads, and webhook outputs that match the pack. No Azure and no bicep CLI needed."""

from __future__ import annotations

import os
import re
from typing import Any

import pytest
from pydantic import BaseModel

from shared.mapping.loader import load_pack
from shared.notices.routing import webhook_sources
from shared.settings import Settings, SettingsError, StorageSettings, load_settings
from tests.infra.bicep import (
    INFRA,
    KV_REFERENCE,
    MAIN,
    ROOT,
    Evaluator,
    body,
    dotted,
    module_template,
    parameter_values,
    resources_of,
    template,
    templates,
)

CLIENT_ID = "11111111-1111-1111-1111-111111111111"
# What main.bicep's settings refer to that only exists once deployed: plausible stand-ins.
KNOWN = {
    "identity.properties.clientId": CLIENT_ID,
    "storage.outputs.name": "dualsyncabc",
    "storage.outputs.tableEndpoint": "https://dualsyncabc.table.core.windows.net/",
    "serviceBus.outputs.fullyQualifiedNamespace": "dualsync-sb-abc.servicebus.windows.net",
    "serviceBus.outputs.queueName": "dualsync-changes",
    "monitoring.outputs.connectionString": "InstrumentationKey=0;IngestionEndpoint=https://x.in.applicationinsights.azure.com/",
    "keyVault.outputs.uri": "https://dualsync-kv-abc.vault.azure.net/",
}
ROLES = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39": "Azure Service Bus Data Sender",
    "4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0": "Azure Service Bus Data Receiver",
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
}
BROAD_ROLES = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",  # Owner
    "b24988ac-6180-42a0-ab88-20f7382dd24c",  # Contributor
    "090c5cfd-751d-490a-894a-3ce6f1109419",  # Azure Service Bus Data Owner
    "00482a5a-887f-4fb3-b363-3b7fe8e74483",  # Key Vault Administrator
    "17d1049b-9a84-46fb-8f53-869881c3d3ab",  # Storage Account Contributor
}
# Values that only a secret (or a key-based connection string) contains.
SECRET_SHAPES = re.compile(r"AccountKey=|SharedAccessKey|SharedAccessSignature|[?&]sig=|DefaultEndpointsProtocol|"
                           r"Password=|client_secret=", re.IGNORECASE)
SECRET_NAMES = re.compile(r"SECRET|CLIENT_STATE|_KEY$|PASSWORD|CONNECTION_STRING|__connectionString", re.IGNORECASE)
# Not a secret although named like one: with local auth off it only identifies the component (monitoring.bicep).
NOT_SECRETS = {"APPLICATIONINSIGHTS_CONNECTION_STRING"}


def app_settings(**params: Any) -> dict[str, str]:
    """The app settings main.bicep deploys, with `params` overriding main.parameters.json."""
    module = template(MAIN)["modules"]["functionApp"]["config"]["params"]
    settings = Evaluator(KNOWN, params).value(module["appSettings"])
    # Added by the module once the site exists.
    settings["DUALSYNC_PUBLIC_URL"] = "https://dualsync-func-abc.azurewebsites.net"
    return settings


def resolved_env(settings: dict[str, str]) -> dict[str, str]:
    """The environment the app sees once App Service has resolved the Key Vault references."""
    return {name: "resolved-from-key-vault-" + "x" * 32 if KV_REFERENCE.match(value) else value
            for name, value in settings.items()}


def test_every_template_parses_and_main_uses_every_module() -> None:
    docs = templates()
    assert {"main.bicep", "modules/functionapp.bicep", "modules/storage.bicep", "modules/servicebus.bicep",
            "modules/keyvault.bicep", "modules/monitoring.bicep"} <= set(docs)
    used = {m["detail"]["path"] for m in template(MAIN)["modules"].values()}
    assert used == {path for path in docs if path.startswith("modules/")}
    for path in used:
        assert (INFRA / path).is_file()


def test_function_app_is_flex_python_linux_https_tls12_no_ftp() -> None:
    doc = module_template("functionApp")
    (plan,) = resources_of(doc, "Microsoft.Web/serverfarms").values()
    assert body(plan)["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    assert body(plan)["properties"]["reserved"] is True  # Linux
    (site,) = resources_of(doc, "Microsoft.Web/sites").values()
    props = body(site)["properties"]
    assert body(site)["kind"] == "functionapp,linux"
    assert props["httpsOnly"] is True
    assert props["siteConfig"]["minTlsVersion"] == "1.2"
    assert props["siteConfig"]["scmMinTlsVersion"] == "1.2"
    assert props["siteConfig"]["ftpsState"] == "Disabled"
    assert props["functionAppConfig"]["runtime"] == {"name": "python", "version": "3.11"}
    assert props["functionAppConfig"]["deployment"]["storage"]["authentication"]["type"] == "UserAssignedIdentity"
    assert props["keyVaultReferenceIdentity"] == "identityId"
    assert body(site)["identity"]["type"] == "UserAssigned"
    basic_auth = resources_of(doc, "Microsoft.Web/sites/basicPublishingCredentialsPolicies")
    assert sorted(body(r)["name"] for r in basic_auth.values()) == ["ftp", "scm"]
    assert all(body(r)["properties"]["allow"] is False for r in basic_auth.values())


def test_storage_is_identity_only_and_private_to_anonymous_readers() -> None:
    doc = module_template("storage")
    (account,) = resources_of(doc, "Microsoft.Storage/storageAccounts").values()
    props = body(account)["properties"]
    assert props["supportsHttpsTrafficOnly"] is True
    assert props["minimumTlsVersion"] == "TLS1_2"
    assert props["allowBlobPublicAccess"] is False
    assert props["allowSharedKeyAccess"] is False
    for container in resources_of(doc, "Microsoft.Storage/storageAccounts/blobServices/containers").values():
        assert body(container)["properties"]["publicAccess"] == "None"


def test_state_tables_are_the_ones_the_app_opens() -> None:
    names = Evaluator(KNOWN).reference("tableNames")
    prefix = Evaluator(KNOWN).reference("tablePrefix")
    expected = StorageSettings(account_url="https://x", table_prefix=prefix).table_names().values()
    assert sorted(names) == sorted(expected)


def test_queue_has_sessions_duplicate_detection_and_dead_lettering() -> None:
    doc = module_template("serviceBus")
    (namespace,) = resources_of(doc, "Microsoft.ServiceBus/namespaces").values()
    assert body(namespace)["sku"]["name"] == "Standard"
    assert body(namespace)["properties"]["disableLocalAuth"] is True
    assert body(namespace)["properties"]["minimumTlsVersion"] == "1.2"
    (queue,) = resources_of(doc, "Microsoft.ServiceBus/namespaces/queues").values()
    props = body(queue)["properties"]
    assert props["requiresSession"] is True
    assert props["requiresDuplicateDetection"] is True
    assert props["deadLetteringOnMessageExpiration"] is True
    assert props["maxDeliveryCount"] == "maxDeliveryCount"
    assert 1 <= Evaluator(KNOWN).reference("maxDeliveryCount") <= 100


def test_key_vault_uses_rbac_and_keeps_deleted_secrets() -> None:
    (vault,) = resources_of(module_template("keyVault"), "Microsoft.KeyVault/vaults").values()
    props = body(vault)["properties"]
    assert props["enableRbacAuthorization"] is True
    assert props["enableSoftDelete"] is True and props["enablePurgeProtection"] is True


def _role_assignments() -> list[tuple[str, str, str]]:
    """(module, role definition id, scope) of every role assignment, the role resolved through `roles` maps."""
    found = []
    for module in ("monitoring", "storage", "serviceBus", "keyVault", "functionApp"):
        doc = module_template(module)
        variables = {name: v["value"] for name, v in doc.get("variables", {}).items()}
        for resource in resources_of(doc, "Microsoft.Authorization/roleAssignments").values():
            props = body(resource)
            assert props["properties"]["principalId"] == "principalId"
            assert props["properties"]["principalType"] == "ServicePrincipal"
            role_ref = props["properties"]["roleDefinitionId"]["function"]["parameters"]["resource_name_1"]
            loop = resource["config"].get("loop_type")
            if loop:  # `[for role in items(roles): ...]`: every value of the map
                source = loop["detail"]["array_name"]["function"]["parameters"]["arg_1"]
                found += [(module, role, props["scope"]) for role in variables[source].values()]
            else:
                found.append((module, variables[dotted(role_ref)], props["scope"]))
    return found


def test_identity_holds_exactly_the_least_privilege_roles_each_on_one_resource() -> None:
    found = _role_assignments()
    assert {ROLES.get(role, role) for _, role, _ in found} == set(ROLES.values())
    assert not {role for _, role, _ in found} & BROAD_ROLES
    scopes = {module: {scope for m, _, scope in found if m == module} for module, _, _ in found}
    # Each scoped to the one resource the app uses: the queue (not the namespace), the vault, the account.
    assert scopes == {"monitoring": {"appInsights"}, "storage": {"account"}, "serviceBus": {"queue"},
                      "keyVault": {"vault"}}


def test_no_key_or_connection_string_in_app_settings_only_key_vault_references() -> None:
    settings = app_settings()
    assert "AzureWebJobsStorage" not in settings  # the key-based form; identity uses AzureWebJobsStorage__*
    assert "FUNCTIONS_WORKER_RUNTIME" not in settings  # Flex Consumption rejects it (runtime is in functionAppConfig)
    assert not [n for n in settings if n.endswith("__CONNECTION_STRING")]
    for name, value in settings.items():
        if KV_REFERENCE.match(value):
            continue
        assert not SECRET_SHAPES.search(value) or name in NOT_SECRETS, name
        assert not SECRET_NAMES.search(name) or name in NOT_SECRETS, f"{name} must be a Key Vault reference"
    for text in (p.read_text() for p in INFRA.rglob("*.bicep")):
        assert "listKeys(" not in text and "listConnectionStrings(" not in text


def test_key_vault_references_point_at_secrets_the_vault_receives() -> None:
    referenced = {KV_REFERENCE.match(v).group(1) for v in app_settings().values() if KV_REFERENCE.match(v)}
    stored = set(Evaluator(KNOWN).value(template(MAIN)["modules"]["keyVault"]["config"]["params"]["secrets"]))
    assert referenced == stored
    assert len(referenced) == 4  # two client secrets, two webhook secrets
    # The secrets come from @secure() parameters, never from the parameters file.
    secure = {n for n, p in template(MAIN)["parameters"].items() if {"type": "secure"} in p["decorators"]}
    assert secure and not secure & set(parameter_values())


def test_identity_based_connections_name_the_managed_identity() -> None:
    from functions.processor import CONNECTION  # the Service Bus trigger's `connection=` setting prefix

    settings = app_settings()
    for prefix in ("AzureWebJobsStorage", CONNECTION):
        assert settings[f"{prefix}__credential"] == "managedidentity"
        assert settings[f"{prefix}__clientId"] == CLIENT_ID
    assert settings[f"{CONNECTION}__fullyQualifiedNamespace"] == settings["DUALSYNC_QUEUE__NAMESPACE"]
    assert settings["AzureWebJobsStorage__accountName"] == KNOWN["storage.outputs.name"]
    assert settings["AZURE_CLIENT_ID"] == CLIENT_ID
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == f"ClientId={CLIENT_ID};Authorization=AAD"


def _required_env() -> set[str]:
    """Every DUALSYNC_ variable without a default, walking the settings groups."""
    required = set()
    for name, info in Settings.model_fields.items():
        group = info.annotation
        if not (isinstance(group, type) and issubclass(group, BaseModel)):
            if info.is_required():
                required.add(f"DUALSYNC_{name.upper()}")
            continue
        required |= {f"DUALSYNC_{name.upper()}__{field.upper()}"
                     for field, sub in group.model_fields.items() if sub.is_required()}
    return required


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No DUALSYNC_ variable from the machine running the tests."""
    for name in [n for n in list(os.environ) if n.upper().startswith("DUALSYNC_")]:
        monkeypatch.delenv(name)
    return monkeypatch


def test_every_setting_the_app_requires_is_present_and_valid(clean_env: pytest.MonkeyPatch) -> None:
    monkeypatch = clean_env
    settings = app_settings()
    assert _required_env() <= set(settings)
    for name, value in resolved_env(settings).items():
        monkeypatch.setenv(name, value)
    loaded = load_settings()  # the app's own start-up validation
    assert loaded.storage.account_url == KNOWN["storage.outputs.tableEndpoint"]
    assert loaded.queue.namespace == KNOWN["serviceBus.outputs.fullyQualifiedNamespace"]
    assert loaded.webhooks.bc_client_state is not None and loaded.webhooks.dataverse_key is not None
    assert (ROOT / loaded.pack_path).is_file()


@pytest.mark.parametrize("missing", ["DUALSYNC_ERP__COMPANY_ID", "DUALSYNC_CRM__BASE_URL",
                                     "DUALSYNC_STORAGE__ACCOUNT_URL"])
def test_the_start_up_check_would_catch_a_missing_setting(clean_env: pytest.MonkeyPatch, missing: str) -> None:
    monkeypatch = clean_env
    for name, value in resolved_env(app_settings()).items():
        if name != missing:
            monkeypatch.setenv(name, value)
    monkeypatch.delenv(missing, raising=False)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert missing in str(info.value)


def test_webhook_parameters_and_outputs_match_the_pack() -> None:
    evaluator = Evaluator(KNOWN)
    sources = webhook_sources(load_pack(ROOT / evaluator.reference("packPath")))
    by_system = {system: sorted(s.entity for s in sources if s.system.value == system)
                 for system in ("business_central", "dataverse")}
    assert sorted(evaluator.reference("erpWebhookEntities")) == by_system["business_central"]
    assert sorted(evaluator.reference("crmWebhookEntities")) == by_system["dataverse"]
    outputs = template(MAIN)["outputs"]
    erp_path = "${erpPath}"
    assert evaluator.reference("erpPath") == "business_central"
    for output, system, entities in (("erpWebhookUrls", erp_path, "erpWebhookEntities"),
                                     ("dataverseWebhookUrls", "dataverse", "crmWebhookEntities")):
        loop = outputs[output]["value"]
        assert loop["loop_type"]["detail"]["array_name"] == entities
        url = loop["config"].replace("${entity}", "{entity}")
        route = sources[0].route.replace(sources[0].system.value, system).replace(sources[0].entity, "{entity}")
        assert url == "https://${functionApp.outputs.host}/api/" + route
    assert {"functionAppName", "functionAppHost", "keyVaultName"} <= set(outputs)


def test_monitored_resources_send_diagnostics_to_the_workspace() -> None:
    for module, target in (("storage", "account"), ("serviceBus", "namespace"), ("keyVault", "vault"),
                           ("functionApp", "app")):
        settings = resources_of(module_template(module), "Microsoft.Insights/diagnosticSettings").values()
        scoped = [body(s) for s in settings if body(s)["scope"] == target]
        assert scoped and scoped[0]["properties"]["workspaceId"] == "workspaceId", module


def test_parameters_file_sets_every_required_parameter_and_nothing_unknown() -> None:
    declared = template(MAIN)["parameters"]
    given = parameter_values()
    assert set(given) <= set(declared)
    required = {n for n, p in declared.items() if p["default"] is None and {"type": "secure"} not in p["decorators"]}
    assert required <= set(given)


def test_every_checkov_skip_gives_a_reason() -> None:
    skips = [line for p in INFRA.rglob("*.bicep") for line in p.read_text().splitlines() if "checkov:skip" in line]
    assert skips
    for line in skips:
        assert re.search(r"//\s*checkov:skip=CKV2?_AZURE_\d+: \S.{30,}", line), line


def test_a_finance_operations_deployment_gets_its_kind_url_and_data_event_secret(clean_env) -> None:
    settings = app_settings(erpKind="finance_operations", erpBaseUrl="https://contoso.operations.dynamics.com",
                            erpCompanyId="", packPath="templates/fo-dataverse.yaml")
    assert settings["DUALSYNC_ERP__KIND"] == "finance_operations"
    assert KV_REFERENCE.match(settings["DUALSYNC_WEBHOOKS__FO_KEY"]).group(1) == "fo-webhook-key"
    for name, value in resolved_env(settings).items():
        clean_env.setenv(name, value)
    loaded = load_settings()
    assert loaded.erp.kind == "finance_operations" and loaded.webhooks.fo_key is not None
    assert loaded.erp.effective_scope == "https://contoso.operations.dynamics.com/.default"
    evaluator = Evaluator(KNOWN, {"erpKind": "finance_operations"})
    assert evaluator.reference("erpPath") == "finance_operations"
    # A BC deployment has neither: no F&O secret in Key Vault, no F&O setting.
    assert not {"DUALSYNC_ERP__KIND", "DUALSYNC_WEBHOOKS__FO_KEY"} & set(app_settings())
    secrets = Evaluator(KNOWN).value(template(MAIN)["modules"]["keyVault"]["config"]["params"]["secrets"])
    assert "fo-webhook-key" not in secrets


def test_app_service_authentication_guards_everything_but_the_webhooks_and_health(clean_env) -> None:
    """Easy Auth (authsettingsV2) requires an Entra ID token for the app's audience on every path except the
    webhooks (their senders prove themselves with secrets) and the health probe; the app is told so, and the
    app roles it checks are documented for whoever creates the app registration."""
    from fnmatch import fnmatchcase

    import function_app

    doc = module_template("functionApp")
    (auth,) = [body(r) for r in resources_of(doc, "Microsoft.Web/sites/config").values()
               if body(r)["name"] == "authsettingsV2"]
    props = auth["properties"]
    assert props["platform"]["enabled"] is True and props["httpSettings"]["requireHttps"] is True
    validation = props["globalValidation"]
    assert validation["requireAuthentication"] is True
    # A browser (the console) is sent to sign in; API callers bring a bearer token.
    assert validation["unauthenticatedClientAction"] == "RedirectToLoginPage"
    assert validation["redirectToProvider"] == "azureactivedirectory"
    excluded = doc["variables"][validation["excludedPaths"]]["value"]
    assert sorted(excluded) == ["/api/health", "/api/webhooks/*"]

    # Every HTTP function of the app: anonymous to Easy Auth exactly when it authenticates callers itself.
    routes = {f.get_function_name(): "/api/" + f.get_trigger().route
              for f in function_app.build_app(load_pack(ROOT / "templates" / "bc-sales.yaml")).get_functions()
              if f.get_trigger().type == "httpTrigger"}
    let_through = {n for n, path in routes.items() if any(fnmatchcase(path, pattern) for pattern in excluded)}
    assert {n for n in routes if n.startswith("manage_")} and not {n for n in let_through if n.startswith("manage_")}
    assert {routes[n] for n in let_through} == {p for p in routes.values()
                                                 if p.startswith("/api/webhooks/") or p == "/api/health"}

    aad = props["identityProviders"]["azureActiveDirectory"]
    assert aad["enabled"] is True and aad["registration"]["clientId"] == "authClientId"
    assert aad["registration"]["openIdIssuer"].endswith("${authTenantId}/v2.0")
    assert sorted(aad["validation"]["allowedAudiences"]) == ["api://${authClientId}", "authClientId"]
    assert props["login"]["tokenStore"]["enabled"] is False
    module_params = template(MAIN)["modules"]["functionApp"]["config"]["params"]
    assert (module_params["authClientId"], module_params["authTenantId"]) == ("adminClientId", "adminTenantId")

    # The app trusts Easy Auth's headers because this deployment turns it on, and only then.
    settings = app_settings()
    assert settings["DUALSYNC_AUTH__EASY_AUTH"] == "true"
    for name, value in resolved_env(settings).items():
        clean_env.setenv(name, value)
    assert load_settings().auth.easy_auth is True

    for doc_path in ("docs/admin-api.md", "docs/deploy.md"):
        text = (ROOT / doc_path).read_text(encoding="utf-8")
        assert "DualSync.Operator" in text and "DualSync.Viewer" in text, doc_path
