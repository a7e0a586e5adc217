"""Cheap checks a webhook makes before it trusts or parses a body: its size (Content-Length first, then the
bytes themselves, since the header can lie or be missing), its media type, and the nesting depth of its JSON.

The depth check runs before `json.loads` because Python's parser recurses: a few KB of `[` would otherwise end
in RecursionError (a 500) before any secret is checked. It scans the text the way the JSON grammar splits it —
strings (with their escapes) are blanked out first — so a bracket inside a string is not counted and one outside
always is. Every step is a regular expression or a C-level iteration: linear in the body, never backtracking.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from itertools import accumulate
from typing import Any

from shared.notices.model import NoticeError, TooLarge, UnsupportedMediaType

MAX_DEPTH = 32

# A JSON string, or an unterminated one up to the end of the text (the closing quote is optional so a match never
# fails and is never retried: an unterminated string is malformed and json.loads says so).
_STRING = re.compile(r'"[^"\\]*(?:\\.?[^"\\]*)*"?', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_DIGITS = re.compile(r"[0-9]{1,18}")


def check_size(headers: Mapping[str, str], body: bytes, max_bytes: int) -> None:
    """Refuse (413) a body over `max_bytes`: the declared Content-Length first, then the bytes received.
    `headers` has lower-case names. A Content-Length that is not a number is a 400."""
    declared = headers.get("content-length")
    if declared is not None:
        text = declared.strip()
        if not _DIGITS.fullmatch(text):
            raise NoticeError("Content-Length is not a number of bytes")
        if int(text) > max_bytes:
            raise TooLarge(f"the body is over {max_bytes} bytes")
    if len(body) > max_bytes:
        raise TooLarge(f"the body is over {max_bytes} bytes")


def check_media_type(headers: Mapping[str, str]) -> None:
    """Refuse (415) a body declared as something other than UTF-8 JSON. The three services send
    `application/json`; a request without Content-Type is left to the parser."""
    value = headers.get("content-type")
    if value is None:
        return
    media, *params = (part.strip().lower() for part in value.split(";"))
    if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
        raise UnsupportedMediaType("the body must be application/json")
    for param in params:
        name, _, charset = param.partition("=")
        if name.strip() == "charset" and charset.strip().strip('"') not in ("utf-8", "utf8"):
            raise UnsupportedMediaType("the body must be UTF-8 JSON")


def json_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in `text` outside strings (0 for a scalar). Where the text is
    not JSON the count may be off, but never below the depth `json.loads` would reach before it gives up."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def load_json(body: bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """Decode a UTF-8 JSON body nested at most `max_depth` deep; NoticeError (400) otherwise. Only UTF-8 is
    accepted (RFC 8259 §8.1): `json.loads(bytes)` would guess UTF-16/32 and read bytes the depth scan did not."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise NoticeError("the body is not JSON: it is not UTF-8") from None
    if json_depth(text) > max_depth:
        raise NoticeError(f"the JSON nests deeper than {max_depth} levels")
    try:
        return json.loads(text)
    except RecursionError:  # unreachable after the scan; kept so a scan mistake is a 400, not a 500
        raise NoticeError(f"the JSON nests deeper than {max_depth} levels") from None
    except ValueError:  # also a number of more than 4300 digits (int_max_str_digits)
        raise NoticeError("the body is not JSON") from None
