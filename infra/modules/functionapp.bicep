// The Function App and its plan.
//
// Hosting: Flex Consumption (FC1), not Elastic Premium, because
//  - it is the only plan whose host storage, deployment package AND content are all reachable with a
//    managed identity: Elastic Premium still needs an Azure Files content share mounted with an account-key
//    connection string (WEBSITE_CONTENTAZUREFILECONNECTIONSTRING), which would force allowSharedKeyAccess on;
//  - it scales to zero and bills per execution second: a sync service idles most of the day and bursts on a
//    full sync or a flurry of webhooks, while EP1 bills at least one always-on instance around the clock;
//  - it scales the Service Bus processor on queue length per function group, sessions included.
// The price is cold starts (a webhook after a quiet period waits a few seconds; both BC and Dataverse allow
// far longer), which `alwaysReadyHttp` can remove by keeping instances warm for the HTTP group.

@description('Azure region (must offer Flex Consumption: `az functionapp list-flexconsumption-locations`).')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Function App name (globally unique; the host becomes <name>.azurewebsites.net).')
param name string

@description('App Service plan name.')
param planName string

@description('Resource id of the user-assigned managed identity the app runs as.')
param identityId string

@description('Blob container URL of the deployment package, e.g. https://<account>.blob.core.windows.net/app-package.')
param deploymentContainerUrl string

@description('App settings (name -> value); values that are secrets must be Key Vault references.')
param appSettings object

