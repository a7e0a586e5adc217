// dualsync on Azure: one resource group holding the Function App and everything it talks to.
//
//   az deployment group create -g <rg> -f infra/main.bicep -p @infra/main.parameters.json
//
// Then publish the code and register the webhooks: docs/deploy.md.
//
// Principles: one user-assigned managed identity runs the app and holds only the roles it needs, each
// scoped to the single resource it uses; no connection string or key exists where an identity works (shared
// keys are off on storage, SAS is off on Service Bus, local auth is off on Application Insights); the only
// secrets (the Dynamics client secrets and the webhook secrets) live in Key Vault and reach the app as
// Key Vault references. People (and automation) reach the admin API with Entra ID tokens through App Service
// Authentication, by app role; the webhooks stay open to their senders, who prove themselves with their secrets.

targetScope = 'resourceGroup'

// ---------------------------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------------------------

@description('Azure region of every resource; must offer Flex Consumption.')
param location string = resourceGroup().location

@description('Short name prefixed to every resource: 3-11 lower-case letters or digits (it starts the storage account name).')
@minLength(3)
@maxLength(11)
param baseName string = 'dualsync'

@description('Tags applied to every resource.')
param tags object = {
  app: 'dualsync'
}

// --- The ERP: Business Central or Finance and Operations (DUALSYNC_ERP__*) ---

@description('ERP system the pack syncs: business_central or finance_operations.')
@allowed([
  'business_central'
  'finance_operations'
])
param erpKind string = 'business_central'

@description('Finance and Operations: the environment URL, e.g. https://contoso.operations.dynamics.com. Business Central: leave empty (the public API).')
param erpBaseUrl string = ''

@description('Entra ID tenant of the ERP environment.')
param erpTenantId string = subscription().tenantId

@description('Client id of the app registration the ERP knows as its integration user (BC user, or F&O Microsoft Entra application).')
param erpClientId string

@description('Client secret of that app registration (stored in Key Vault only).')
@secure()
@minLength(1)
param erpClientSecret string

@description('Business Central environment name.')
param erpEnvironment string = 'production'

@description('Business Central: company id (GUID) whose records are synced. Finance and Operations: leave empty (every legal entity; a pack limits them).')
param erpCompanyId string = ''

@description('Business Central, several companies into one Dataverse environment: their ids, comma-separated (instead of erpCompanyId; the pack declares `companies` with erp_field companyId).')
param erpCompanyIds string = ''

@description('Comma-separated ERP user ids our writes appear as (their changes are echoes and are dropped): F&O data events name the writer by Entra object id.')
param erpIntegrationUserIds string = ''

// --- Dataverse / Dynamics 365 Sales (DUALSYNC_CRM__*) ---

@description('Entra ID tenant of the Dataverse environment.')
param crmTenantId string = subscription().tenantId

@description('Client id of the app registration set up as a Dataverse application user.')
param crmClientId string

@description('Client secret of that app registration (stored in Key Vault only).')
@secure()
@minLength(1)
param crmClientSecret string

@description('Dataverse environment URL, e.g. https://contoso.crm.dynamics.com.')
param crmBaseUrl string

@description('Comma-separated Dataverse systemuser ids our writes appear as (their changes are echoes).')
param crmIntegrationUserIds string = ''

// --- Webhooks (DUALSYNC_WEBHOOKS__*) ---

@description('clientState given to Business Central subscriptions; every notification must echo it. e.g. `openssl rand -hex 32`.')
@secure()
@minLength(32)
param bcClientState string

@description('Secret of the Dataverse service endpoint (HttpHeader authentication). e.g. `openssl rand -hex 32`.')
@secure()
@minLength(32)
param dataverseWebhookKey string

@description('Header the Dataverse service endpoint sends the secret in (HttpHeader authentication).')
param dataverseWebhookHeader string = 'x-api-key'

@description('Finance and Operations only: secret of the data-event endpoints, sent as ?code= in the endpoint URL. e.g. `openssl rand -hex 32`.')
@secure()
param foWebhookKey string = ''

@description('Expiry of the secrets in Key Vault (ISO 8601); renew them before, with the app registrations\' secrets.')
param secretsExpireOn string = dateTimeAdd(utcNow(), 'P1Y')

// --- Who may use the admin API (App Service Authentication; docs/admin-api.md#authentication) ---

@description('Client id of the app registration of the admin API (created outside this template, see docs/deploy.md): tokens must be issued for it (audience api://<id> or <id>), and it defines the app roles DualSync.Operator and DualSync.Viewer.')
@minLength(36)
@maxLength(36)
param adminClientId string

