// Key Vault holding the only secrets dualsync has: the Dynamics app registrations' client secrets and the
// two webhook secrets. The Function App reads them through Key Vault references resolved with its
// user-assigned identity, so no secret value is stored in an app setting.

@description('Azure region.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Vault name (3-24 characters, globally unique).')
@minLength(3)
@maxLength(24)
param name string

@description('Secrets to store: name -> value.')
@secure()
param secrets object

@description('Expiry of every secret, as Unix seconds; align it with the app registrations\' secret expiry.')
param secretsExpireAt int

@description('Principal id of the Function App\'s user-assigned managed identity.')
param principalId string

@description('Log Analytics workspace receiving the diagnostic settings.')
param workspaceId string

// Key Vault Secrets User: read secret values, nothing else (no list of keys, no writes).
var secretsUserRole = '4633458b-17de-408a-b874-0445c86b69e6'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: Key Vault references are resolved by App Service over the public endpoint for an app without VNet integration; a deny-by-default firewall would break them. RBAC (Secrets User for the app only) is the control, and every read is audited.
  // checkov:skip=CKV_AZURE_189: same reason as CKV_AZURE_109; disable public access together with VNet integration and a private endpoint.
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    // Azure RBAC instead of access policies: access is granted by role assignments, audited like any other.
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    // A deleted vault or secret cannot be purged before its retention ends, even by an owner.
    enablePurgeProtection: true
    // Key Vault references are resolved from the App Service platform over the public endpoint unless the
    // app is VNet-integrated, which this template does not do; RBAC + the identity are the access control.
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource storedSecrets 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = [for secret in items(secrets): {
  parent: vault
  name: secret.key
  properties: {
    value: secret.value
    contentType: 'text/plain'
    attributes: {
      enabled: true
      exp: secretsExpireAt
    }
  }
}]

// Scoped to this vault, which holds nothing but dualsync's secrets.
resource secretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, secretsUserRole)
  scope: vault
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', secretsUserRole)
  }
}

// AuditEvent: every secret read, by whom; a webhook secret read by anything but the app is an incident.
resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: vault
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        categoryGroup: 'audit'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'AllMetrics'
        enabled: true
      }
    ]
  }
}

@description('Vault name.')
output name string = vault.name

@description('Vault URI, e.g. https://<name>.vault.azure.net/ (Key Vault references are built from it).')
output uri string = vault.properties.vaultUri
