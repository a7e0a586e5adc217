// Service Bus: the queue between the webhooks/timers (senders) and the processor (session receiver).
// Standard tier is the smallest with sessions and duplicate detection; Premium would add private endpoints
// and customer-managed keys at roughly 60x the price, which this workload does not need.

@description('Azure region.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Namespace name (6-50 characters, globally unique).')
@minLength(6)
@maxLength(50)
param namespaceName string

@description('Queue name (DUALSYNC_QUEUE__NAME).')
param queueName string

@description('Deliveries before a message is dead-lettered as poison.')
@minValue(1)
@maxValue(100)
param maxDeliveryCount int

@description('Window in which a repeated message id is dropped (ISO 8601 duration, at most 7 days).')
param duplicateDetectionWindow string

@description('How long a session lock lasts before the processor must renew it (ISO 8601, at most 5 min).')
param lockDuration string

@description('Time to live of a message; expired messages go to the dead-letter queue, never vanish.')
param messageTimeToLive string

@description('Principal id of the Function App\'s user-assigned managed identity.')
param principalId string

@description('Log Analytics workspace receiving the diagnostic settings.')
param workspaceId string

var roles = {
  // Webhooks and timers enqueue, and the processor reschedules a transient failure by sending a
  // scheduled copy: Sender.
  dataSender: '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39'
  // The processor receives, completes, abandons and dead-letters: Receiver.
  dataReceiver: '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0'
}

resource namespace 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' = {
  name: namespaceName
  location: location
  tags: tags
  sku: {
    name: 'Standard'
    tier: 'Standard'
  }
  properties: {
    minimumTlsVersion: '1.2'
    // SAS keys off: every client (the Functions trigger, the app's sender, an operator's tools) signs in
    // with Entra ID, so there is no connection string to store or leak.
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
  }
}

resource queue 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' = {
  parent: namespace
  name: queueName
  properties: {
    // Session id = mapping + record: one record is never processed by two instances at once, and its
    // changes are applied in the order they arrived.
    requiresSession: true
    // Message id = change identity: a webhook delivered twice (both services retry) is enqueued once.
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: duplicateDetectionWindow
    maxDeliveryCount: maxDeliveryCount
    lockDuration: lockDuration
    defaultMessageTimeToLive: messageTimeToLive
    // An expired change must stay visible (and retryable from the DLQ), never silently dropped.
    deadLetteringOnMessageExpiration: true
    // Partitioning would spread one session over brokers for no gain at this volume.
    enablePartitioning: false
    enableBatchedOperations: true
    maxSizeInMegabytes: 1024
  }
}
// The dead-letter queue is not a separate resource: Service Bus keeps it as the sub-queue
// `<queue>/$DeadLetterQueue`, which the Receiver role on the queue also covers.

// Scoped to the queue, not the namespace: the identity can touch nothing else in it.
resource roleAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in items(roles): {
  name: guid(queue.id, principalId, role.value)
  scope: queue
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role.value)
  }
}]

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: namespace
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        categoryGroup: 'allLogs'
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

@description('Namespace host name, e.g. <name>.servicebus.windows.net (DUALSYNC_SERVICEBUS__fullyQualifiedNamespace, DUALSYNC_QUEUE__NAMESPACE).')
// serviceBusEndpoint is https://<name>.servicebus.<cloud suffix>:443/; the trigger and the SDK want the bare host.
output fullyQualifiedNamespace string = split(replace(namespace.properties.serviceBusEndpoint, 'https://', ''), ':')[0]

@description('Queue name.')
output queueName string = queue.name

@description('Resource id of the namespace (scope of the dead-letter metric alert).')
output namespaceId string = namespace.id

@description('Path of the dead-letter sub-queue.')
output deadLetterQueuePath string = '${queue.name}/$DeadLetterQueue'