@description('Entra ID tenant of that app registration (its token issuer).')
param adminTenantId string = subscription().tenantId

// --- What is synced, and when ---

@description('Mapping pack the app loads, relative to the app root.')
param packPath string = 'templates/bc-sales.yaml'

@description('ERP entity sets the pack syncs from (one webhook each: BC subscriptions or F&O data-event endpoints); tests/infra checks it against the pack.')
param erpWebhookEntities array

@description('Dataverse entity sets the pack syncs from (one webhook each); tests/infra checks it against the pack.')
param crmWebhookEntities array

@description('NCRONTAB schedules (six fields, UTC) of the timers, and the days of jobs and errors kept.')
param schedules object = {
  modified: '0 */30 * * * *'
  subscriptions: '0 0 */6 * * *'
  retry: '0 */10 * * * *'
  purge: '0 30 2 * * *'
  retentionDays: 30
}

// --- Sizing ---

@description('Service Bus queue the webhooks feed and the processor drains.')
param queueName string = 'dualsync-changes'

@description('Deliveries of one message before Service Bus dead-letters it (a crash loop, not a sync failure: those are retried by the app and become error records).')
param maxDeliveryCount int = 10

@description('Prefix of the state table names (DUALSYNC_STORAGE__TABLE_PREFIX).')
param tablePrefix string = 'dualsync'

@description('Storage replication: GZRS by default; ZRS or LRS for a test environment.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GZRS'
])
param storageSku string = 'Standard_GZRS'

@description('Upper bound on Function App instances (also bounds the load put on BC and Dataverse).')
param maximumInstanceCount int = 40

@description('Memory per Function App instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Instances kept warm for the webhooks and admin API (0 = scale to zero, cold starts of a few seconds).')
param alwaysReadyHttp int = 0

@description('Days Log Analytics keeps logs.')
param logRetentionDays int = 30

// --- Alerts (infra/modules/alerts.bicep, docs/telemetry.md) ---

@description('E-mail addresses the alerts are sent to (auto-pause, dead letters, error rate, lag).')
param alertEmails array = []

@description('Webhook receivers of the alerts, by name: { "<name>": "<https URL>" } (Teams, a ticketing system); secure, as such a URL often carries a key.')
@secure()
param alertWebhooks object = {}

@description('End-to-end lag, in seconds (source modified → written), above which the app reports lag_high and the lag alert fires (DUALSYNC_ALERTS__LAG_SECONDS).')
@minValue(1)
param lagAlertSeconds int = 300

@description('Percent of a mapping\'s changes failing within 15 minutes above which the error-rate alert fires.')
@minValue(1)
@maxValue(100)
param errorRateAlertPercent int = 10

@description('Fewest changes of a mapping within 15 minutes for its error rate to count.')
@minValue(1)
param errorRateAlertMinChanges int = 20

// ---------------------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------------------

// Stable per resource group, so redeploying updates in place; global uniqueness for the public names.
var suffix = uniqueString(resourceGroup().id, baseName)
var names = {
  identity: '${baseName}-id'
  workspace: '${baseName}-log'
  appInsights: '${baseName}-appi'
  storage: take('${baseName}${suffix}', 24)
  serviceBus: '${baseName}-sb-${suffix}'
  keyVault: take('${baseName}-kv-${suffix}', 24)
  plan: '${baseName}-plan'
  functionApp: '${baseName}-func-${suffix}'
  actionGroup: '${baseName}-alerts'
}
var deploymentContainerName = 'app-package'

// The six state tables, named as shared/settings.py's StorageSettings.table_names() builds them.
var tableNames = [
  '${tablePrefix}couplings'
  '${tablePrefix}watermarks'
  '${tablePrefix}jobs'
  '${tablePrefix}errors'
  '${tablePrefix}subscriptions'
  '${tablePrefix}conflicts'
]

// Key Vault secret names.
var secretNames = {
  erpClientSecret: 'erp-client-secret'
  crmClientSecret: 'crm-client-secret'
  bcClientState: 'bc-client-state'
  dataverseWebhookKey: 'dataverse-webhook-key'
  foWebhookKey: 'fo-webhook-key'
}
var isFinanceOperations = erpKind == 'finance_operations'
var erpPath = isFinanceOperations ? 'finance_operations' : 'business_central'

// ---------------------------------------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------------------------------------

