"""HTTP triggers on a real port: Starlette routes from the functions' `route`, `methods` and `auth_level`,
each request translated into a `func.HttpRequest`, the user function called, its `func.HttpResponse`
translated back. As the Functions host: routes under `/api/`, function-level auth by `?code=` or the
`x-functions-key` header, a 500 when the function raises."""

from __future__ import annotations

import asyncio
import hmac
import inspect
import logging
import re
from collections.abc import Callable
from typing import Any

import azure.functions as func
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

log = logging.getLogger(__name__)
ROUTE_PREFIX = "/api/"
_CONSTRAINTS = {"int": "int", "long": "int", "guid": "str", "alpha": "str"}


def starlette_path(route: str) -> str:
    """An Azure route template (`items/{id:int}`, `files/{*rest}`, `a/{b?}`) as a Starlette path."""
    def convert(m: re.Match[str]) -> str:
        name, constraint = m.group(2), (m.group(3) or "").lstrip(":")
        if m.group(1):
            return "{" + name + ":path}"
        kind = _CONSTRAINTS.get(constraint.split(":")[0].split("(")[0], "str")
        return "{" + name + (":int}" if kind == "int" else "}")

    path = re.sub(r"\{(\*)?(\w+)((?::[^}?]+)*)\??\}", convert, route.strip("/"))
    return ROUTE_PREFIX + path


async def call_function(function: Callable[..., Any], **kwargs: Any) -> Any:
    """Call a user function as the Python worker does: async on the loop, sync in a worker thread."""
    if inspect.iscoroutinefunction(function):
        return await function(**kwargs)
    return await asyncio.to_thread(function, **kwargs)


def authorised(request: Request, level: func.AuthLevel, keys: dict[str, str]) -> bool:
    """ANONYMOUS: anyone. FUNCTION: the function key or the master key. ADMIN: the master key only."""
    if level == func.AuthLevel.ANONYMOUS:
        return True
    given = request.query_params.get("code") or request.headers.get("x-functions-key") or ""
    wanted = [keys["master"]] if level == func.AuthLevel.ADMIN else [keys["function"], keys["master"]]
    results = [hmac.compare_digest(given.encode(), k.encode()) for k in wanted]
    return any(results)


def http_route(function: Any, keys: dict[str, str]) -> Route:
    """A Starlette route serving one HTTP-triggered `func` Function object."""
    trigger = function.get_trigger()
    user_function = function.get_user_function()
    methods = [str(getattr(m, "value", m)) for m in (trigger.methods or [])] or None
    level = trigger.auth_level or func.AuthLevel.FUNCTION
    name = function.get_function_name()

    async def endpoint(request: Request) -> Response:
        if not authorised(request, level, keys):
            return Response(status_code=401)
        req = func.HttpRequest(method=request.method, url=str(request.url), headers=dict(request.headers),
                               params=dict(request.query_params),
                               route_params={k: str(v) for k, v in request.path_params.items()},
                               body=await request.body())
        try:
            resp = await call_function(user_function, **{trigger.name: req})
        except Exception:
            log.exception("function %s failed", name)
            return Response(status_code=500)
        if not isinstance(resp, func.HttpResponse):
            log.error("function %s returned %s, not an HttpResponse", name, type(resp).__name__)
            return Response(status_code=500)
        headers = {k: v for k, v in resp.headers.items() if k.lower() != "content-type"}
        media = resp.mimetype + (f"; charset={resp.charset}" if resp.charset else "") if resp.mimetype else None
        return Response(resp.get_body(), status_code=resp.status_code, headers=headers, media_type=media)

    return Route(starlette_path(trigger.route or name), endpoint, methods=methods, name=name)
