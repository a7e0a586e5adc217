"""`POST /data/$batch`: OData v4 multipart/mixed, as the Dataverse emulator's (emulators.common.multipart).
Change sets are atomic (store.transaction under the write lock): a failure rolls the whole set back, raises
no data events, and the set's answer is the failing operation's response. Without
`Prefer: odata.continue-on-error` processing stops at the first failure. Operation URLs may be absolute,
`/data/…` or relative to `/data/`; `$n` refers to an earlier change-set result (Content-ID)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Coroutine
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from emulators.common.faults import FaultInjector
from emulators.common.multipart import (
    MultipartError,
    Part,
    boundary_of,
    changeset_part,
    multipart,
    parse_request,
    response_part,
)
from emulators.common.multipart import split_parts as _split
from emulators.finance_operations.api import ApiRequest, ApiResponse, error_response, handle, parse_prefer
from emulators.finance_operations.core import API_PREFIX, Emulator
from emulators.finance_operations.errors import FOError


class _ChangeSetFailed(Exception):
    def __init__(self, response: ApiResponse, content_id: str | None) -> None:
        self.response = response
        self.content_id = content_id


async def run_batch(emu: Emulator, req: ApiRequest, faults: FaultInjector) -> tuple[int, dict[str, str], bytes]:
    try:
        items = _read(req, emu.settings.max_batch_requests)
    except FOError as exc:
        return exc.status, {"Content-Type": "application/json", "OData-Version": "4.0"}, json.dumps(exc.body()).encode()
    continue_on_error = "odata.continue-on-error" in parse_prefer(req.headers)
    boundary = f"batchresponse_{uuid.uuid4()}"
    out: list[bytes] = []
    for item in items:
        if isinstance(item, Part):
            resp = await _guarded(_run_op(emu, req, item, faults, None))
            out.append(response_part(resp.status, resp.headers, resp.content()))
            failed = resp.status >= 400
        else:
            part, failed = await _run_changeset(emu, req, item, faults)
            out.append(part)
        if failed and not continue_on_error:
            break
    headers = {"Content-Type": f"multipart/mixed; boundary={boundary}", "OData-Version": "4.0"}
    if continue_on_error:
        headers["Preference-Applied"] = "odata.continue-on-error"
    return 200, headers, multipart(boundary, out)


def _read(req: ApiRequest, limit: int) -> list[Part | list[Part]]:
    boundary = boundary_of(req.headers.get("content-type", ""))
    if boundary is None:
        raise FOError(400, "The batch request must have a Content-Type of multipart/mixed with a boundary.")
    try:
        items: list[Part | list[Part]] = []
        for part in _split(req.body, boundary):
            inner = boundary_of(part.headers.get("content-type", ""))
            items.append(_split(part.body, inner) if inner else part)
    except MultipartError as exc:
        raise FOError(400, f"The batch request body is not valid: {exc}") from None
    count = sum(len(i) if isinstance(i, list) else 1 for i in items)
    if count > limit:
        # (unconfirmed) F&O documents no limit; the emulator's is max_batch_requests.
        raise FOError(400, f"The number of requests in the batch ({count}) exceeds the limit of {limit}.")
    return items


async def _run_op(emu: Emulator, batch: ApiRequest, part: Part, faults: FaultInjector,
                  refs: dict[str, str] | None) -> ApiResponse:
    await faults.batch_op_delay()
    msg = parse_request(part.body)
    url = msg.url
    if url.startswith("$") and refs is not None:
        ref, _, rest = url.partition("/")
        if ref not in refs:
            raise FOError(400, f"Content-ID reference '{ref}' does not exist in the batch context.")
        url = refs[ref] + ("/" + rest if rest else "")
    split = urlsplit(url)
    path = unquote(split.path)
    if path.startswith(API_PREFIX + "/") or path == API_PREFIX:
        path = path[len(API_PREFIX):]
    elif "://" in url and API_PREFIX + "/" in path:
        path = path.split(API_PREFIX + "/", 1)[1]
    if msg.method == "GET" and refs is not None:
        raise FOError(400, "GET requests are not allowed inside a change set.")
    op = ApiRequest(method=msg.method, path=path.strip("/"), query=dict(parse_qsl(split.query, keep_blank_values=True)),
                    headers=msg.headers, body=msg.body, actor=batch.actor, base=batch.base,
                    url=url if "://" in url else f"{batch.base}/{url.lstrip('/')}", in_changeset=refs is not None)
    return await handle(emu, op)


async def _run_changeset(emu: Emulator, req: ApiRequest, parts: list[Part],
                         faults: FaultInjector) -> tuple[bytes, bool]:
    refs: dict[str, str] = {}
    done: list[bytes] = []
    try:
        async with emu.write_lock:
            with emu.store.transaction():
                for part in parts:
                    cid = part.headers.get("content-id")
                    resp = await _guarded(_run_op(emu, req, part, faults, refs))
                    if resp.status >= 400:
                        raise _ChangeSetFailed(resp, cid)
                    if cid and "Location" in resp.headers:
                        refs[f"${cid}"] = resp.headers["Location"]
                    done.append(response_part(resp.status, resp.headers, resp.content(), cid))
    except _ChangeSetFailed as failure:
        r = failure.response
        return response_part(r.status, r.headers, r.content(), failure.content_id), True
    return changeset_part(f"changesetresponse_{uuid.uuid4()}", done), False


async def _guarded(op: Coroutine[Any, Any, ApiResponse]) -> ApiResponse:
    """An operation's response; malformed parts and bad references answer 400 like a failed request."""
    try:
        return await op
    except FOError as exc:
        return error_response(exc)
    except MultipartError as exc:
        return error_response(FOError(400, f"The batch operation is not valid: {exc}"))
