// The one storage account: the Functions host (blob leases for timers and singletons, the host's keys),
// the Flex Consumption deployment package container, and the dualsync state tables.
// Shared keys are disabled: the host, the deployment and the app all authenticate with the user-assigned
// managed identity, so there is no account key or connection string anywhere to leak or rotate.

@description('Azure region.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Storage account name (3-24 lower-case letters and digits, globally unique).')
@minLength(3)
@maxLength(24)
param name string

@description('Replication. GZRS keeps the state (couplings are the sync\'s memory) through a zone outage and copies it to the paired region.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GZRS'
])
param skuName string = 'Standard_GZRS'

@description('Full table names the app uses (prefix + table, as shared/settings.py builds them).')
param tableNames array

@description('Blob container Flex Consumption deploys the app package into.')
param deploymentContainerName string

@description('Principal id of the Function App\'s user-assigned managed identity.')
param principalId string

@description('Log Analytics workspace receiving the diagnostic settings.')
param workspaceId string

// Built-in role definition ids (stable across tenants).
var roles = {
  // The Functions host stores its keys and timer/singleton leases in blobs, and Flex Consumption reads the
  // deployment package from a blob container: Owner is the role the host documents for identity-based
  // AzureWebJobsStorage (it also sets blob metadata and leases, which Contributor does not cover).
  blobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  // Couplings, watermarks, jobs, errors and subscriptions live in tables.
  tableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
}
// No Storage Queue Data Contributor: the app has no queue or blob trigger, the only thing the host would use
// storage queues for. Add it here if one is ever introduced.

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: the app is not VNet-integrated, so a deny-by-default firewall would lock out its own host; shared keys are off and every access is an RBAC-checked Entra token.
  // checkov:skip=CKV_AZURE_59: same reason: public network access stays on for the identity-only endpoints; private endpoints come with a VNet (docs/deploy.md, "Private network").
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    supportsHttpsTrafficOnly: true
    minimumTlsVersion: 'TLS1_2'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowCrossTenantReplication: false
    isLocalUserEnabled: false
    isSftpEnabled: false
    accessTier: 'Hot'
    // Identity is the access control (shared keys are off). The Flex Consumption app is not VNet-integrated
    // in this template, so its traffic reaches storage over the public endpoint; `Deny` would lock it out.
    // The network rule for a private deployment belongs with a VNet + private endpoints (see docs/deploy.md).
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
        file: {
          enabled: true
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}

// Created here rather than by the app on first use, so a fresh deployment is complete before the first
// webhook arrives and the identity never needs to create tables.
resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [for table in tableNames: {
  parent: tableService
  name: table
}]

resource roleAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in items(roles): {
  name: guid(account.id, principalId, role.value)
  scope: account
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role.value)
  }
}]

resource accountDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: account
  properties: {
    workspaceId: workspaceId
    metrics: [
      {
        category: 'Transaction'
        enabled: true
      }
    ]
  }
}

// Data-plane logs: who read or changed state tables and host blobs, and every authorization failure.
resource tableDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: tableService
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        categoryGroup: 'allLogs'
        enabled: true
      }
    ]
  }
}

resource blobDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: blobService
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        categoryGroup: 'allLogs'
        enabled: true
      }
    ]
  }
}

@description('Storage account name (AzureWebJobsStorage__accountName).')
output name string = account.name

@description('Table endpoint, e.g. https://<account>.table.core.windows.net/ (DUALSYNC_STORAGE__ACCOUNT_URL).')
output tableEndpoint string = account.properties.primaryEndpoints.table

@description('Blob endpoint (the Flex Consumption deployment container lives under it).')
output blobEndpoint string = account.properties.primaryEndpoints.blob
