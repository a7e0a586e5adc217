"""Putting `SyncMessage`s on the queue: the `QueueSender` protocol the webhooks and the processor use, and its
Azure Service Bus implementation. The local host (`emulators.functions_host`) has an in-process one."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Protocol, runtime_checkable

from azure.servicebus import ServiceBusMessage
from azure.servicebus.aio import ServiceBusClient, ServiceBusSender
from azure.servicebus.exceptions import MessageSizeExceededError

from shared.queue.message import SyncMessage
from shared.settings import ENV_PREFIX, NESTED, QueueSettings, SettingsError
from shared.telemetry.propagation import trace_properties


@runtime_checkable
class QueueSender(Protocol):
    async def send(self, messages: Sequence[SyncMessage]) -> None:
        """Enqueue now (session id and message id set from each message)."""
        ...

    async def schedule(self, message: SyncMessage, at: dt.datetime) -> None:
        """Enqueue so that the message becomes visible at `at` (timezone-aware)."""
        ...


def application_properties(message: SyncMessage) -> dict[str, str | int]:
    """The attempt and direction (for whoever browses the queue), and the trace context of the span sending it
    (W3C `traceparent` / `tracestate`), so the processor's span continues the change's trace."""
    return {"attempt": message.attempt, "direction": message.direction.value, **trace_properties()}


def to_service_bus(message: SyncMessage) -> ServiceBusMessage:
    return ServiceBusMessage(message.to_json(), content_type="application/json", session_id=message.session_id,
                             message_id=message.message_id, subject=message.mapping,
                             application_properties=application_properties(message))


class ServiceBusQueueSender:
    """Sends to one session-enabled queue through an open `ServiceBusSender` (the caller owns it)."""

    def __init__(self, sender: ServiceBusSender) -> None:
        self.sender = sender

    async def send(self, messages: Sequence[SyncMessage]) -> None:
        if not messages:
            return
        batch = await self.sender.create_message_batch()
        for message in messages:
            sb = to_service_bus(message)
            try:
                batch.add_message(sb)
            except MessageSizeExceededError:  # the batch is full: send it, start the next
                await self.sender.send_messages(batch)
                batch = await self.sender.create_message_batch()
                batch.add_message(sb)
        await self.sender.send_messages(batch)

    async def schedule(self, message: SyncMessage, at: dt.datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("schedule time must be timezone-aware")
        await self.sender.schedule_messages(to_service_bus(message), at.astimezone(dt.UTC))


@asynccontextmanager
async def open_sender(settings: QueueSettings) -> AsyncIterator[ServiceBusQueueSender]:
    """A sender for `settings.name`: by connection string, else the namespace with the managed identity.
    Raises `SettingsError` when neither is set."""
    async with AsyncExitStack() as stack:
        if settings.connection_string is not None and settings.connection_string.get_secret_value():
            client = ServiceBusClient.from_connection_string(settings.connection_string.get_secret_value())
        elif settings.namespace:
            from azure.identity.aio import DefaultAzureCredential  # only in Azure: the managed identity

            credential = await stack.enter_async_context(DefaultAzureCredential())
            client = ServiceBusClient(settings.namespace, credential)
        else:
            var = f"{ENV_PREFIX}QUEUE{NESTED}"
            raise SettingsError([(var + "NAMESPACE", f"missing (or set {var}CONNECTION_STRING)")])
        await stack.enter_async_context(client)
        sender = await stack.enter_async_context(client.get_queue_sender(settings.name))
        yield ServiceBusQueueSender(sender)
