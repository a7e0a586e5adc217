"""A liveness probe for load balancers and the local host: answers without touching any dependency."""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version

import azure.functions as func

bp = func.Blueprint()


def _version() -> str:
    try:
        return version("dualsync")
    except PackageNotFoundError:  # running from a source tree that was not pip-installed
        return "unknown"


@bp.function_name("health")
@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(json.dumps({"status": "ok", "version": _version()}), mimetype="application/json")
