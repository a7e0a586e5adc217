"""Client side of OData v4 multipart `$batch` (OData 4.0 Part 1 §11.7), as Dataverse (Microsoft Learn,
"Execute batch operations using the Web API") and Finance and Operations speak it: build the request body,
read the multipart answer.

Pure: no I/O, so the wire format is unit-tested on hand-built bodies. Every part is an `application/http`
message with `Content-Transfer-Encoding: binary`; an atomic set is one change set whose parts carry
`Content-ID: 1…n`. Lines end in CRLF on the way out; CRLF or bare LF is accepted on the way in.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

CRLF = "\r\n"
_STATUS_LINE = re.compile(rb"^HTTP/\d(?:\.\d)?\s+(\d{3})\b")
_BOUNDARY = re.compile(r'boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))', re.IGNORECASE)


class BatchFormatError(ValueError):
    """The `$batch` answer is not the multipart document the protocol describes."""


@dataclass(frozen=True)
class BatchRequest:
    """One operation: method, absolute URL, its own headers and a JSON body (None for DELETE)."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class BatchResponse:
    """One operation's answer. `headers` are the inner HTTP headers (lower-case names); `content_id` comes
    from the MIME part (present inside change sets)."""

    status: int
    headers: dict[str, str]
    body: bytes
    content_id: str | None = None

    def json(self) -> Any:
        return json.loads(self.body) if self.body.strip() else None


def boundary_of(content_type: str | None) -> str | None:
    """The boundary of a `multipart/mixed; boundary=…` content type, or None when it is not multipart."""
    if not content_type or not content_type.strip().lower().startswith("multipart/mixed"):
        return None
    m = _BOUNDARY.search(content_type)
    return (m.group(1) or m.group(2)) if m else None


def build_batch(requests: Sequence[BatchRequest], *, atomic: bool,
                boundary: str | None = None) -> tuple[str, bytes]:
    """(Content-Type header, body) of a `$batch` request. `atomic` puts every request in one change set
    (all-or-nothing, `Content-ID` 1…n in order); otherwise each request is a top-level part."""
    if not requests:
        raise ValueError("a $batch needs at least one request")
    batch = boundary or f"batch_{uuid.uuid4()}"
    if atomic:
        changeset = f"changeset_{uuid.uuid4()}"
        inner = [_request_part(r, content_id=str(n)) for n, r in enumerate(requests, start=1)]
        parts = [f"Content-Type: multipart/mixed; boundary={changeset}{CRLF}{CRLF}" + _multipart(changeset, inner)]
    else:
        parts = [_request_part(r) for r in requests]
    return f"multipart/mixed; boundary={batch}", _multipart(batch, parts).encode("utf-8")


def _request_part(request: BatchRequest, content_id: str | None = None) -> str:
    head = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if content_id is not None:
        head.append(f"Content-ID: {content_id}")
    lines = [*head, "", f"{request.method.upper()} {request.url} HTTP/1.1"]
    headers = dict(request.headers)
    body = ""
    if request.body is not None:
        headers.setdefault("Content-Type", "application/json; type=entry")
        body = json.dumps(request.body, separators=(",", ":"), ensure_ascii=False)
    for name, value in headers.items():
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
            raise ValueError(f"header {name!r} of a batch operation contains a line break")
        lines.append(f"{name}: {value}")
    return CRLF.join([*lines, "", body])


def _multipart(boundary: str, parts: Sequence[str]) -> str:
    for part in parts:
        if f"--{boundary}" in part:  # practically impossible with a uuid, but never send an ambiguous body
            raise ValueError("a batch part contains its own boundary")
    return "".join(f"--{boundary}{CRLF}{part}{CRLF}" for part in parts) + f"--{boundary}--{CRLF}"


def parse_batch_response(content_type: str | None, body: bytes) -> list[BatchResponse]:
    """Every operation answer in order, change sets flattened (their parts keep their `Content-ID`).

    A failed change set is answered by the failing operation's response alone, outside any change set;
    the caller matches answers to requests by `Content-ID` (change sets) or by position (top-level parts).
    """
    boundary = boundary_of(content_type)
    if boundary is None:
        raise BatchFormatError(f"the $batch answer is not multipart/mixed (Content-Type {content_type!r})")
    out: list[BatchResponse] = []
    for raw in split_multipart(body, boundary):
        headers, content = split_headers(raw)
        inner = boundary_of(headers.get("content-type"))
        if inner is not None:
            for sub in split_multipart(content, inner):
                sub_headers, sub_content = split_headers(sub)
                out.append(_response(sub_headers, sub_content))
        else:
            out.append(_response(headers, content))
    return out


def split_multipart(body: bytes, boundary: str) -> list[bytes]:
    """The parts between `--boundary` lines up to `--boundary--` (RFC 2046 §5.1.1: the line break before a
    delimiter belongs to the delimiter; the preamble and epilogue are ignored)."""
    delimiter = re.compile(rb"^--" + re.escape(boundary.encode()) + rb"(--)?[ \t]*\r?$", re.MULTILINE)
    parts: list[bytes] = []
    start: int | None = None
    for m in delimiter.finditer(body):
        if start is not None:
            chunk = body[start:m.start()]
            parts.append(chunk[:-2] if chunk.endswith(b"\r\n") else chunk[:-1] if chunk.endswith(b"\n") else chunk)
        if m.group(1):
            return parts
        start = m.end() + (1 if body[m.end():m.end() + 1] == b"\n" else 0)
    raise BatchFormatError(f"the multipart body does not end with --{boundary}--")


def split_headers(raw: bytes) -> tuple[dict[str, str], bytes]:
    """(headers with lower-case names, the rest) of a MIME part or an HTTP message without its first line."""
    m = re.search(rb"\r?\n\r?\n", raw)
    if raw.startswith((b"\r\n", b"\n")):
        head, rest = b"", raw.split(b"\n", 1)[1]
    elif m is None:
        head, rest = raw, b""
    else:
        head, rest = raw[:m.start()], raw[m.end():]
    headers: dict[str, str] = {}
    for line in head.decode("utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise BatchFormatError(f"malformed header line {line!r} in a $batch answer")
        headers[name.strip().lower()] = value.strip()
    return headers, rest


def _response(part_headers: dict[str, str], content: bytes) -> BatchResponse:
    text = content.lstrip(b"\r\n")
    line_end = text.find(b"\n")
    status_line = text if line_end < 0 else text[:line_end]
    m = _STATUS_LINE.match(status_line)
    if m is None:
        raise BatchFormatError(f"a $batch answer part has no HTTP status line: {status_line[:80]!r}")
    headers, body = split_headers(b"" if line_end < 0 else text[line_end + 1:])
    return BatchResponse(int(m.group(1)), headers, body.strip(b"\r\n"), part_headers.get("content-id"))
