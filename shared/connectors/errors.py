"""From the one classifier's verdict (`shared.http.classify`) to the connector error the engine acts on.

`classify` says *what kind* of failure it is (conflict, not found, …); this table only refines a conflict
into "already exists" by the services' duplicate-key codes, because the engine reacts differently to a
stale etag (re-read and merge) and to a duplicate (couple with the existing record).
"""

from __future__ import annotations

import httpx

from shared.connectors.base import (
    AlreadyExists,
    ConcurrencyConflict,
    ConnectorError,
    NotFound,
    PermanentError,
    RateLimited,
    TransientError,
)
from shared.http.classify import REFUSED_TYPES, Classification, Outcome, classify
from shared.http.redact import Redactor
from shared.http.retry import RequestError

MAX_DETAIL = 2000

# Service codes meaning "a record with these key values exists" (create-only upsert, duplicate number).
DUPLICATE_CODES = frozenset({
    "0x80040237",                       # Dataverse DuplicateRecord (create-only upsert, same primary key)
    "0x80060892",                       # Dataverse DuplicateRecordEntityKey (alternate key taken)
    "Internal_EntityWithSameKeyExists",  # Business Central: the No./Code is taken
})

# Finance and Operations has no duplicate-key code: a refused write carries the infolog, which says so in
# these words ("Cannot create a record in Customers (CustTable). Customer account: C-1. The record already
# exists.").
DUPLICATE_TEXTS = ("The record already exists.",)

_BY_OUTCOME: dict[Outcome, type[ConnectorError]] = {
    Outcome.CONFLICT: ConcurrencyConflict,
    Outcome.NOT_FOUND: NotFound,
    Outcome.RATE_LIMITED: RateLimited,
    Outcome.RETRY: TransientError,
    Outcome.PERMANENT: PermanentError,
}


def error_class(verdict: Classification) -> type[ConnectorError]:
    if verdict.code in DUPLICATE_CODES:
        return AlreadyExists
    if verdict.code in REFUSED_TYPES and any(text in (verdict.message or "") for text in DUPLICATE_TEXTS):
        return AlreadyExists
    return _BY_OUTCOME.get(verdict.outcome, PermanentError)


def error_from_verdict(verdict: Classification, context: str, *, response: httpx.Response | None = None,
                       redactor: Redactor | None = None, attempts: int | None = None) -> ConnectorError:
    """A `ConnectorError` whose message names what we were doing and why it failed; every text is redacted."""
    redactor = redactor or Redactor()
    tried = f" after {attempts} attempts" if attempts and attempts > 1 else ""
    message = redactor.text(f"{context} failed{tried}: {verdict.describe()}")
    detail = _detail(response, redactor) or (redactor.text(verdict.message) if verdict.message else None)
    return error_class(verdict)(message, status=verdict.status, code=verdict.code, detail=detail)


def error_from_request_error(exc: RequestError, context: str, redactor: Redactor | None = None) -> ConnectorError:
    """The connector error for what the retry executor raised (its last verdict decides the class)."""
    return error_from_verdict(exc.classification, context, response=exc.response, redactor=redactor,
                              attempts=exc.attempts)


def error_from_parts(status: int, headers: dict[str, str], body: bytes, context: str,
                     redactor: Redactor | None = None) -> ConnectorError:
    """The error for one failed operation inside a `$batch` answer, classified like a whole response."""
    response = httpx.Response(status, headers=headers, content=body)
    return error_from_verdict(classify(response), context, response=response, redactor=redactor)


def _detail(response: httpx.Response | None, redactor: Redactor) -> str | None:
    if response is None:
        return None
    try:
        text = response.text
    except httpx.ResponseNotRead:
        return None
    if not text:
        return None
    text = redactor.text(text)
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"
