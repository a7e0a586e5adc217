"""The Azure Functions entry point (Python v2 programming model): create the app, register the blueprints.

Each blueprint in `functions/` is a thin trigger: it parses its binding, calls the core in `shared/`, and
maps the result. Nothing else belongs here but telemetry, wired once before anything runs. The pack
(`DUALSYNC_PACK_PATH`, default templates/bc-sales.yaml, relative to this file) decides which webhook functions
exist.
"""

from __future__ import annotations

import os
from pathlib import Path

import azure.functions as func

from functions.admin import bp as admin_bp
from functions.console import bp as console_bp
from functions.dead_letters import bp as dead_letters_bp
from functions.health import bp as health_bp
from functions.processor import bp as processor_bp
from functions.schedules import bp as schedules_bp
from functions.webhooks import webhooks_blueprint
from shared.mapping import Pack, load_pack
from shared.settings import load_settings
from shared.telemetry import setup as telemetry

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
    app.register_functions(dead_letters_bp)
    app.register_functions(schedules_bp)
    app.register_functions(admin_bp)
    app.register_functions(console_bp)
    return app


def check_settings_at_start() -> None:
    """In Azure (the host sets FUNCTIONS_WORKER_RUNTIME), a missing or invalid setting stops the app at start
    with one message naming every variable at fault (never a value), instead of failing each trigger later.
    Tests and the local host install their settings themselves."""
    if os.environ.get("FUNCTIONS_WORKER_RUNTIME"):
        load_settings()


check_settings_at_start()
telemetry.configure()  # Azure Monitor in Azure, DUALSYNC_TELEMETRY__EXPORTER locally (none by default)
app = build_app(load_pack(pack_path()))
