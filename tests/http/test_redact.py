"""Redaction: known patterns, configured secrets, nested values; property-tested."""

from __future__ import annotations

import string

import httpx
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from shared.http import REDACTED, Redactor, redact

SECRET_CHARS = string.ascii_letters + string.digits + "-_.~+/="
secrets_ = st.text(SECRET_CHARS, min_size=8, max_size=40)
filler = st.text(st.characters(blacklist_characters="*", blacklist_categories=("Cs",)), max_size=60)


@given(secret=secrets_, before=filler, after=filler)
def test_configured_secret_never_survives(secret: str, before: str, after: str) -> None:
    redactor = Redactor([SecretStr(secret)])
    out = redactor.text(before + secret + after)
    assert secret not in out
    assert redactor.text(out) == out  # idempotent


@given(token=st.text(string.ascii_letters + string.digits + "-_.~+/=", min_size=1, max_size=80), text=filler)
def test_bearer_tokens_never_survive(token: str, text: str) -> None:
    out = redact(f"{text} Authorization: Bearer {token}")
    assert f"Bearer {token}" not in out and "Bearer ***" in out


@given(name=st.sampled_from(["code", "sig", "key", "client_secret", "access_token", "clientState", "SIG"]),
       value=st.text(string.ascii_letters + string.digits + "%-_.", min_size=1, max_size=40))
def test_secret_query_parameters_never_survive(name: str, value: str) -> None:
    url = f"https://fn.azurewebsites.net/api/webhooks/bc?a=1&{name}={value}&b=2"
    out = Redactor().url(url)
    assert f"{name}={value}" not in out and f"{name}={REDACTED}" in out and "a=1" in out and "b=2" in out


@given(st.text(string.ascii_letters + string.digits + " .,:()", max_size=80))
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact(text) == text


def test_connection_strings_and_jwts() -> None:
    conn = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNO/K1SZ==;"
            "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;")
    out = redact(conn)
    assert "Eby8vdM02xNO" not in out and "AccountName=devstoreaccount1" in out and "TableEndpoint=http" in out
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
    assert "dozjgNryP4" not in redact(f"token was {jwt}")


def test_headers_and_nested_values() -> None:
    headers = httpx.Headers({"Authorization": "Bearer abc", "x-api-key": "k1", "x-functions-key": "k2",
                             "Content-Type": "application/json"})
    assert Redactor().headers(headers) == {"authorization": REDACTED, "x-api-key": REDACTED,
                                           "x-functions-key": REDACTED, "content-type": "application/json"}
    detail = {"error": {"code": "0x80040265", "message": "bad"}, "request": {"client_secret": "zzz",
              "url": httpx.URL("https://x/?code=abc"), "items": ["Bearer t0k3n", ("sig=1",)]}}
    out = Redactor().value(detail)
    assert out["error"] == {"code": "0x80040265", "message": "bad"}  # ordinary `code` fields stay
    assert out["request"]["client_secret"] == REDACTED
    assert out["request"]["url"] == "https://x/?code=***"
    assert out["request"]["items"] == ["Bearer ***", ("sig=***",)]


def test_json_text_fields_and_url_encoded_secrets() -> None:
    secret = "p@ss w/rd+1"
    redactor = Redactor([secret])
    body = 'grant_type=client_credentials&client_id=c&client_secret=p%40ss+w%2Frd%2B1&scope=s'
    assert "p%40ss" not in redactor.text(body)
    assert redact('{"client_secret": "abc\\"def", "name": "x"}') == '{"client_secret": "***", "name": "x"}'
    assert Redactor().url("https://user:pw@host/path") == "https://user:***@host/path"


def test_short_configured_secrets_are_ignored_rather_than_shredding_text() -> None:
    assert Redactor(["ab", None, ""]).text("abcabc") == "abcabc"