@description('Upper bound on instances: also bounds the load dualsync can put on BC and Dataverse.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int

@description('Memory per instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int

@description('Instances kept warm for the HTTP functions (webhooks, admin API); 0 = scale to zero.')
@minValue(0)
param alwaysReadyHttp int

@description('Log Analytics workspace receiving the diagnostic settings.')
param workspaceId string

@description('Client id of the admin API\'s app registration: the audience of the tokens App Service Authentication accepts.')
param authClientId string

@description('Entra ID tenant issuing those tokens.')
param authTenantId string

// Paths App Service Authentication lets through without a token. The webhooks: Business Central, Dataverse
// and F&O cannot present an Entra ID token for this app; each notification proves itself with its own secret
// (functions/webhooks.py). The health probe: availability tests call it anonymously and it reveals nothing.
// Everything else, the admin API above all, needs a token (functions/admin.py then checks its app role).
var anonymousPaths = [
  '/api/webhooks/*'
  '/api/health'
]

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: Flex Consumption zone redundancy is offered only in some regions and forces always-ready instances (a standing cost); the state it protects lives in GZRS storage and Service Bus, which survive a zone loss, and a lost instance is replaced by the scale controller.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    // Linux.
    reserved: true
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: Business Central and Dataverse deliver webhooks from the public internet (their SaaS addresses are not fixed), so the app must be publicly reachable; every webhook is authenticated by its shared secret and the admin API by Entra ID tokens (authsettingsV2).
  // checkov:skip=CKV_AZURE_17: neither Business Central nor Dataverse presents a client certificate when calling a webhook, so requiring one would refuse every notification.
  // checkov:skip=CKV_AZURE_212: a minimum instance count is a property of fixed-size plans; on Flex Consumption the scale controller replaces instances, and `alwaysReadyHttp` keeps warm ones when wanted.
  // checkov:skip=CKV_AZURE_213: App Service health check evicts instances from a fixed pool; Flex Consumption instances are managed by the scale controller, so /api/health is served for external availability tests instead.
  name: name
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // Key Vault references resolve with the user-assigned identity (the default would be a system-assigned
    // identity, which this app does not have).
    keyVaultReferenceIdentity: identityId
    clientCertEnabled: false
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      // The console is served by the app itself (same origin): no other site's script may call it.
      cors: {
        allowedOrigins: []
      }
    }
    functionAppConfig: {
      // Flex Consumption reads the package from this container with the identity: no SAS, no key.
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
        alwaysReady: alwaysReadyHttp > 0 ? [
          {
            name: 'http'
            instanceCount: alwaysReadyHttp
          }
        ] : []
      }
      // On Flex the runtime is declared here; FUNCTIONS_WORKER_RUNTIME as an app setting is rejected.
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// The checkov skips below: those checks read every Microsoft.Web/sites/config as the `web` config
// (siteConfig); this one is `appsettings`, a name -> value map, so they do not apply to it. What they ask is
// configured on the site (https only, TLS 1.2, FTPS off, HTTP/2) and checked there, or answered here.
resource settings 'Microsoft.Web/sites/config@2024-04-01' = {
  // checkov:skip=CKV_AZURE_13: this resource is the app settings map; App Service Authentication is configured by the authsettingsV2 resource below (Entra ID required everywhere but the webhook and health paths).
  // checkov:skip=CKV_AZURE_63: IIS-style HTTP logs do not exist on Linux Functions; requests are logged to Application Insights and FunctionAppLogs (diagnostic setting).
  // checkov:skip=CKV_AZURE_65: detailed error pages are an IIS feature that Linux Functions lacks; errors go to Application Insights.
  // checkov:skip=CKV_AZURE_66: failed request tracing is an IIS feature that Linux Functions lacks; failed invocations go to Application Insights.
  // checkov:skip=CKV_AZURE_80: the app runs Python 3.11, not .NET Framework.
  // checkov:skip=CKV_AZURE_88: Flex Consumption has no Azure Files content share (the package is a blob read with the identity), which is what lets storage keep shared keys off.
  // checkov:skip=CKV_AZURE_222: see the site resource: webhooks arrive from the public internet.
  parent: app
  name: 'appsettings'
  // The public URL is known only once the site exists (its default host name may carry a generated
  // suffix); the BC subscription timer builds notification URLs from it.
  properties: union(appSettings, {
    DUALSYNC_PUBLIC_URL: 'https://${app.properties.defaultHostName}'
  })
}

// App Service Authentication ("Easy Auth"): validates Entra ID tokens before the Functions host sees a request,
// sends a browser without a session to Entra ID's sign-in (the console, docs/operations.md; API callers send
// a bearer token, and an XMLHttpRequest without one gets 401 rather than a redirect), strips any
// client-sent X-MS-CLIENT-PRINCIPAL* headers and injects its own. The app reads the caller and its app roles
// from them (DUALSYNC_AUTH__EASY_AUTH, set in main.bicep alongside this resource).
resource auth 'Microsoft.Web/sites/config@2024-04-01' = {
  // checkov:skip=CKV_AZURE_13: this IS App Service Authentication; the check reads the v1 `authsettings` schema (a top-level `enabled`), while authsettingsV2 says `platform.enabled: true`, set below.
  // checkov:skip=CKV_AZURE_63: these checks read every Microsoft.Web/sites/config as the `web` config; this one is authsettingsV2. IIS-style HTTP logs do not exist on Linux Functions; requests go to Application Insights.
  // checkov:skip=CKV_AZURE_65: read as the `web` config (see above); detailed error pages are an IIS feature that Linux Functions lacks.
  // checkov:skip=CKV_AZURE_66: read as the `web` config (see above); failed request tracing is an IIS feature that Linux Functions lacks.
  // checkov:skip=CKV_AZURE_80: read as the `web` config (see above); the app runs Python 3.11, not .NET Framework.
  // checkov:skip=CKV_AZURE_88: read as the `web` config (see above); Flex Consumption has no Azure Files content share, which lets storage keep shared keys off.
  // checkov:skip=CKV_AZURE_222: see the site resource: webhooks arrive from the public internet; this resource is what makes every other path require an Entra ID token.
  parent: app
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'RedirectToLoginPage'
      redirectToProvider: 'azureactivedirectory'
      excludedPaths: anonymousPaths
    }
    httpSettings: {
      requireHttps: true
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: authClientId
          // The v2.0 issuer of the tenant, in whichever cloud this deploys to (the app registration asks for
          // v2 access tokens: docs/deploy.md).
          openIdIssuer: '${environment().authentication.loginEndpoint}${authTenantId}/v2.0'
        }
        validation: {
          allowedAudiences: [
            'api://${authClientId}'
            authClientId
          ]
        }
      }
    }
    login: {
      // The console's sign-in session is Easy Auth's own cookie; the providers' tokens are not needed later,
      // so none are stored.
      tokenStore: {
        enabled: false
      }
    }
  }
}

// Publishing goes through Entra ID (`func azure functionapp publish` / `az functionapp deployment` with
// `az login`), so the legacy user/password publishing endpoints are switched off.
resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'scm'
  properties: {
    allow: false
  }
}

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: app
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        category: 'FunctionAppLogs'
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

@description('Function App name (for `func azure functionapp publish`).')
output name string = app.name

@description('Default host name, e.g. <name>.azurewebsites.net.')
output host string = app.properties.defaultHostName
