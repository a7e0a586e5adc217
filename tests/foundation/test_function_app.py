"""The Function App indexes, and its functions are plain callables."""

from __future__ import annotations

import json

import azure.functions as func

from function_app import app
from functions.health import health


def test_app_lists_its_functions() -> None:
    names = {f.get_function_name() for f in app.get_functions()}
    assert "health" in names


def test_health_answers_without_dependencies() -> None:
    response = health(func.HttpRequest(method="GET", url="/api/health", body=b""))
    assert response.status_code == 200
    assert json.loads(response.get_body())["status"] == "ok"
