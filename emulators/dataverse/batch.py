"""`POST /api/data/v9.2/$batch` (Microsoft Learn, "Execute batch operations using the Web API"): at most 1000
requests; change sets are atomic (store.transaction) and may refer to earlier results as `$n` (Content-ID)
in URLs and `@odata.bind` values; without `Prefer: odata.continue-on-error` processing stops at the first
failure and the batch answers with that failure's status. Each operation runs through `api.handle`; the
runner is the shared one (emulators.common.batch), this module says how Dataverse differs."""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote, urlsplit

from emulators.common.batch import BatchDialect
from emulators.common.faults import FaultInjector
from emulators.common.multipart import HttpMessage
from emulators.dataverse.api import ApiRequest, ApiResponse, error_response, handle, parse_prefer
from emulators.dataverse.core import API_PREFIX, Emulator
from emulators.dataverse.errors import BAD_PAYLOAD, DataverseError


def _bad_request(message: str) -> DataverseError:
    return DataverseError(400, BAD_PAYLOAD, message)


DIALECT = BatchDialect(
    error=DataverseError, bad_request=_bad_request, error_response=error_response, parse_prefer=parse_prefer,
    # Dataverse names a created record in OData-EntityId; `$n` stands for that URL.
    entity_header="OData-EntityId",
    missing_ref="Content-ID Reference: '{ref}' does not exist in the batch context.",
    failure_status=True,
)


async def run_batch(emu: Emulator, req: ApiRequest, faults: FaultInjector) -> tuple[int, dict[str, str], bytes]:
    async def operation(msg: HttpMessage, url: str, refs: dict[str, str] | None) -> ApiResponse:
        split = urlsplit(url)
        # Percent-decoded, as a request line is: a key value may hold a space or a quote (`A%20B`).
        path = unquote(split.path)
        # Absolute, rooted or relative URLs all name a resource below the service root.
        if API_PREFIX in path:
            path = path.split(API_PREFIX, 1)[1]
        op = ApiRequest(method=msg.method, path=path.strip("/"),
                        query=dict(parse_qsl(split.query, keep_blank_values=True)), headers=msg.headers,
                        body=msg.body, actor=req.actor, base=req.base, refs=refs, in_changeset=refs is not None)
        return await handle(emu, op)

    # (unconfirmed wording) Microsoft Learn: "Batch requests can contain up to 1000 individual requests";
    # the limit itself is max_batch_requests.
    return await DIALECT.run(req.headers, req.body, store=emu.store, lock=emu.write_lock,
                             limit=emu.settings.max_batch_requests, faults=faults, operation=operation)
