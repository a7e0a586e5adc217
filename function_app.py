"""The Azure Functions entry point (Python v2 programming model): create the app, register the blueprints.

Each blueprint in `functions/` is a thin trigger: it parses its binding, calls the core in `shared/`, and
maps the result. Nothing else belongs here. The pack (`DUALSYNC_PACK_PATH`, default templates/bc-sales.yaml,
relative to this file) decides which webhook functions exist.
"""

from __future__ import annotations

import os
from pathlib import Path

import azure.functions as func

from functions.admin import bp as admin_bp
from functions.health import bp as health_bp
from functions.processor import bp as processor_bp
from functions.schedules import bp as schedules_bp
from functions.webhooks import webhooks_blueprint
from shared.mapping import Pack, load_pack

ROOT = Path(__file__).resolve().parent


def pack_path() -> Path:
    path = Path(os.environ.get("DUALSYNC_PACK_PATH") or "templates/bc-sales.yaml")
    return path if path.is_absolute() else ROOT / path


def build_app(pack: Pack) -> func.FunctionApp:
    """The Function App for `pack` (tests build one per pack)."""
    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
    app.register_functions(health_bp)
    app.register_functions(webhooks_blueprint(pack))
    app.register_functions(processor_bp)
    app.register_functions(schedules_bp)
    app.register_functions(admin_bp)
    return app


app = build_app(load_pack(pack_path()))
