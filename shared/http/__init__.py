"""HTTP plumbing shared by the connectors: error classification, retries, concurrency limits, tokens,
redaction and OData paging. Free of any one service's client code."""

from __future__ import annotations

from shared.http.adaptive import Feedback, ServiceLimits, Signal
from shared.http.auth import BearerAuth, make_credential
from shared.http.classify import Classification, Outcome, classify, parse_retry_after
from shared.http.limits import BUSINESS_CENTRAL, DATAVERSE, FINANCE_OPERATIONS, ConcurrencyLimiter, target_key
from shared.http.paging import NextLinkPager, PagingError, iterate_pages, page_items
from shared.http.redact import REDACTED, Redactor, redact
from shared.http.retry import (
    ConflictError,
    NotFoundError,
    PermanentError,
    RequestError,
    RetriesExhausted,
    RetryExecutor,
    RetryPolicy,
)

__all__ = [
    "BUSINESS_CENTRAL", "DATAVERSE", "FINANCE_OPERATIONS", "REDACTED", "BearerAuth", "Classification",
    "ConcurrencyLimiter", "ConflictError", "Feedback", "NextLinkPager", "NotFoundError", "Outcome", "PagingError",
    "PermanentError", "Redactor", "RequestError", "RetriesExhausted", "RetryExecutor", "RetryPolicy",
    "ServiceLimits", "Signal", "classify", "iterate_pages", "make_credential", "page_items", "parse_retry_after",
    "redact", "target_key",
]
