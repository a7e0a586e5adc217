"""Structured operational events: one log record per event on the `dualsync.events` logger, the event's name
and dimensions in `extra` (Application Insights keeps them as customDimensions, so an alert rule can query
them). Callers name what happened, never a secret: dimensions are ids, names, counts and reasons."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("dualsync.events")


def emit(name: str, message: str, *, level: int = logging.INFO, **dimensions: Any) -> None:
    """Log `message` as the event `name` with its dimensions (e.g. mapping, direction, reason)."""
    log.log(level, message, extra={"event": name, **{k: v for k, v in dimensions.items() if v is not None}})
