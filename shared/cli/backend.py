"""Where a command's JSON document comes from: the same admin operations either here (`LocalBackend`, on an
engine built from the environment with `shared.runtime.build_engine`) or in a deployed Function App
(`AdminClient`, `--remote URL` or `DUALSYNC_REMOTE`). Both have the same methods, take the same inputs and
answer the same documents (shared/admin/documents.py), so a command parses its arguments, calls one of
them through `call`, and renders what comes back; `--json` prints it as the admin API would answer.

Refusals arrive as `AdminError` (local) or `RemoteError` (remote), both with an HTTP status and a code;
`call` turns them into a message on stderr and the exit code: 2 for what the operator got wrong (bad
arguments, an unknown mapping, a refused key, no admin API at that URL), 1 for the rest.
"""

from __future__ import annotations

import asyncio
import getpass
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from shared.admin import conflicts, ops, pauses
from shared.admin import params as p
from shared.admin.params import AdminError
from shared.cli.app import invocation
from shared.cli.common import engine_session, fail, settings_or_exit
from shared.cli.remote import AdminClient, RemoteError
from shared.mapping import Side
from shared.state.jobs import acting_as
from shared.sync import SyncEngine

T = TypeVar("T")
REMOTE_ENV = "DUALSYNC_REMOTE"
Document = dict[str, Any]


def wire(document: Document) -> Document:
    """The document as it leaves functions/admin.py (`json.dumps(..., default=str)`) and arrives back: what
    the local transport answers, so its `--json` is the remote one to the byte."""
    return json.loads(json.dumps(document, ensure_ascii=False, default=str))


class LocalBackend:
    """`AdminClient`'s methods on a local engine: string inputs parsed as the admin routes parse them."""

    remote = False

    def __init__(self, engine: SyncEngine) -> None:
        self.engine = engine

    async def mappings(self) -> Document:
        return wire(await ops.list_mappings(self.engine))

    async def mapping(self, name: str) -> Document:
        return wire(await ops.get_mapping(self.engine, name))

    async def pause(self, mapping: str, reason: str | None = None) -> Document:
        with acting_as(local_caller()):  # who paused, as the admin API records its caller
            return wire(await pauses.pause_mapping(self.engine, mapping, reason))

    async def resume(self, mapping: str, *, catch_up: bool = True) -> Document:
        with acting_as(local_caller()):
            return wire(await pauses.resume_mapping(self.engine, mapping, catch_up=catch_up))

    async def couple(self, mapping: str, erp_id: str, crm_id: str) -> Document:
        return wire(await ops.couple(self.engine, mapping, erp_id, crm_id))

    async def uncouple(self, mapping: str, *, erp_id: str | None = None, crm_id: str | None = None) -> Document:
        side, record_id = (Side.ERP, erp_id) if erp_id is not None else (Side.CRM, crm_id)
        return wire(await ops.uncouple(self.engine, mapping, side, record_id or ""))

    async def match(self, mapping: str, *, create: bool = False, dry_run: bool = False,
                    progress: Callable[[Any], None] | None = None) -> Document:
        return wire(await ops.match(self.engine, mapping, create=create, dry_run=dry_run, progress=progress))

    async def sync_record(self, mapping: str, direction: str, source_ids: Sequence[str], *,
                          create: bool | None = None, force: bool = False,
                          progress: Callable[[], None] | None = None) -> Document:
        flow = p.direction({"direction": direction})
        assert flow is not None
        return wire(await ops.sync_record(self.engine, mapping, flow, source_ids, create=create, force=force,
                                          progress=progress))

    async def sync_mapping(self, mapping: str, direction: str | None = None) -> Document:
        flow = p.direction({"direction": direction}, required=False)
        return wire(await ops.sync_mapping(self.engine, mapping, flow))

    async def full_sync(self, mappings: Sequence[str] | None = None, *, dry_run: bool = True,
                        create: bool | None = None, direction: str | None = None,
                        restart: bool = False, progress: Callable[[Any], None] | None = None) -> Document:
        flow = p.direction({"direction": direction}, required=False)
        return wire(await ops.full_sync(self.engine, list(mappings or []) or None, dry_run=dry_run, create=create,
                                        flow=flow, restart=restart, progress=progress))

    async def jobs(self, mapping: str | None = None, *, since: str | None = None, limit: int = 50) -> Document:
        query = {"since": since, "limit": str(limit)}
        return wire(await ops.list_jobs(self.engine, mapping, since=p.since(query), limit=p.limit(query)))

    async def errors(self, mapping: str | None = None, *, skipped: bool | None = None, limit: int = 50) -> Document:
        return wire(await ops.list_errors(self.engine, mapping, skipped=skipped, limit=p.limit({"limit": str(limit)})))

    async def retry(self, mapping: str, direction: str, source_id: str) -> Document:
        return wire(await ops.retry_error(self.engine, mapping, _flow(direction), source_id))

    async def retry_all(self, mapping: str | None = None, direction: str | None = None) -> Document:
        flow = p.direction({"direction": direction}, required=False)
        return wire(await ops.retry_all(self.engine, mapping, flow))

    async def skip(self, mapping: str, direction: str, source_id: str) -> Document:
        return wire(await ops.set_skipped(self.engine, mapping, _flow(direction), source_id, skip=True))

    async def restore(self, mapping: str, direction: str, source_id: str) -> Document:
        return wire(await ops.set_skipped(self.engine, mapping, _flow(direction), source_id, skip=False))

    async def reconcile(self, mappings: Sequence[str] | None = None, *,
                        progress: Callable[[str, int], None] | None = None) -> Document:
        return wire(await ops.reconcile(self.engine, list(mappings or []) or None, progress=progress))

    async def conflicts(self, mapping: str | None = None, *, reversed_: bool | None = None,
                        limit: int = 50) -> Document:
        return wire(await conflicts.list_conflicts(self.engine, mapping, reversed_=reversed_,
                                                   limit=p.limit({"limit": str(limit)})))

    async def reverse(self, entry_id: str) -> Document:
        return wire(await conflicts.reverse_conflict(self.engine, entry_id))


