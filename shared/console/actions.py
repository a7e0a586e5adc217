"""The console's buttons: Retry, Skip, Restore, Retry all, Pause, Resume. Each is an admin operation
(`shared.admin.ops`, `shared.admin.pauses`) run with the form's fields, answered as `{"ok", "message"}` for the
page to show; the fields are checked first (400, as the admin API does) and the operation's own errors keep
their status (404 unknown mapping or error, 400 a direction the mapping does not sync).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from shared.admin import ops, pauses
from shared.admin import params as p
from shared.admin.params import AdminError
from shared.console.fmt import counts
from shared.sync import SyncEngine

Work = Callable[[SyncEngine], Awaitable[dict[str, Any]]]
MAX_FORM_BYTES = 16 * 1024


def form_fields(body: bytes | None) -> dict[str, str]:
    """An `application/x-www-form-urlencoded` body (what the page's script sends) as a dict."""
    if not body:
        return {}
    if len(body) > MAX_FORM_BYTES:
        raise AdminError(413, "TooLarge", f"an action's form is at most {MAX_FORM_BYTES} bytes")
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=False, strict_parsing=False))
    except UnicodeDecodeError:
        raise p.bad_request("the form is not UTF-8") from None


def _one(fields: dict[str, str]) -> tuple[str, Any, str]:
    return p.text(fields, "mapping") or "", p.direction(fields), p.text(fields, "source_id") or ""


def _retry(fields: dict[str, str]) -> Work:
    name, flow, source_id = _one(fields)

    async def work(engine: SyncEngine) -> dict[str, Any]:
        r = (await ops.retry_error(engine, name, flow, source_id))["result"]
        ok = r["outcome"] != "failed"
        said = f": {r['message']}" if r.get("message") and not ok else ""
        return {"ok": ok, "message": f"Retried {source_id} ({name} {flow.value}): {r['outcome']}{said}"}
    return work


def _skip(skip: bool) -> Callable[[dict[str, str]], Work]:
    def parse(fields: dict[str, str]) -> Work:
        name, flow, source_id = _one(fields)

        async def work(engine: SyncEngine) -> dict[str, Any]:
            await ops.set_skipped(engine, name, flow, source_id, skip=skip)
            what = "skipped: no automatic retries until restored" if skip else "restored: retried automatically again"
            return {"ok": True, "message": f"{source_id} ({name} {flow.value}) {what}"}
        return work
    return parse


def _retry_all(fields: dict[str, str]) -> Work:
    name = p.text(fields, "mapping", required=False)
    flow = p.direction(fields, required=False)

    async def work(engine: SyncEngine) -> dict[str, Any]:
        doc = await ops.retry_all(engine, name, flow)
        still = doc["still_failing"]
        return {"ok": not still, "message": f"Retried {doc['retried']} records: "
                                           + (f"{still} still failing" if still else "all synced")}
    return work


def _pause(fields: dict[str, str]) -> Work:
    name, reason = p.text(fields, "mapping") or "", p.text(fields, "reason", required=False)

    async def work(engine: SyncEngine) -> dict[str, Any]:
        await pauses.pause_mapping(engine, name, reason)
        return {"ok": True, "message": f"Paused {name}: its changes are kept until it is resumed"}
    return work


def _resume(fields: dict[str, str]) -> Work:
    name = p.text(fields, "mapping") or ""

    async def work(engine: SyncEngine) -> dict[str, Any]:
        doc = await pauses.resume_mapping(engine, name)
        caught = doc.get("catch_up")
        if caught is None:
            return {"ok": True, "message": f"{name} was not paused"}
        if caught["error"]:
            return {"ok": False, "message": f"Resumed {name}; its catch-up failed ({caught['error']}): the "
                                            "modified-records timer will catch up"}
        done: dict[str, int] = {}
        for run in caught["runs"]:
            for key, count in run["counts"].items():
                done[key] = done.get(key, 0) + count
        failed = sum(len(run["failures"]) for run in caught["runs"])
        return {"ok": caught["ok"], "message": f"Resumed {name} and caught up: "
                                               + (counts(done) if any(done.values()) else "nothing had changed")
                                               + (f"; {failed} failed (see Errors)" if failed else "")}
    return work


ACTIONS: dict[str, Callable[[dict[str, str]], Work]] = {
    "retry": _retry, "skip": _skip(True), "restore": _skip(False), "retry-all": _retry_all,
    "pause": _pause, "resume": _resume}


def parse(action: str, body: bytes | None) -> Work:
    """The work of button `action` with its form `body`; 404 for an unknown action, 400 for bad fields."""
    if action not in ACTIONS:
        raise AdminError(404, "UnknownAction", f"no console action {action!r}; actions: {', '.join(ACTIONS)}")
    return ACTIONS[action](form_fields(body))
