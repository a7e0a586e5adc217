"""The Azure Functions entry point (Python v2 programming model): create the app, register the blueprints.

Each blueprint in `functions/` is a thin trigger: it parses its binding, calls the core in `shared/`, and
maps the result. Nothing else belongs here.
"""

from __future__ import annotations

import azure.functions as func

from functions.health import bp as health_bp

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(health_bp)
