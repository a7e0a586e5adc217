"""Remove secrets from anything that may reach a log line or an error record.

Over-redaction is the safe failure: a value that merely looks like a secret (`code=…` in a message) is
hidden too. Redaction is idempotent, so records built from already-redacted text stay stable.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
from pydantic import SecretStr

REDACTED = "***"

# Query / form / connection-string parameter names whose values are secrets. `code` is the Azure Functions
# key, `sig` a SAS signature, `clientState` the BC webhook secret.
_PARAM_NAMES = (
    "code", "sig", "key", "api-key", "api_key", "apikey", "x-api-key", "client_secret", "clientsecret",
    "secret", "password", "pwd", "access_token", "refresh_token", "id_token", "token", "client_assertion",
    "clientstate", "accountkey", "sharedaccesskey", "sharedaccesssignature", "x-functions-key",
)
# Mapping keys (headers, JSON fields) whose values are secrets, compared after lower-casing and `-` → `_`.
# Deliberately narrower than _PARAM_NAMES: `code` and `key` are ordinary fields in error bodies.
_SECRET_KEYS = frozenset({
    "authorization", "proxy_authorization", "x_api_key", "api_key", "apikey", "x_functions_key",
    "ocp_apim_subscription_key", "cookie", "set_cookie", "password", "secret", "client_secret",
    "access_token", "refresh_token", "id_token", "token", "clientstate", "client_state", "connection_string",
    "account_key", "accountkey", "sig", "sas", "sas_token", "client_assertion",
})

_PARAM_RE = re.compile(
    r"(?<![\w-])(" + "|".join(re.escape(n) for n in _PARAM_NAMES) + r")=([^&\s;\"'<>]*)",
    re.IGNORECASE,
)
_JSON_FIELD_RE = re.compile(
    r"(\"(?:" + "|".join(re.escape(n) for n in sorted(_SECRET_KEYS)) + r")\"\s*:\s*\")((?:[^\"\\]|\\.)*)(\")",
    re.IGNORECASE,
)
_AUTH_SCHEME_RE = re.compile(r"\b(Bearer|Basic|SharedKey|SharedAccessSignature)(\s+)([^\s,;\"']+)", re.IGNORECASE)
_JWT_RE = re.compile(r"\beyJ[\w-]{5,}\.[\w-]{5,}\.[\w-]*")

# A configured secret shorter than this is not replaced verbatim: "ab" would shred every message.
MIN_SECRET_LENGTH = 4


def _norm_key(key: str) -> str:
    return key.lower().replace("-", "_")


class Redactor:
    """Redacts known patterns plus the literal values of configured secrets (and their URL-encoded forms)."""

    def __init__(self, secrets: Iterable[str | SecretStr | None] = ()) -> None:
        self._literals: list[str] = []
        for secret in secrets:
            self.add_secret(secret)

    def add_secret(self, secret: str | SecretStr | None) -> None:
        """Also hide this exact value wherever it appears (ignored when empty or very short)."""
        value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
        if not value or len(value) < MIN_SECRET_LENGTH:
            return
        forms = {value, quote(value, safe=""), quote_plus(value, safe="")}
        # Longest first, so a secret containing another is replaced whole.
        self._literals = sorted(set(self._literals) | forms, key=len, reverse=True)

    def text(self, text: str) -> str:
        """Redact a free-form string: messages, URLs, serialized bodies."""
        for literal in self._literals:
            text = text.replace(literal, REDACTED)
        text = _AUTH_SCHEME_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
        text = _JWT_RE.sub(REDACTED, text)
        text = _JSON_FIELD_RE.sub(lambda m: f"{m.group(1)}{REDACTED}{m.group(3)}", text)
        return _PARAM_RE.sub(lambda m: f"{m.group(1)}={REDACTED}", text)

    def url(self, url: object) -> str:
        """Redact a URL (str or httpx.URL): secret query parameters and userinfo passwords."""
        text = re.sub(r"(://[^/@:\s]+):[^/@\s]+@", rf"\1:{REDACTED}@", str(url))
        return self.text(text)

    def headers(self, headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
        """A copy of the headers with secret ones masked (works for httpx.Headers and plain dicts)."""
        items = headers.items() if isinstance(headers, Mapping) else headers
        return {k: (REDACTED if _norm_key(k) in _SECRET_KEYS else self.text(v)) for k, v in items}

    def value(self, value: Any) -> Any:
        """Redact recursively: dict values under secret keys, every string, lists and tuples."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, SecretStr):
            return REDACTED
        if isinstance(value, httpx.URL):
            return self.url(value)
        if isinstance(value, Mapping):
            return {k: (REDACTED if isinstance(k, str) and _norm_key(k) in _SECRET_KEYS and v not in (None, "")
                        else self.value(v)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.value(v) for v in value)
        return value


_DEFAULT = Redactor()


def redact(value: Any, secrets: Iterable[str | SecretStr | None] = ()) -> Any:
    """Redact a string, URL or nested dict/list with the built-in patterns plus `secrets`."""
    redactor = Redactor(secrets) if secrets else _DEFAULT
    return redactor.value(value)
