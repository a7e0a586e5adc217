"""`POST /data/$batch`: OData v4 multipart/mixed, run by the runner the Dataverse emulator shares
(emulators.common.batch). Change sets are atomic (store.transaction under the write lock): a failure rolls the
whole set back, raises no data events, and the set's answer is the failing operation's response. Without
`Prefer: odata.continue-on-error` processing stops at the first failure (the batch still answers 200).
Operation URLs may be absolute, `/data/…` or relative to `/data/`; `$n` refers to an earlier change-set result
(Content-ID), named by the created entity's `Location`."""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote, urlsplit

from emulators.common.batch import BatchDialect
from emulators.common.faults import FaultInjector
from emulators.common.multipart import HttpMessage
from emulators.finance_operations.api import ApiRequest, ApiResponse, error_response, handle, parse_prefer
from emulators.finance_operations.core import API_PREFIX, Emulator
from emulators.finance_operations.errors import FOError

DIALECT = BatchDialect(
    error=FOError, bad_request=lambda message: FOError(400, message), error_response=error_response,
    parse_prefer=parse_prefer, entity_header="Location",
    missing_ref="Content-ID reference '{ref}' does not exist in the batch context.",
    failure_status=False,
)


def _path(url: str) -> str:
    """The resource path below `/data/`, percent-decoded as `api.handle` expects."""
    path = unquote(urlsplit(url).path)
    if path.startswith(API_PREFIX + "/") or path == API_PREFIX:
        return path[len(API_PREFIX):]
    # Only an absolute URL may carry the prefix further in (a host path before it); a relative one is taken as is.
    if "://" in url and API_PREFIX + "/" in path:
        return path.split(API_PREFIX + "/", 1)[1]
    return path


async def run_batch(emu: Emulator, req: ApiRequest, faults: FaultInjector) -> tuple[int, dict[str, str], bytes]:
    async def operation(msg: HttpMessage, url: str, refs: dict[str, str] | None) -> ApiResponse:
        op = ApiRequest(method=msg.method, path=_path(url).strip("/"),
                        query=dict(parse_qsl(urlsplit(url).query, keep_blank_values=True)), headers=msg.headers,
                        body=msg.body, actor=req.actor, base=req.base,
                        # The full URL, for the "No HTTP resource" answer.
                        url=url if "://" in url else f"{req.base}/{url.lstrip('/')}", in_changeset=refs is not None)
        return await handle(emu, op)

    # (unconfirmed) F&O documents no batch limit; the emulator's is max_batch_requests.
    return await DIALECT.run(req.headers, req.body, store=emu.store, lock=emu.write_lock,
                             limit=emu.settings.max_batch_requests, faults=faults, operation=operation)
