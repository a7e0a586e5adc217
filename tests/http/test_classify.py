"""The classification table on hand-built responses of both services and on transport errors."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

from shared.http import Outcome, classify, parse_retry_after

NOW = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


def odata(status: int, code: str, message: str = "m", **headers: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message}}, headers=headers)


@pytest.mark.parametrize(("response", "outcome"), [
    (httpx.Response(200, json={}), Outcome.SUCCESS),
    (httpx.Response(204), Outcome.SUCCESS),
    (odata(409, "Request_EntityChanged", "Another user has already changed the record."), Outcome.CONFLICT),
    (odata(412, "Request_EntityChanged"), Outcome.CONFLICT),
    (odata(412, "0x80040237", "A record with matching key values already exists."), Outcome.CONFLICT),
    (odata(404, "BadRequest_NotFound", "The customer does not exist. CorrelationId: x"), Outcome.NOT_FOUND),
    (odata(400, "BadRequest_NotFound"), Outcome.NOT_FOUND),
    (odata(404, "0x80040217", "account With Id = 1 Does Not Exist"), Outcome.NOT_FOUND),
    (odata(429, "0x80072322", "Number of requests exceeded", **{"Retry-After": "7"}), Outcome.RATE_LIMITED),
    (odata(429, "Application_TooManyRequests"), Outcome.RATE_LIMITED),
    (odata(503, "0x80072326"), Outcome.RATE_LIMITED),
    (odata(400, "BadRequest_InvalidToken", "If-Match missing"), Outcome.PERMANENT),
    (odata(400, "0x80040265", "validation"), Outcome.PERMANENT),
    (odata(401, "Unauthorized"), Outcome.PERMANENT),
    (odata(403, "0x80040220", "no privilege"), Outcome.PERMANENT),
    (httpx.Response(408), Outcome.RETRY),
    (httpx.Response(500, text="<html>oops</html>"), Outcome.RETRY),
    (httpx.Response(502), Outcome.RETRY),
    (httpx.Response(503, headers={"Retry-After": "3"}), Outcome.RETRY),
    (httpx.Response(504), Outcome.RETRY),
    (httpx.Response(599), Outcome.RETRY),
    (httpx.Response(413), Outcome.PERMANENT),
    (httpx.Response(400, json={"error": "temporarily_unavailable", "error_description": "AADSTS"}), Outcome.RETRY),
    (httpx.Response(401, json={"error": "invalid_client", "error_description": "AADSTS7000215"}), Outcome.PERMANENT),
])
def test_response_table(response: httpx.Response, outcome: Outcome) -> None:
    assert classify(response).outcome is outcome


def test_details_are_extracted_and_redacted() -> None:
    verdict = classify(odata(400, "0x80040265", "bad value; see https://x/api?code=topsecret"))
    assert verdict.code == "0x80040265" and verdict.status == 400
    assert verdict.message is not None and "topsecret" not in verdict.message
    assert "HTTP 400" in verdict.describe()


def test_retry_after_seconds_on_429() -> None:
    verdict = classify(odata(429, "0x80072322", **{"Retry-After": "12"}))
    assert verdict.retry_after == 12 and verdict.retryable


def test_retry_after_http_date() -> None:
    response = httpx.Response(503, headers={"Retry-After": "Wed, 01 May 2024 12:00:30 GMT"})
    assert classify(response, now=NOW).retry_after == 30


def test_bc_429_without_retry_after_has_none() -> None:
    assert classify(httpx.Response(429)).retry_after is None


@pytest.mark.parametrize(("value", "seconds"), [
    ("0", 0), ("5", 5), (" 2.5 ", 2.5), ("Wed, 01 May 2024 11:59:00 GMT", 0),
    ("Wed, 01 May 2024 12:01:00 GMT", 60), (None, None), ("", None), ("-3", None), ("soon", None),
    ("nan", None), ("inf", None),
])
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == seconds


@pytest.mark.parametrize(("exc", "outcome"), [
    (httpx.ConnectTimeout("t"), Outcome.RETRY),
    (httpx.ReadTimeout("t"), Outcome.RETRY),
    (httpx.PoolTimeout("t"), Outcome.RETRY),
    (httpx.ConnectError("refused"), Outcome.RETRY),
    (httpx.ReadError("reset"), Outcome.RETRY),
    (httpx.RemoteProtocolError("server disconnected"), Outcome.RETRY),
    (httpx.UnsupportedProtocol("ftp"), Outcome.PERMANENT),
    (httpx.LocalProtocolError("bad header"), Outcome.PERMANENT),
    (TimeoutError(), Outcome.RETRY),
    (ConnectionResetError(), Outcome.RETRY),
    (ValueError("bug"), Outcome.PERMANENT),
])
def test_exception_table(exc: BaseException, outcome: Outcome) -> None:
    assert classify(exc).outcome is outcome


def test_http_status_error_is_classified_by_its_response() -> None:
    request = httpx.Request("PATCH", "https://bc/customers(1)")
    response = odata(409, "Request_EntityChanged")
    response.request = request
    error = httpx.HTTPStatusError("conflict", request=request, response=response)
    assert classify(error).outcome is Outcome.CONFLICT


def _fo_error(status: int, kind: str, message: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": "", "message": "An error has occurred.", "innererror": {
        "message": message, "type": f"Microsoft.Dynamics.Platform.Integration.Services.OData.{kind}",
        "stacktrace": ""}}})


@pytest.mark.parametrize("status", [400, 500])
def test_fo_refusals_are_permanent_whatever_the_status(status: int) -> None:
    # F&O's outer message never says anything; the inner exception does, and some versions send it with a 500.
    verdict = classify(_fo_error(status, "AxODataWriteException", "Write failed for table row of type "
                                 "'CustCustomerV3Entity'. Infolog: Warning: Field 'Customer group' must be filled in."))
    assert verdict.outcome is Outcome.PERMANENT
    assert verdict.code == "AxODataWriteException" and "Customer group" in (verdict.message or "")


def test_fo_server_trouble_and_conflicts_keep_their_status_meaning() -> None:
    assert classify(_fo_error(500, "NullReferenceException", "boom")).outcome is Outcome.RETRY
    assert classify(_fo_error(412, "AxODataWriteException", "changed by another user")).outcome is Outcome.CONFLICT
    assert classify(_fo_error(404, "AxODataWriteException", "not found")).outcome is Outcome.NOT_FOUND
