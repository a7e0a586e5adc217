"""The admin API: HTTP functions for operators, JSON in and out. docs/admin-api.md documents every route.

Who may call (`shared.admin.identity`): with Easy Auth on (`DUALSYNC_AUTH__EASY_AUTH`, Azure) the Entra ID
identity App Service Authentication validated, by its app roles, and the routes are anonymous to the Functions
host (Easy Auth already refused anyone without a token; a function key would be a second, user-less gate).
With Easy Auth off, function-level auth: the host checks the key, and the key is an automation caller. Every
route declares whether it reads or operates (the default: operates); the caller is checked before the request
is parsed, and recorded on every job the request starts (`shared.state.jobs.acting_as`).

Routes live under `/api/manage/…`, not `/api/admin/…`: the Functions host reserves `admin` for its own API
and refuses function names and routes that start with it ("The specified route conflicts with one or more
built in routes", azure-functions-host#1781).

Each handler parses the request (`shared.admin.params`: a bad one is a 400 before anything else is touched),
runs one operation of `shared.admin.ops` on the process's engine, and answers its document.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

import azure.functions as func

from shared.admin import conflicts, ops, pauses
from shared.admin import params as p
from shared.admin.identity import Access, Caller, authorise, identify
from shared.admin.params import AdminError
from shared.app_runtime import current
from shared.mapping import PackError, Side
from shared.settings import SettingsError, load_auth
from shared.state.jobs import acting_as
from shared.sync import SyncEngine

log = logging.getLogger("dualsync.admin")

PREFIX = "manage"
bp = func.Blueprint()

Work = Callable[[SyncEngine], Awaitable[dict[str, Any]]]
Handler = Callable[[func.HttpRequest], Awaitable[func.HttpResponse]]
READ, OPERATE = Access.READ, Access.OPERATE
# Decided once, when the functions are indexed (as the host does with every app setting): with Easy Auth in
# front, the host must let token-only callers through; without it, the host's key check is the gate.
HOST_AUTH_LEVEL = func.AuthLevel.ANONYMOUS if load_auth().easy_auth else func.AuthLevel.FUNCTION
_caller: ContextVar[Caller] = ContextVar("dualsync_admin_caller")


def respond(document: dict[str, Any], status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(document, ensure_ascii=False, default=str), status_code=status,
                             mimetype="application/json")


def _not_configured(exc: Exception) -> func.HttpResponse:
    # Names the variables or pack paths at fault, never a value.
    log.error("admin API not configured: %s", exc)
    return respond({"error": {"code": "NotConfigured", "message": str(exc)}}, 500)


async def serve(parse: Callable[[], Work]) -> func.HttpResponse:
    """Parse first (400 without touching the engine), then run as the caller; map failures to JSON errors."""
    try:
        work = parse()
        caller = _caller.get()
        with acting_as(caller.label):
            return respond(await work(await current().engine()))
    except AdminError as exc:
        return respond(exc.document(), exc.status)
    except (SettingsError, PackError) as exc:
        return _not_configured(exc)


def need(access: Access) -> None:
    """For a route whose access depends on its input (a dry run reads, a real run operates): check it now."""
    authorise(_caller.get(), access)


def current_caller() -> Caller:
    """Who is calling, inside a `guarded` handler."""
    return _caller.get()


def guarded(handler: Handler, access: Access, name: str, *,
            refuse: Callable[[dict[str, Any], int], func.HttpResponse] = respond) -> Handler:
    """`handler` behind the caller check: 401 without an identity, 403 without the role `access` needs
    (answered by `refuse`: JSON here, an HTML page in the console)."""
    async def run(req: func.HttpRequest) -> func.HttpResponse:
        try:
            caller = identify(req.headers, req.params, easy_auth=current().settings().auth.easy_auth)
            authorise(caller, access)
        except AdminError as exc:
            log.warning("admin %s refused (%s): %s", name, exc.code, exc.message)
            return refuse(exc.document(), exc.status)
        except SettingsError as exc:
            return _not_configured(exc)
        log.info("admin %s by %s", name, caller.label)
        token = _caller.set(caller)
        try:
            return await handler(req)
        finally:
            _caller.reset(token)

    run.__name__ = run.__qualname__ = handler.__name__
    return run


def _query(req: func.HttpRequest) -> dict[str, str]:
    return dict(req.params)


def _inputs(req: func.HttpRequest) -> dict[str, Any]:
    """Query parameters overlaid with the JSON body (an empty body is allowed)."""
    return {**_query(req), **p.json_body(req.get_body(), required=False)}


def _mapping(req: func.HttpRequest) -> str:
    return p.text(req.route_params, "mapping") or ""


def _route(route: str, methods: list[str], access: Access = OPERATE) -> Callable[[Handler], Any]:
    """Register a handler under manage/`route`; `access` is what the caller needs (default: operator)."""
    def register(handler: Handler) -> Any:
        return bp.route(route=f"{PREFIX}/{route}", methods=methods,
                        auth_level=HOST_AUTH_LEVEL)(guarded(handler, access, route))
    return register


# ----- mappings and their status
@bp.function_name("manage_list_mappings")
@_route("mappings", ["GET"], READ)
async def list_mappings(req: func.HttpRequest) -> func.HttpResponse:
    return await serve(lambda: ops.list_mappings)


@bp.function_name("manage_get_mapping")
@_route("mappings/{mapping}", ["GET"], READ)
async def get_mapping(req: func.HttpRequest) -> func.HttpResponse:
    def parse() -> Work:
        name = _mapping(req)
        return lambda engine: ops.get_mapping(engine, name)
    return await serve(parse)


# ----- pause / resume
@bp.function_name("manage_pause_mapping")
@_route("mappings/{mapping}/pause", ["POST"])
async def pause_mapping(req: func.HttpRequest) -> func.HttpResponse:
    def parse() -> Work:
        name, body = _mapping(req), p.json_body(req.get_body(), required=False)
        reason = p.text(body, "reason", required=False)
        return lambda engine: pauses.pause_mapping(engine, name, reason)
    return await serve(parse)


@bp.function_name("manage_resume_mapping")
@_route("mappings/{mapping}/resume", ["POST"])
async def resume_mapping(req: func.HttpRequest) -> func.HttpResponse:
    def parse() -> Work:
        name, given = _mapping(req), _inputs(req)
        catch_up = bool(p.flag(given, "catch_up", True))  # false: the modified-records timer catches up
        return lambda engine: pauses.resume_mapping(engine, name, catch_up=catch_up)
    return await serve(parse)


# ----- couple / uncouple / match
@bp.function_name("manage_couple")
@_route("mappings/{mapping}/couple", ["POST"])
async def couple(req: func.HttpRequest) -> func.HttpResponse:
    def parse() -> Work:
        name, body = _mapping(req), p.json_body(req.get_body())
        erp_id, crm_id = p.text(body, "erp_id") or "", p.text(body, "crm_id") or ""
        return lambda engine: ops.couple(engine, name, erp_id, crm_id)
    return await serve(parse)


@bp.function_name("manage_uncouple")
@_route("mappings/{mapping}/uncouple", ["POST"])
async def uncouple(req: func.HttpRequest) -> func.HttpResponse:
    def parse() -> Work:
        name, body = _mapping(req), p.json_body(req.get_body())
        erp_id, crm_id = p.text(body, "erp_id", required=False), p.text(body, "crm_id", required=False)
        if (erp_id is None) == (crm_id is None):
            raise p.bad_request("give exactly one of 'erp_id' or 'crm_id'")
        side, record_id = (Side.ERP, erp_id) if erp_id is not None else (Side.CRM, crm_id)
        return lambda engine: ops.uncouple(engine, name, side, record_id or "")
    return await serve(parse)


@bp.function_name("manage_match")
@_route("mappings/{mapping}/match", ["POST"], READ)
async def match(req: func.HttpRequest) -> func.HttpResponse:
    def parse() -> Work:
        name, given = _mapping(req), _inputs(req)
        create, dry_run = bool(p.flag(given, "create", False)), bool(p.flag(given, "dry_run", False))
        if not dry_run:
            need(OPERATE)
        return lambda engine: ops.match(engine, name, create=create, dry_run=dry_run)
    return await serve(parse)


# ----- sync now
@bp.function_name("manage_sync_record")
@_route("mappings/{mapping}/sync-record", ["POST"])
async def sync_record(req: func.HttpRequest) -> func.HttpResponse:
    def parse() -> Work:
        name, body = _mapping(req), p.json_body(req.get_body())
        flow = p.direction(body)
        single, many = p.text(body, "source_id", required=False), p.names(body.get("source_ids"), "source_ids")
        if (single is None) == (many is None):
            raise p.bad_request("give 'source_id' or 'source_ids' (a list), not both")
        ids = [single] if single is not None else many or []
        create, force = p.flag(body, "create", None), bool(p.flag(body, "force", False))
        return lambda engine: ops.sync_record(engine, name, flow, ids, create=create, force=force)  # type: ignore[arg-type]
    return await serve(parse)


@bp.function_name("manage_sync_mapping")
@_route("mappings/{mapping}/sync", ["POST"])
async def sync_mapping(req: func.HttpRequest) -> func.HttpResponse:
    def parse() -> Work:
        name, given = _mapping(req), _inputs(req)
        flow = p.direction(given, required=False)
        return lambda engine: ops.sync_mapping(engine, name, flow)
    return await serve(parse)


@bp.function_name("manage_full_sync")
@_route("full-sync", ["POST"], READ)
async def full_sync(req: func.HttpRequest) -> func.HttpResponse:
    def parse() -> Work:
        given = _inputs(req)
        # A dry run unless the caller says dry_run=false: a full sync can create thousands of records.
        dry_run = bool(p.flag(given, "dry_run", True))
        if not dry_run:
            need(OPERATE)
        names = p.names(given.get("mappings") or given.get("mapping"))
        create, flow = p.flag(given, "create", None), p.direction(given, required=False)
        restart = bool(p.flag(given, "restart", False))  # ignore an interrupted run's checkpoint
        return lambda engine: ops.full_sync(engine, names, dry_run=dry_run, create=create, flow=flow,
                                            restart=restart)
    return await serve(parse)


# ----- jobs
@bp.function_name("manage_list_jobs")
@_route("jobs", ["GET"], READ)
async def list_jobs(req: func.HttpRequest) -> func.HttpResponse:
    def parse() -> Work:
        query = _query(req)
        name, since, limit = p.text(query, "mapping", required=False), p.since(query), p.limit(query)
        return lambda engine: ops.list_jobs(engine, name, since=since, limit=limit)
    return await serve(parse)


@bp.function_name("manage_get_job")
@_route("mappings/{mapping}/jobs/{job_id}", ["GET"], READ)
async def get_job(req: func.HttpRequest) -> func.HttpResponse:
    def parse() -> Work:
        name, job_id = _mapping(req), p.text(req.route_params, "job_id") or ""
        return lambda engine: ops.get_job(engine, name, job_id)
    return await serve(parse)


# ----- errors
@bp.function_name("manage_list_errors")
@_route("errors", ["GET"], READ)
async def list_errors(req: func.HttpRequest) -> func.HttpResponse:
    def parse() -> Work:
        query = _query(req)
        name, skipped, limit = p.text(query, "mapping", required=False), p.flag(query, "skipped", None), p.limit(query)
        return lambda engine: ops.list_errors(engine, name, skipped=skipped, limit=limit)
    return await serve(parse)


def _one_error(req: func.HttpRequest) -> tuple[str, Any, str]:
    body = p.json_body(req.get_body())
    return p.text(body, "mapping") or "", p.direction(body), p.text(body, "source_id") or ""


@bp.function_name("manage_retry_error")
@_route("errors/retry", ["POST"])
async def retry_error(req: func.HttpRequest) -> func.HttpResponse:
    def parse() -> Work:
        name, flow, source_id = _one_error(req)
        return lambda engine: ops.retry_error(engine, name, flow, source_id)
    return await serve(parse)


@bp.function_name("manage_retry_all_errors")
@_route("errors/retry-all", ["POST"])
async def retry_all_errors(req: func.HttpRequest) -> func.HttpResponse:
    def parse() -> Work:
        given = _inputs(req)
        name, flow = p.text(given, "mapping", required=False), p.direction(given, required=False)
        return lambda engine: ops.retry_all(engine, name, flow)
    return await serve(parse)


@bp.function_name("manage_skip_error")
@_route("errors/skip", ["POST"])
async def skip_error(req: func.HttpRequest) -> func.HttpResponse:
    def parse() -> Work:
        name, flow, source_id = _one_error(req)
        return lambda engine: ops.set_skipped(engine, name, flow, source_id, skip=True)
    return await serve(parse)


@bp.function_name("manage_restore_error")
@_route("errors/restore", ["POST"])
async def restore_error(req: func.HttpRequest) -> func.HttpResponse:
    def parse() -> Work:
        name, flow, source_id = _one_error(req)
        return lambda engine: ops.set_skipped(engine, name, flow, source_id, skip=False)
    return await serve(parse)


# ----- reconcile
@bp.function_name("manage_reconcile")
@_route("reconcile", ["GET", "POST"], READ)
async def reconcile(req: func.HttpRequest) -> func.HttpResponse:
    def parse() -> Work:
        given = _inputs(req)
        names = p.names(given.get("mappings") or given.get("mapping"))
        return lambda engine: ops.reconcile(engine, names)
    return await serve(parse)


# ----- settled conflicts
@bp.function_name("manage_list_conflicts")
@_route("conflicts", ["GET"], READ)
async def list_conflicts(req: func.HttpRequest) -> func.HttpResponse:
    def parse() -> Work:
        query = _query(req)
        name, limit = p.text(query, "mapping", required=False), p.limit(query)
        reversed_ = p.flag(query, "reversed", None)
        return lambda engine: conflicts.list_conflicts(engine, name, reversed_=reversed_, limit=limit)
    return await serve(parse)


@bp.function_name("manage_reverse_conflict")
@_route("conflicts/{conflict_id}/reverse", ["POST"])
async def reverse_conflict(req: func.HttpRequest) -> func.HttpResponse:
    def parse() -> Work:
        entry_id = p.text(req.route_params, "conflict_id") or ""
        return lambda engine: conflicts.reverse_conflict(engine, entry_id)
    return await serve(parse)