def _flow(direction: str) -> Any:
    return p.direction({"direction": direction})


def local_caller() -> str:
    """Who runs a local command, as audit rows record it: `local:<login name>`."""
    try:
        return f"local:{getpass.getuser()}"
    except (OSError, KeyError):  # no login name (a container without a passwd entry)
        return "local:unknown"


Backend = LocalBackend | AdminClient


def remote_url() -> str | None:
    """The global `--remote` (or `DUALSYNC_REMOTE`) of this invocation; None means local."""
    return invocation["remote"]


def exit_code(status: int, code: str) -> int:
    """2 for what the operator can fix in the command line or its settings, 1 for everything else."""
    if status == 400 or code == "UnknownMapping" or status in (401, 403):
        return 2
    if status == 404 and code == "HttpError":  # no admin API at that URL: a wrong --remote
        return 2
    return 1


def call(work: Callable[[Backend], Awaitable[T]]) -> T:
    """Run `work` on the invocation's backend (remote or local) on a fresh event loop; a refusal becomes a
    message on stderr and the exit code."""
    url = remote_url()
    settings = None if url else settings_or_exit()

    async def main() -> T:
        if url:
            try:
                client = AdminClient.from_env(url)
            except ValueError as exc:
                raise fail(str(exc), 2) from None
            async with client:
                return await work(client)
        assert settings is not None
        async with engine_session(settings) as engine:
            return await work(LocalBackend(engine))

    try:
        return asyncio.run(main())
    except AdminError as exc:
        raise fail(exc.message, exit_code(exc.status, exc.code)) from None
    except RemoteError as exc:
        # A transport failure names the URL already; an answer says who answered it.
        raise fail(str(exc) if not exc.status else f"{url}: {exc}", exit_code(exc.status, exc.code)) from None
