"""A small multipart/mixed reader and writer for OData `$batch` (OData 4.0 Part 1 §11.7; Microsoft Learn,
"Execute batch operations using the Web API"). Parts are `application/http` messages (a request or a
response line, headers, a blank line, a body) or nested change sets. Accepts CRLF or bare LF line ends."""

from __future__ import annotations

import re
from dataclasses import dataclass
from http import HTTPStatus


class MultipartError(ValueError):
    """The body is not a well-formed multipart/mixed document."""


@dataclass
class Part:
    headers: dict[str, str]  # lower-case names
    body: bytes


@dataclass
class HttpMessage:
    method: str
    url: str
    headers: dict[str, str]  # lower-case names
    body: bytes


def boundary_of(content_type: str) -> str | None:
    """The boundary of a `multipart/mixed; boundary=…` content type, or None when it is not one."""
    if not content_type.lower().startswith("multipart/mixed"):
        return None
    m = re.search(r'boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))', content_type, re.I)
    return (m.group(1) or m.group(2)) if m else None


def _lines(data: bytes) -> list[bytes]:
    return [line[:-1] if line.endswith(b"\r") else line for line in data.split(b"\n")]


def split_parts(body: bytes, boundary: str) -> list[Part]:
    delim, close = b"--" + boundary.encode(), b"--" + boundary.encode() + b"--"
    parts: list[list[bytes]] = []
    current: list[bytes] | None = None
    closed = False
    for line in _lines(body):
        stripped = line.rstrip()
        if stripped == close:
            if current is not None:
                parts.append(current)
            closed = True
            break
        if stripped == delim:
            if current is not None:
                parts.append(current)
            current = []
        elif current is not None:
            current.append(line)
    if not closed:
        raise MultipartError(f"the multipart body does not end with the closing delimiter --{boundary}--")
    return [_part(lines) for lines in parts]


def _part(lines: list[bytes]) -> Part:
    headers, i = _headers(lines, 0)
    return Part(headers, b"\r\n".join(lines[i:]).strip(b"\r\n"))


def _headers(lines: list[bytes], i: int) -> tuple[dict[str, str], int]:
    headers: dict[str, str] = {}
    while i < len(lines) and lines[i].strip():
        name, sep, value = lines[i].decode("utf-8", "replace").partition(":")
        if not sep:
            raise MultipartError(f"malformed header line {lines[i]!r}")
        headers[name.strip().lower()] = value.strip()
        i += 1
    return headers, i + 1


def parse_request(data: bytes) -> HttpMessage:
    """An `application/http` part's request: `METHOD url HTTP/1.1`, headers, blank line, body."""
    lines = _lines(data)
    i = 0
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i >= len(lines):
        raise MultipartError("an application/http part holds no request line")
    bits = lines[i].decode("utf-8", "replace").split()
    if len(bits) < 2:
        raise MultipartError(f"malformed request line {lines[i]!r}")
    headers, j = _headers(lines, i + 1)
    return HttpMessage(bits[0].upper(), bits[1], headers, b"\r\n".join(lines[j:]).strip())


def response_part(status: int, headers: dict[str, str], body: bytes, content_id: str | None = None) -> bytes:
    """One `application/http` response part, as the service writes them (full status line, headers, body)."""
    head = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if content_id is not None:
        head.append(f"Content-ID: {content_id}")
    reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
    lines = [*head, "", f"HTTP/1.1 {status} {reason}", *(f"{k}: {v}" for k, v in headers.items()), ""]
    return "\r\n".join(lines).encode() + b"\r\n" + body


def changeset_part(boundary: str, parts: list[bytes]) -> bytes:
    return f"Content-Type: multipart/mixed; boundary={boundary}\r\n\r\n".encode() + multipart(boundary, parts)


def multipart(boundary: str, parts: list[bytes]) -> bytes:
    b = boundary.encode()
    return b"".join(b"--" + b + b"\r\n" + p + b"\r\n" for p in parts) + b"--" + b + b"--\r\n"
