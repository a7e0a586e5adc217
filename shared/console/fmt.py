"""How the console writes times, durations, counts and values: what a person scanning a page reads fastest
("4 min ago", "1.2 s"), with the exact value one hover away."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from shared.console.markup import Html, el

MAX_VALUE_CHARS = 200


def parse(iso: str | None) -> dt.datetime | None:
    """An admin document's time (`2026-03-01T12:00:00Z`)."""
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")) if iso else None


def ago(moment: dt.datetime | None, now: dt.datetime) -> str:
    if moment is None:
        return "never"
    seconds = (now - moment).total_seconds()
    if seconds < 0:
        return "just now" if seconds > -5 else "in the future"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{int(seconds)} s ago"


def when(iso: str | None, now: dt.datetime | None = None) -> Html:
    """A time as "4 min ago", the exact UTC time in its tooltip (a `<time>` element)."""
    moment = parse(iso)
    if moment is None:
        return el("span", "—", class_="muted")
    exact = moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return el("time", ago(moment, now or dt.datetime.now(dt.UTC)), datetime=iso, title=exact)


def duration_ms(ms: float | None) -> str:
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    if ms < 3_600_000:
        return f"{ms / 60_000:.1f} min"
    return f"{ms / 3_600_000:.1f} h"


def counts(values: dict[str, int] | None) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted((values or {}).items()) if v) or "—"


def value(v: Any) -> str:
    """A field value as text: JSON for structures, `null` for nothing, cut at MAX_VALUE_CHARS."""
    text = "null" if v is None else v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str)
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS - 1] + "…"
