"""One pure decision: what does this response or exception mean for the caller?

Business Central and Dataverse answer errors as `{"error": {"code": …, "message": …}}`; Finance and Operations
as `{"error": {"code": "", "message": "An error has occurred.", "innererror": {"message": …, "type": …}}}` (the
inner exception type stands in for the code); Entra ID's token endpoint answers
`{"error": "invalid_client", "error_description": …}`. The decision is read from three tables below —
service error codes first (they are more specific than the status), then the status, then exception
types — so adding a case is adding a row. The retry executor (`shared.http.retry`) acts on the result.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import json
from dataclasses import dataclass
from enum import StrEnum

import httpx

from shared.http.redact import redact

MAX_MESSAGE = 2000


class Outcome(StrEnum):
    SUCCESS = "success"
    RETRY = "retry"                # transient: 5xx, 408, timeouts, dropped connections
    RATE_LIMITED = "rate_limited"  # 429 / service protection: wait (Retry-After if given), then retry
    CONFLICT = "conflict"          # stale etag, record changed or already exists: re-read and reconcile
    NOT_FOUND = "not_found"
    PERMANENT = "permanent"        # validation, auth, privilege, bugs: retrying cannot help

    @property
    def retryable(self) -> bool:
        return self in (Outcome.RETRY, Outcome.RATE_LIMITED)


@dataclass(frozen=True)
class Classification:
    """The verdict plus what a log line or an error record needs (message already redacted)."""

    outcome: Outcome
    reason: str
    status: int | None = None
    code: str | None = None
    message: str | None = None
    retry_after: float | None = None  # seconds, when the service said how long to wait

    @property
    def retryable(self) -> bool:
        return self.outcome.retryable

    def describe(self) -> str:
        parts = [self.outcome.value, self.reason]
        if self.code:
            parts.append(self.code)
        if self.message:
            parts.append(self.message)
        return ": ".join(parts)


# Service error codes that decide regardless of the status they came with.
CODE_TABLE: dict[str, Outcome] = {
    # Business Central
    "Request_EntityChanged": Outcome.CONFLICT,       # stale If-Match; documented as 409 or 412
    "BadRequest_NotFound": Outcome.NOT_FOUND,
    "Internal_RecordNotFound": Outcome.NOT_FOUND,
    "Application_TooManyRequests": Outcome.RATE_LIMITED,
    # Dataverse service protection (come with 429)
    "0x80072322": Outcome.RATE_LIMITED,  # number of requests exceeded
    "0x80072321": Outcome.RATE_LIMITED,  # combined execution time exceeded
    "0x80072326": Outcome.RATE_LIMITED,  # concurrent requests exceeded
    "0x80040217": Outcome.NOT_FOUND,     # "… With Id = … Does Not Exist"
    # Entra ID token endpoint
    "temporarily_unavailable": Outcome.RETRY,
}

# Finance and Operations refuses a record (validation, a missing mandatory field, an unknown foreign key) with
# these inner exception types; some versions send them with status 500, which is still the record's fault.
REFUSED_TYPES: frozenset[str] = frozenset({"AxODataWriteException", "AxODataValidationException"})

STATUS_TABLE: dict[int, Outcome] = {
    404: Outcome.NOT_FOUND,
    408: Outcome.RETRY,      # BC: operation timed out
    409: Outcome.CONFLICT,
    412: Outcome.CONFLICT,   # Dataverse: stale etag, or a duplicate under If-None-Match
    425: Outcome.RETRY,
    429: Outcome.RATE_LIMITED,
    500: Outcome.RETRY,
    502: Outcome.RETRY,
    503: Outcome.RETRY,
    504: Outcome.RETRY,      # BC: request timed out
}

# First matching row wins, so subclasses come before their bases.
EXCEPTION_TABLE: tuple[tuple[type[BaseException], Outcome, str], ...] = (
    (httpx.TimeoutException, Outcome.RETRY, "timeout"),
    (httpx.UnsupportedProtocol, Outcome.PERMANENT, "unsupported protocol"),
    (httpx.LocalProtocolError, Outcome.PERMANENT, "invalid request"),
    (httpx.TransportError, Outcome.RETRY, "transport error"),  # connect/read/write errors, remote protocol
    (httpx.InvalidURL, Outcome.PERMANENT, "invalid URL"),
    (TimeoutError, Outcome.RETRY, "timeout"),                  # asyncio.timeout(), asyncio.wait_for
    (ConnectionError, Outcome.RETRY, "connection error"),
)


def classify(subject: httpx.Response | BaseException, *, now: dt.datetime | None = None) -> Classification:
    """Classify a response (any status) or an exception raised while sending a request.

    `now` is only used to turn an HTTP-date Retry-After into seconds (defaults to the current UTC time).
    """
    if isinstance(subject, httpx.HTTPStatusError):
        subject = subject.response
    if isinstance(subject, BaseException):
        return _classify_exception(subject)
    return _classify_response(subject, now)


def _classify_exception(exc: BaseException) -> Classification:
    if isinstance(exc, asyncio.CancelledError):
        return Classification(Outcome.PERMANENT, "cancelled")
    for kind, outcome, reason in EXCEPTION_TABLE:
        if isinstance(exc, kind):
            return Classification(outcome, reason, message=_short(f"{type(exc).__name__}: {exc}"))
    return Classification(Outcome.PERMANENT, "unexpected error", message=_short(f"{type(exc).__name__}: {exc}"))


def _classify_response(response: httpx.Response, now: dt.datetime | None) -> Classification:
    status = response.status_code
    if status < 400:
        return Classification(Outcome.SUCCESS, f"HTTP {status}", status=status)
    code, message = error_details(response)
    outcome = CODE_TABLE.get(code or "") or STATUS_TABLE.get(status) or Outcome.PERMANENT
    if status >= 500 and code in REFUSED_TYPES:
        outcome = Outcome.PERMANENT
    elif outcome is Outcome.PERMANENT and status >= 500:
        outcome = Outcome.RETRY  # any other 5xx is the server's trouble, not ours
    retry_after = parse_retry_after(response.headers.get("Retry-After"), now=now)
    return Classification(outcome, f"HTTP {status}", status=status, code=code, message=message,
                          retry_after=retry_after)


def error_details(response: httpx.Response) -> tuple[str | None, str | None]:
    """(code, redacted message) from an OData or Entra ID error body; (None, text excerpt) otherwise."""
    try:
        raw = response.content
    except httpx.ResponseNotRead:
        return None, None
    if not raw:
        return None, None
    try:
        body = json.loads(raw)
    except ValueError:
        return None, _short(raw.decode("utf-8", errors="replace"))
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            inner = error.get("innererror")
            if not error.get("code") and isinstance(inner, dict) and (inner.get("type") or inner.get("message")):
                # F&O: the outer message is always "An error has occurred."; the inner one says what happened.
                kind = _str_or_none(inner.get("type"))
                return (kind.rsplit(".", 1)[-1] if kind else None,
                        _short(_str_or_none(inner.get("message") or error.get("message"))))
            return _str_or_none(error.get("code")) or None, _short(_str_or_none(error.get("message")))
        if isinstance(error, str):  # Entra ID
            return error, _short(_str_or_none(body.get("error_description")))
    return None, _short(raw.decode("utf-8", errors="replace"))


def parse_retry_after(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP-date; None when absent/invalid.

    A date in the past gives 0. Negative or non-finite numbers are treated as invalid.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if 0 <= seconds < float("inf") else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)  # RFC 9110: HTTP-dates are GMT
    current = now or dt.datetime.now(dt.UTC)
    return max(0.0, (when - current).total_seconds())


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def _short(text: str | None) -> str | None:
    if text is None:
        return None
    text = redact(text)
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"
