"""The operators' console: HTML pages served by the Function App itself under `/api/console` (no server of its
own to deploy). docs/operations.md shows each page.

Who may see and do what is the admin API's rule, by the admin API's code (`functions.admin.guarded`,
`shared.admin.identity`): with Easy Auth, the signed-in Entra ID user's app roles (Viewer reads, Operator also
acts); without it, the function key — in the address (`?code=`) for the pages, since a key in a URL is for
reads only, and in the `x-functions-key` header for the buttons, which the page's script sends.

The buttons POST to `console/actions/{action}` through that script with the header `x-dualsync-console`: a
form or a script on another site cannot send it (a custom header needs a CORS preflight the app does not
grant), so a signed-in operator's session cookie cannot be ridden into a Retry from elsewhere; a request the
browser marks as coming from another site is refused too. A POST without the header is refused, saying why.

Each page parses its query first (a bad filter is a 400 page, as the admin API's 400), then reads through
`shared.admin.ops` on the process's engine and renders with `shared.console`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import azure.functions as func

from functions.admin import HOST_AUTH_LEVEL, current_caller, guarded, serve
from shared.admin import params as p
from shared.admin.identity import Access
from shared.admin.params import AdminError
from shared.app_runtime import current
from shared.console import actions
from shared.console.details import jobs_page, mapping_page
from shared.console.errors import errors_page
from shared.console.layout import Context, Page, document, error_page, security_headers
from shared.console.overview import overview
from shared.console.reconcile import reconcile_page
from shared.console.records import records_page
from shared.mapping import PackError
from shared.settings import SettingsError
from shared.state.jobs import acting_as
from shared.sync import SyncEngine

log = logging.getLogger("dualsync.console")

PREFIX = "console"
CSRF_HEADER = "x-dualsync-console"
DEFAULT_ROOT = "/api/console"
bp = func.Blueprint()

Render = Callable[[SyncEngine, Context], Awaitable[Page]]
Handler = Callable[[func.HttpRequest], Awaitable[func.HttpResponse]]


def root_of(url: str) -> str:
    """The console's path as this request reached it (the host's route prefix before it, whatever it is)."""
    path = urlsplit(url).path
    at = path.find(f"/{PREFIX}")
    return path[:at + len(PREFIX) + 1] if at >= 0 else DEFAULT_ROOT


def html(page: Page, ctx: Context) -> func.HttpResponse:
    return func.HttpResponse(document(page, ctx), status_code=page.status, mimetype="text/html", charset="utf-8",
                             headers=security_headers())


def refused(doc: dict[str, Any], status: int) -> func.HttpResponse:
    """The page for a caller the admin API's check refused (401 / 403): no navigation, nobody to name."""
    error = doc["error"]
    page = error_page(status, error["code"], error["message"])
    body = f"<!doctype html>\n<html lang=en><head><meta charset=utf-8><title>{status} · dualsync</title></head>" \
           f"<body><main>{page.body}</main></body></html>"
    return func.HttpResponse(body, status_code=status, mimetype="text/html", charset="utf-8",
                             headers=security_headers())


async def serve_page(req: func.HttpRequest, render: Render) -> func.HttpResponse:
    """Render one page as the caller; an admin error becomes an error page with its status."""
    runtime = current()
    ctx = Context(root_of(req.url), current_caller(), query=dict(req.params), route=dict(req.route_params))
    try:
        engine = await runtime.engine()
        ctx = dataclasses.replace(ctx, pack=f"{engine.pack.name} {engine.pack.version}")
        with acting_as(ctx.caller.label):
            return html(await render(engine, ctx), ctx)
    except AdminError as exc:
        return html(error_page(exc.status, exc.code, exc.message), ctx)
    except (SettingsError, PackError) as exc:
        log.error("console not configured: %s", exc)  # names the settings at fault, never a value
        return html(error_page(500, "NotConfigured", str(exc)), ctx)


def _page(route: str, name: str, render: Render) -> None:
    """Serve `render` as the page at console/`route` (GET, readers and operators)."""
    async def handler(req: func.HttpRequest) -> func.HttpResponse:
        return await serve_page(req, render)

    handler.__name__ = name
    bp.function_name(name)(bp.route(route=f"{PREFIX}/{route}".rstrip("/"), methods=["GET"], auth_level=HOST_AUTH_LEVEL)(
        guarded(handler, Access.READ, f"{PREFIX}/{route}", refuse=refused)))


_page("", "console_overview", overview)
_page("mappings/{mapping}", "console_mapping", lambda engine, ctx: mapping_page(engine, ctx, ctx.route["mapping"]))
_page("jobs", "console_jobs", jobs_page)
_page("errors", "console_errors", errors_page)
_page("records", "console_records", records_page)
_page("reconcile", "console_reconcile", reconcile_page)


def cross_site(req: func.HttpRequest) -> str | None:
    """Why this POST may not come from the console's own page (None: it may)."""
    if req.headers.get(CSRF_HEADER) != "1":
        return (f"console actions are sent by the console page's script, with the {CSRF_HEADER} header "
                "(a form on another site cannot send it): use the buttons, with JavaScript on")
    # Browsers say where a request comes from; no browser sends "same-origin" for another site's request.
    if req.headers.get("sec-fetch-site") not in (None, "same-origin"):
        return "a console action from another site is refused"
    return None


async def action(req: func.HttpRequest) -> func.HttpResponse:
    reason = cross_site(req)
    if reason is not None:
        log.warning("console action refused: %s", reason)
        return func.HttpResponse(json.dumps({"error": {"code": "CrossSite", "message": reason}}), status_code=403,
                                 mimetype="application/json")
    name = p.text(req.route_params, "action", required=False) or ""
    return await serve(lambda: actions.parse(name, req.get_body()))


bp.function_name("console_action")(bp.route(route=f"{PREFIX}/actions/{{action}}", methods=["POST"],
                                            auth_level=HOST_AUTH_LEVEL)(guarded(action, Access.OPERATE,
                                                                                f"{PREFIX}/actions")))
