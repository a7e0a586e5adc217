"""A local stand-in for the Azure Functions host: serves the Function App's own function objects over HTTP,
fires its timers and delivers an in-process Service Bus queue to its queue trigger. See `host.LocalHost`."""

from __future__ import annotations

from emulators.functions_host.host import LocalHost, index_functions
from emulators.functions_host.ncrontab import Schedule, ScheduleError
from emulators.functions_host.servicebus import DeliveryRecord, InProcessQueue, InProcessSender, QueuedMessage

__all__ = ["DeliveryRecord", "InProcessQueue", "InProcessSender", "LocalHost", "QueuedMessage", "Schedule",
           "ScheduleError", "index_functions"]
