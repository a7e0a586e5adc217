"""The queue between webhooks and processor: `SyncMessage`, the `QueueSender` protocol (Azure Service Bus
implementation in `sender`), the retry schedule and `process_message` (what the processor does)."""

from __future__ import annotations

from shared.queue.message import PoisonMessage, SyncMessage
from shared.queue.process import Processed, process_message
from shared.queue.retry import RetrySchedule
from shared.queue.sender import QueueSender, ServiceBusQueueSender, open_sender

__all__ = ["PoisonMessage", "Processed", "QueueSender", "RetrySchedule", "ServiceBusQueueSender", "SyncMessage",
           "open_sender", "process_message"]