// The app's only identity. User-assigned rather than system-assigned so that its role assignments exist
// before the app is created: the host's first start already finds its storage and queue permitted.
resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: names.identity
  location: location
  tags: tags
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    location: location
    tags: tags
    workspaceName: names.workspace
    appInsightsName: names.appInsights
    retentionInDays: logRetentionDays
    principalId: identity.properties.principalId
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    location: location
    tags: tags
    name: names.storage
    skuName: storageSku
    tableNames: tableNames
    deploymentContainerName: deploymentContainerName
    principalId: identity.properties.principalId
    workspaceId: monitoring.outputs.workspaceId
  }
}

module serviceBus 'modules/servicebus.bicep' = {
  name: 'servicebus'
  params: {
    location: location
    tags: tags
    namespaceName: names.serviceBus
    queueName: queueName
    maxDeliveryCount: maxDeliveryCount
    // Longer than any webhook retry window of BC or Dataverse, so a redelivered notice is dropped.
    duplicateDetectionWindow: 'PT1H'
    // The Functions host renews the session lock while a record syncs; one minute bounds how long a
    // crashed instance holds a session.
    lockDuration: 'PT1M'
    messageTimeToLive: 'P14D'
    principalId: identity.properties.principalId
    workspaceId: monitoring.outputs.workspaceId
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    location: location
    tags: tags
    name: names.keyVault
    secrets: union({
      '${secretNames.erpClientSecret}': erpClientSecret
      '${secretNames.crmClientSecret}': crmClientSecret
      '${secretNames.bcClientState}': bcClientState
      '${secretNames.dataverseWebhookKey}': dataverseWebhookKey
    }, isFinanceOperations ? { '${secretNames.foWebhookKey}': foWebhookKey } : {})
    secretsExpireAt: dateTimeToEpoch(secretsExpireOn)
    principalId: identity.properties.principalId
    workspaceId: monitoring.outputs.workspaceId
  }
}

// Versionless secret URIs: a new secret version is picked up by the app (App Service re-reads references
// within a day, or at once on restart) without redeploying.
var secretRef = '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.uri}secrets/'

// What the Functions host and the Azure SDKs read.
var hostSettings = {
  // Host storage through the identity: AzureWebJobsStorage itself (a connection string) is never set.
  AzureWebJobsStorage__accountName: storage.outputs.name
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identity.properties.clientId
  // The Service Bus trigger's connection (functions/processor.py: `connection="DUALSYNC_SERVICEBUS"`),
  // identity-based: the extension reads <connection>__fullyQualifiedNamespace / __credential / __clientId.
  DUALSYNC_SERVICEBUS__fullyQualifiedNamespace: serviceBus.outputs.fullyQualifiedNamespace
  DUALSYNC_SERVICEBUS__credential: 'managedidentity'
  DUALSYNC_SERVICEBUS__clientId: identity.properties.clientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: monitoring.outputs.connectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identity.properties.clientId};Authorization=AAD'
  // DefaultAzureCredential in the app (tables, Service Bus sender) picks the user-assigned identity by this.
  AZURE_CLIENT_ID: identity.properties.clientId
}

// What dualsync reads (shared/settings.py: prefix DUALSYNC_, groups nested with __).
var dualsyncSettings = {
  DUALSYNC_PACK_PATH: packPath
  DUALSYNC_STORAGE__ACCOUNT_URL: storage.outputs.tableEndpoint
  DUALSYNC_STORAGE__TABLE_PREFIX: tablePrefix
  DUALSYNC_ERP__TENANT_ID: erpTenantId
  DUALSYNC_ERP__CLIENT_ID: erpClientId
  DUALSYNC_ERP__CLIENT_SECRET: '${secretRef}${secretNames.erpClientSecret})'
  DUALSYNC_ERP__ENVIRONMENT: erpEnvironment
  DUALSYNC_ERP__COMPANY_ID: erpCompanyId
  DUALSYNC_ERP__COMPANY_IDS: erpCompanyIds
  DUALSYNC_ERP__INTEGRATION_USER_IDS: erpIntegrationUserIds
  DUALSYNC_CRM__TENANT_ID: crmTenantId
  DUALSYNC_CRM__CLIENT_ID: crmClientId
  DUALSYNC_CRM__CLIENT_SECRET: '${secretRef}${secretNames.crmClientSecret})'
  DUALSYNC_CRM__BASE_URL: crmBaseUrl
  DUALSYNC_CRM__INTEGRATION_USER_IDS: crmIntegrationUserIds
  DUALSYNC_QUEUE__NAME: serviceBus.outputs.queueName
  DUALSYNC_QUEUE__NAMESPACE: serviceBus.outputs.fullyQualifiedNamespace
  DUALSYNC_WEBHOOKS__BC_CLIENT_STATE: '${secretRef}${secretNames.bcClientState})'
  DUALSYNC_WEBHOOKS__DATAVERSE_KEY: '${secretRef}${secretNames.dataverseWebhookKey})'
  DUALSYNC_WEBHOOKS__DATAVERSE_HEADER: dataverseWebhookHeader
  DUALSYNC_SCHEDULES__MODIFIED: schedules.modified
  DUALSYNC_SCHEDULES__SUBSCRIPTIONS: schedules.subscriptions
  DUALSYNC_SCHEDULES__RETRY: schedules.retry
  DUALSYNC_SCHEDULES__PURGE: schedules.purge
  DUALSYNC_SCHEDULES__RETENTION_DAYS: string(schedules.retentionDays)
  // Set together with modules/functionapp.bicep's authsettingsV2: the app trusts Easy Auth's principal headers
  // only because the platform strips client-sent copies of them.
  DUALSYNC_AUTH__EASY_AUTH: 'true'
  // The lag alert fires on the app's lag_high events: one threshold for both.
  DUALSYNC_ALERTS__LAG_SECONDS: string(lagAlertSeconds)
  // DUALSYNC_PUBLIC_URL is added by modules/functionapp.bicep once the host name is known.
}

