"""The classifier's verdict → connector error table, with redaction of whatever reaches a message."""

from __future__ import annotations

import json

import httpx
import pytest

from shared.connectors.base import (
    AlreadyExists,
    ConcurrencyConflict,
    ConnectorError,
    NotFound,
    PermanentError,
    RateLimited,
    TransientError,
)
from shared.connectors.errors import error_from_parts, error_from_request_error
from shared.http.classify import classify
from shared.http.redact import Redactor
from shared.http.retry import RetriesExhausted


def _body(code: str, message: str = "m") -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


@pytest.mark.parametrize(("status", "code", "expected"), [
    (412, "0x80060882", ConcurrencyConflict),          # Dataverse stale etag
    (409, "Request_EntityChanged", ConcurrencyConflict),  # BC stale etag
    (412, "0x80040237", AlreadyExists),                # Dataverse create-only upsert on an existing key
    (412, "0x80060892", AlreadyExists),                # Dataverse alternate key taken
    (400, "Internal_EntityWithSameKeyExists", AlreadyExists),  # BC number taken
    (404, "0x80040217", NotFound),
    (404, "BadRequest_NotFound", NotFound),
    (400, "0x80060888", PermanentError),
    (401, "", PermanentError),
    (403, "0x80040220", PermanentError),
    (429, "0x80072322", RateLimited),
    (503, "", TransientError),
    (500, "0x80040216", TransientError),
])
def test_batch_part_errors(status: int, code: str, expected: type[ConnectorError]) -> None:
    error = error_from_parts(status, {"Content-Type": "application/json"}, _body(code), "update accounts(1)")
    assert type(error) is expected
    assert error.status == status and (error.code or "") == code
    assert error.message.startswith("update accounts(1) failed")


def test_exhausted_retries_keep_the_last_verdict_and_count_attempts() -> None:
    response = httpx.Response(429, headers={"Retry-After": "30"}, content=_body("0x80072322", "slow down"))
    exc = RetriesExhausted("gave up", classify(response), response=response, attempts=4)
    error = error_from_request_error(exc, "list accounts")
    assert isinstance(error, RateLimited)
    assert "after 4 attempts" in error.message and error.detail and "slow down" in error.detail


def test_transport_failure_without_response_becomes_transient() -> None:
    exc = RetriesExhausted("gave up", classify(httpx.ConnectError("refused")), attempts=6)
    error = error_from_request_error(exc, "read accounts(1)")
    assert isinstance(error, TransientError) and error.status is None and "refused" in (error.detail or "")


def test_secrets_never_reach_message_or_detail() -> None:
    secret = "s3cr3t-Value-123"
    body = json.dumps({"error": {"code": "0x80040220", "message": f"denied for {secret}"},
                       "access_token": "abc.def.ghi"}).encode()
    error = error_from_parts(403, {"Content-Type": "application/json"}, body,
                             "GET https://x/accounts?code=functionkey", Redactor([secret]))
    text = f"{error.message} {error.detail}"
    assert secret not in text and "abc.def.ghi" not in text and "functionkey" not in text
    assert "***" in text
