// Log Analytics workspace + workspace-based Application Insights.
// Every other module sends its diagnostic settings to this workspace, so one query surface covers the
// Function App's traces, the Service Bus dead-letter events and the Key Vault audit log.

@description('Azure region.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Log Analytics workspace name.')
param workspaceName string

@description('Application Insights component name.')
param appInsightsName string

@description('Days the workspace keeps logs (30 is included in the ingestion price).')
@minValue(30)
@maxValue(730)
param retentionInDays int

@description('Principal id of the Function App\'s user-assigned managed identity.')
param principalId string

// Monitoring Metrics Publisher: send telemetry with an Entra token (local auth is off on the component).
var metricsPublisherRole = '3913510d-42f4-4e42-8a64-420c390055eb'

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: workspaceName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    IngestionMode: 'LogAnalytics'
    // Telemetry must be sent with an Entra token (the managed identity holds Monitoring Metrics Publisher):
    // the instrumentation key inside the connection string then identifies the component but cannot be
    // used by anyone else to write into it.
    DisableLocalAuth: true
    publicNetworkAccessForIngestion: 'Enabled'
    publicNetworkAccessForQuery: 'Enabled'
  }
}

// Scoped to this one component: the identity can publish telemetry here and nowhere else.
resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, principalId, metricsPublisherRole)
  scope: appInsights
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', metricsPublisherRole)
  }
}

@description('Resource id of the Log Analytics workspace (target of every diagnostic setting).')
output workspaceId string = workspace.id

// Not a secret: with local auth disabled the instrumentation key in it only names the component; writing
// telemetry also takes an Entra token of an identity holding Monitoring Metrics Publisher.
@description('Application Insights connection string (APPLICATIONINSIGHTS_CONNECTION_STRING).')
output connectionString string = appInsights.properties.ConnectionString

@description('Resource id of the Application Insights component (scope of the log alert rules).')
output appInsightsId string = appInsights.id
