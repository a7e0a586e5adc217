// Alerts: one action group (e-mail and/or webhook receivers) and the rules that call it (docs/telemetry.md).
//
// The app emits what the rules look at (shared/telemetry): structured events on the `dualsync.events` logger,
// which Application Insights keeps in `traces` with the event's name and dimensions in customDimensions, and
// OpenTelemetry metrics in `customMetrics`. Service Bus reports its own dead-letter count.
//
//   a mapping paused itself        event mapping_auto_paused            (log rule, per mapping)
//   messages were dead-lettered    event message_dead_lettered          (log rule: every one, even when the
//                                                                        app's dead-letter trigger drains them)
//   the dead-letter queue fills    Service Bus DeadletteredMessages     (metric rule: the trigger is not draining)
//   error rate                     dualsync.failures / dualsync.changes (log rule on the metrics, per mapping)
//   end-to-end lag                 event lag_high                       (log rule; the threshold is the app's
//                                                                        DUALSYNC_ALERTS__LAG_SECONDS)

@description('Azure region of the log alert rules (the action group and metric rules are global).')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Prefix of the rules\' names.')
param namePrefix string

@description('Action group name.')
param actionGroupName string

@description('Short name of the action group, shown in e-mails and SMS (at most 12 characters).')
@maxLength(12)
param actionGroupShortName string

@description('E-mail addresses that receive every alert.')
param alertEmails array

@description('Webhook receivers, by name: { "<name>": "<https URL>" }; secure, as such a URL often carries a key.')
@secure()
param alertWebhooks object

@description('Resource id of the Application Insights component the app sends its events and metrics to.')
param appInsightsId string

@description('Resource id of the Service Bus namespace.')
param serviceBusNamespaceId string

@description('Queue whose dead-letter sub-queue is watched.')
param queueName string

@description('End-to-end lag, in seconds, above which the app emits lag_high (it is the app setting DUALSYNC_ALERTS__LAG_SECONDS; here for the rule\'s description).')
param lagSeconds int

@description('Failed syncs, in percent of the changes a mapping handled within 15 minutes, above which the error-rate alert fires.')
@minValue(1)
@maxValue(100)
param errorRatePercent int

@description('Fewest changes a mapping must have handled within the 15 minutes for its error rate to count (a few failures of a quiet mapping are not a rate).')
@minValue(1)
param errorRateMinChanges int

// Every rule pages the same group; the common alert schema gives webhook receivers one payload shape.
var actions = {
  actionGroups: [
    actionGroup.id
  ]
}
var events = 'traces | where tostring(customDimensions.event) == '

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: actionGroupName
  location: 'Global'
  tags: tags
  properties: {
    groupShortName: actionGroupShortName
    enabled: true
    emailReceivers: [for (address, i) in alertEmails: {
      name: 'email-${i}'
      emailAddress: address
      useCommonAlertSchema: true
    }]
    webhookReceivers: [for hook in items(alertWebhooks): {
      name: hook.key
      serviceUri: hook.value
      useCommonAlertSchema: true
    }]
  }
}

resource autoPaused 'Microsoft.Insights/scheduledQueryRules@2022-06-15' = {
  name: '${namePrefix}-mapping-auto-paused'
  location: location
  tags: tags
  properties: {
    displayName: 'dualsync: a mapping paused itself'
    description: 'A mapping passed its failure threshold (DUALSYNC_AUTOPAUSE__*) and paused itself: its changes are kept, not synced. Read the reason on the console or with `dualsync mappings`, fix the cause, then resume it.'
    severity: 1
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    criteria: {
      allOf: [
        {
          query: '${events}"mapping_auto_paused" | extend mapping = tostring(customDimensions.mapping)'
          timeAggregation: 'Count'
          dimensions: [
            {
              name: 'mapping'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: false
    actions: actions
  }
}

resource deadLetterEvents 'Microsoft.Insights/scheduledQueryRules@2022-06-15' = {
  name: '${namePrefix}-messages-dead-lettered'
  location: location
  tags: tags
  properties: {
    displayName: 'dualsync: messages were dead-lettered'
    description: 'Service Bus gave up on messages (poison, expired); the app recorded each as an error record. Look at the errors (console or `dualsync errors`) and retry them once the cause is fixed.'
    severity: 2
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    criteria: {
      allOf: [
        {
          query: '${events}"message_dead_lettered" | extend mapping = tostring(customDimensions.mapping)'
          timeAggregation: 'Count'
          dimensions: [
            {
              name: 'mapping'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: false
    actions: actions
  }
}

resource deadLetterQueue 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: '${namePrefix}-dead-letter-queue'
  location: 'global'
  tags: tags
  properties: {
    description: 'Messages wait in the dead-letter queue: the app\'s dead-letter trigger, which turns each into an error record within seconds, is not draining it (the app is down or failing).'
    severity: 1
    enabled: true
    scopes: [
      serviceBusNamespaceId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'DeadletteredMessages'
          metricNamespace: 'Microsoft.ServiceBus/namespaces'
          metricName: 'DeadletteredMessages'
          dimensions: [
            {
              name: 'EntityName'
              operator: 'Include'
              values: [
                queueName
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          timeAggregation: 'Minimum'
        }
      ]
    }
    autoMitigate: true
    actions: [
      {
        actionGroupId: actionGroup.id
      }
    ]
  }
}

resource errorRate 'Microsoft.Insights/scheduledQueryRules@2022-06-15' = {
  name: '${namePrefix}-error-rate'
  location: location
  tags: tags
  properties: {
    displayName: 'dualsync: error rate of a mapping'
    description: 'More than ${errorRatePercent} % of the changes a mapping handled in 15 minutes failed (transient failures count at each attempt). The errors list says why.'
    severity: 2
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: 'customMetrics | where name in ("dualsync.changes", "dualsync.failures") | extend mapping = tostring(customDimensions.mapping) | summarize handled = sumif(valueSum, name == "dualsync.changes"), failed = sumif(valueSum, name == "dualsync.failures") by mapping | where handled >= ${errorRateMinChanges} | extend failure_percent = 100.0 * failed / handled'
          timeAggregation: 'Maximum'
          metricMeasureColumn: 'failure_percent'
          dimensions: [
            {
              name: 'mapping'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: errorRatePercent
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: actions
  }
}

resource lagHigh 'Microsoft.Insights/scheduledQueryRules@2022-06-15' = {
  name: '${namePrefix}-lag-high'
  location: location
  tags: tags
  properties: {
    displayName: 'dualsync: end-to-end lag is high'
    description: 'Changes of a mapping took more than ${lagSeconds} s from their source\'s modified time to being written on the other side (throttling, a backlog, a slow service). The console shows the lag per minute; a trace of a slow change shows where the time went.'
    severity: 2
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    criteria: {
      allOf: [
        {
          query: '${events}"lag_high" | extend mapping = tostring(customDimensions.mapping), direction = tostring(customDimensions.direction)'
          timeAggregation: 'Count'
          dimensions: [
            {
              name: 'mapping'
              operator: 'Include'
              values: [
                '*'
              ]
            }
            {
              name: 'direction'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: actions
  }
}

@description('Resource id of the action group (add receivers in the portal, or point other rules at it).')
output actionGroupId string = actionGroup.id
