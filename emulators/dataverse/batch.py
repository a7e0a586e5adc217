"""`POST /api/data/v9.2/$batch` (Microsoft Learn, "Execute batch operations using the Web API"): at most 1000
requests; change sets are atomic (store.transaction) and may refer to earlier results as `$n` (Content-ID)
in URLs and `@odata.bind` values; without `Prefer: odata.continue-on-error` processing stops at the first
failure and the batch answers with that failure's status. Each operation runs through `api.handle`."""

from __future__ import annotations

import json
import uuid
from collections.abc import Coroutine
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from emulators.common.faults import FaultInjector
from emulators.common.multipart import (
    MultipartError,
    Part,
    boundary_of,
    changeset_part,
    multipart,
    parse_request,
    response_part,
    split_parts,
)
from emulators.dataverse.api import ApiRequest, ApiResponse, error_response, handle, parse_prefer
from emulators.dataverse.core import API_PREFIX, Emulator
from emulators.dataverse.errors import BAD_PAYLOAD, DataverseError


class _ChangeSetFailed(Exception):
    def __init__(self, response: ApiResponse, content_id: str | None) -> None:
        self.response = response
        self.content_id = content_id


async def run_batch(emu: Emulator, req: ApiRequest, faults: FaultInjector) -> tuple[int, dict[str, str], bytes]:
    try:
        items = _read(req, emu.settings.max_batch_requests)
    except DataverseError as exc:
        return exc.status, {"Content-Type": "application/json", "OData-Version": "4.0"}, json.dumps(exc.body()).encode()
    continue_on_error = "odata.continue-on-error" in parse_prefer(req.headers)
    boundary = f"batchresponse_{uuid.uuid4()}"
    out: list[bytes] = []
    status = 200
    for item in items:
        if isinstance(item, Part):
            resp = await _guarded(_run_op(emu, req, item, faults, None))
            out.append(response_part(resp.status, resp.headers, resp.content()))
            failed = resp.status >= 400
        else:
            part, failed, resp = await _run_changeset(emu, req, item, faults)
            out.append(part)
        if failed and not continue_on_error:
            status = resp.status
            break
    headers = {"Content-Type": f"multipart/mixed; boundary={boundary}", "OData-Version": "4.0"}
    if continue_on_error:
        headers["Preference-Applied"] = "odata.continue-on-error"
    return status, headers, multipart(boundary, out)


def _read(req: ApiRequest, limit: int) -> list[Part | list[Part]]:
    boundary = boundary_of(req.headers.get("content-type", ""))
    if boundary is None:
        raise DataverseError(400, BAD_PAYLOAD, "The batch request must have a Content-Type of multipart/mixed "
                             "with a boundary.")
    try:
        items: list[Part | list[Part]] = []
        for part in split_parts(req.body, boundary):
            inner = boundary_of(part.headers.get("content-type", ""))
            items.append(split_parts(part.body, inner) if inner else part)
    except MultipartError as exc:
        raise DataverseError(400, BAD_PAYLOAD, f"The batch request body is not valid: {exc}") from None
    count = sum(len(i) if isinstance(i, list) else 1 for i in items)
    if count > limit:
        # (unconfirmed wording) Microsoft Learn: "Batch requests can contain up to 1000 individual requests".
        raise DataverseError(400, BAD_PAYLOAD, f"The number of requests in the batch ({count}) exceeds the "
                             f"limit of {limit}.")
    return items


async def _run_op(emu: Emulator, batch: ApiRequest, part: Part, faults: FaultInjector,
                  refs: dict[str, str] | None) -> ApiResponse:
    await faults.batch_op_delay()
    msg = parse_request(part.body)
    url = msg.url
    if url.startswith("$") and refs is not None:
        ref, _, rest = url.partition("/")
        if ref not in refs:
            raise DataverseError(400, BAD_PAYLOAD, f"Content-ID Reference: '{ref}' does not exist in the batch "
                                 "context.")
        url = refs[ref] + ("/" + rest if rest else "")
    split = urlsplit(url)
    path = split.path
    if API_PREFIX in path:
        path = path.split(API_PREFIX, 1)[1]
    op = ApiRequest(method=msg.method, path=path.strip("/"), query=dict(parse_qsl(split.query, keep_blank_values=True)),
                    headers=msg.headers, body=msg.body, actor=batch.actor, base=batch.base, refs=refs,
                    in_changeset=refs is not None)
    if msg.method == "GET" and refs is not None:
        raise DataverseError(400, BAD_PAYLOAD, "GET requests are not allowed inside a change set.")
    return await handle(emu, op)


async def _run_changeset(emu: Emulator, req: ApiRequest, parts: list[Part],
                         faults: FaultInjector) -> tuple[bytes, bool, ApiResponse]:
    refs: dict[str, str] = {}
    done: list[bytes] = []
    last = ApiResponse(200)
    try:
        async with emu.write_lock:
            with emu.store.transaction():
                for part in parts:
                    cid = part.headers.get("content-id")
                    resp = await _guarded(_run_op(emu, req, part, faults, refs))
                    if resp.status >= 400:
                        raise _ChangeSetFailed(resp, cid)
                    if cid and "OData-EntityId" in resp.headers:
                        refs[f"${cid}"] = resp.headers["OData-EntityId"]
                        resp.headers.setdefault("Location", resp.headers["OData-EntityId"])
                    done.append(response_part(resp.status, resp.headers, resp.content(), cid))
                    last = resp
    except _ChangeSetFailed as failure:
        # The whole change set is rolled back; the answer is the failing operation's response alone.
        r = failure.response
        return response_part(r.status, r.headers, r.content(), failure.content_id), True, r
    return changeset_part(f"changesetresponse_{uuid.uuid4()}", done), False, last


async def _guarded(op: Coroutine[Any, Any, ApiResponse]) -> ApiResponse:
    """An operation's response; malformed parts and bad references answer 400 like a failed request."""
    try:
        return await op
    except DataverseError as exc:
        return error_response(exc)
    except MultipartError as exc:
        return error_response(DataverseError(400, BAD_PAYLOAD, f"The batch operation is not valid: {exc}"))
