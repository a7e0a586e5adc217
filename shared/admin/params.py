"""Reading an admin request's query parameters and JSON body, with errors that say exactly what is wrong.

Every problem raises `AdminError` carrying the HTTP status and a stable code; functions/admin.py turns it into
`{"error": {"code": …, "message": …}}`. Nothing here knows about Azure Functions.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from shared.mapping import Direction

_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}
_AGE_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


class AdminError(Exception):
    """An admin request that cannot be served as asked: `status` (400, 404, 409, 502) and a stable `code`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def document(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


def bad_request(message: str) -> AdminError:
    return AdminError(400, "BadRequest", message)


def json_body(raw: bytes | None, *, required: bool = True) -> dict[str, Any]:
    """The body as a JSON object; an empty body is `{}` unless `required`."""
    if not raw or not raw.strip():
        if required:
            raise bad_request("the request needs a JSON object body")
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise bad_request("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise bad_request(f"the request body must be a JSON object, got {type(body).__name__}")
    return body


def text(source: Mapping[str, Any], name: str, *, required: bool = True) -> str | None:
    """A non-blank string field (body) or parameter (query), stripped."""
    value = source.get(name)
    if value is not None and not isinstance(value, str):
        raise bad_request(f"'{name}' must be a string, got {type(value).__name__}")
    if value is None or not value.strip():
        if required:
            raise bad_request(f"'{name}' is required")
        return None
    return value.strip()


def flag(source: Mapping[str, Any], name: str, default: bool | None) -> bool | None:
    """A boolean: JSON true/false, or the query spellings true/false/1/0/yes/no."""
    value = source.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise bad_request(f"'{name}' must be true or false, got {value!r}")


def direction(source: Mapping[str, Any], name: str = "direction", *, required: bool = True) -> Direction | None:
    """A one-way direction: to_crm / to-crm or to_erp / to-erp."""
    value = text(source, name, required=required)
    if value is None:
        return None
    try:
        flow = Direction.parse(value)
    except ValueError:
        flow = None
    if flow is None or flow is Direction.BIDIRECTIONAL:
        raise bad_request(f"'{name}' must be to_crm or to_erp, got {value!r}")
    return flow


def since(source: Mapping[str, Any], name: str = "since") -> dt.datetime | None:
    """An age (`30m`, `12h`, `7d`) or an ISO date/time (UTC when it has no offset)."""
    value = text(source, name, required=False)
    if value is None:
        return None
    if value[:-1].isdigit() and value[-1:] in _AGE_UNITS:
        return dt.datetime.now(dt.UTC) - dt.timedelta(**{_AGE_UNITS[value[-1]]: int(value[:-1])})
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise bad_request(f"'{name}' takes an age (30m, 12h, 7d) or an ISO date/time, got {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def limit(source: Mapping[str, Any], name: str = "limit", *, default: int = 50, maximum: int = 1000) -> int:
    value = source.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise bad_request(f"'{name}' must be a whole number, got {value!r}") from None
    if not 1 <= number <= maximum:
        raise bad_request(f"'{name}' must be between 1 and {maximum}, got {number}")
    return number


def names(value: Any, name: str = "mappings") -> list[str] | None:
    """Mapping names: a JSON list of strings, or a comma-separated query value; None when absent."""
    if value is None or value == "" or value == []:
        return None
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) and i.strip() for i in items):
        raise bad_request(f"'{name}' must be a list of mapping names")
    return [i.strip() for i in items]