// The ERP's kind and, for F&O, its environment URL and data-event secret; BC deployments keep BC's defaults.
var erpSettings = isFinanceOperations ? {
  DUALSYNC_ERP__KIND: erpKind
  DUALSYNC_ERP__BASE_URL: erpBaseUrl
  DUALSYNC_WEBHOOKS__FO_KEY: '${secretRef}${secretNames.foWebhookKey})'
} : {}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  params: {
    location: location
    tags: tags
    name: names.functionApp
    planName: names.plan
    identityId: identity.id
    deploymentContainerUrl: '${storage.outputs.blobEndpoint}${deploymentContainerName}'
    appSettings: union(hostSettings, dualsyncSettings, erpSettings)
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    alwaysReadyHttp: alwaysReadyHttp
    workspaceId: monitoring.outputs.workspaceId
    authClientId: adminClientId
    authTenantId: adminTenantId
  }
}

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  params: {
    location: location
    tags: tags
    namePrefix: baseName
    actionGroupName: names.actionGroup
    actionGroupShortName: take(baseName, 12)
    alertEmails: alertEmails
    alertWebhooks: alertWebhooks
    appInsightsId: monitoring.outputs.appInsightsId
    serviceBusNamespaceId: serviceBus.outputs.namespaceId
    queueName: serviceBus.outputs.queueName
    lagSeconds: lagAlertSeconds
    errorRatePercent: errorRateAlertPercent
    errorRateMinChanges: errorRateAlertMinChanges
  }
}

// ---------------------------------------------------------------------------------------------------------
// Outputs
// ---------------------------------------------------------------------------------------------------------

@description('Function App name: `func azure functionapp publish <name> --python`.')
output functionAppName string = functionApp.outputs.name

@description('Function App host name.')
output functionAppHost string = functionApp.outputs.host

@description('ERP webhook URLs: Business Central notification URLs (the app\'s subscription timer registers them itself), or F&O data-event endpoint URLs (append ?code=<fo-webhook-key>; docs/deploy.md).')
output erpWebhookUrls array = [for entity in erpWebhookEntities: 'https://${functionApp.outputs.host}/api/webhooks/${erpPath}/${entity}']

@description('Dataverse webhook URLs: one service endpoint step per entity (docs/deploy.md).')
output dataverseWebhookUrls array = [for entity in crmWebhookEntities: 'https://${functionApp.outputs.host}/api/webhooks/dataverse/${entity}']

@description('Key Vault holding the client and webhook secrets.')
output keyVaultName string = keyVault.outputs.name

@description('Name of the webhook secret in Key Vault for the Dataverse service endpoint\'s HttpHeader.')
output dataverseWebhookKeySecretName string = secretNames.dataverseWebhookKey

@description('Service Bus namespace and queue (its dead-letter queue is <queue>/$DeadLetterQueue).')
output serviceBusQueue string = '${serviceBus.outputs.fullyQualifiedNamespace}/${serviceBus.outputs.queueName}'

@description('Client id of the managed identity the app runs as.')
output identityClientId string = identity.properties.clientId
