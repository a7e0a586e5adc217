"""Change notices from webhooks: parsing and checking Business Central notifications and Dataverse
RemoteExecutionContexts (`business_central`, `dataverse`), which webhooks a pack needs and which mappings a
notice feeds (`routing`), and the whole request → queue flow the webhook triggers call (`intake`)."""

from __future__ import annotations

from shared.notices.intake import (
    Answer,
    Intake,
    Request,
    answer_handshake,
    receive_business_central,
    receive_dataverse,
    receive_finance_operations,
)
from shared.notices.model import Change, ChangeNotice, NoticeError, Unauthenticated
from shared.notices.routing import WebhookSource, candidate_mappings, logical_name, messages_for, webhook_sources

__all__ = ["Answer", "Change", "ChangeNotice", "Intake", "NoticeError", "Request", "Unauthenticated",
           "WebhookSource", "answer_handshake", "candidate_mappings", "logical_name", "messages_for",
           "receive_business_central", "receive_dataverse", "receive_finance_operations", "webhook_sources"]
