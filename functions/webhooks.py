"""Webhook triggers: one HTTP function per (system, entity) the loaded pack syncs from, e.g.
`POST /api/webhooks/dataverse/accounts` (function `webhook_dataverse_accounts`) and
`POST /api/webhooks/business_central/customers` (`webhook_business_central_customers`) and
`POST /api/webhooks/finance_operations/CustomersV3` (`webhook_finance_operations_CustomersV3`, F&O data events).

Each one hands the request to `shared.notices` (authenticate, bound, parse, drop echoes, enqueue) and answers
what it says: 202 queued, 200 + token for BC's handshake, 401 unauthenticated, 413 over the size or notice
limit, 415 not JSON, 400 otherwise malformed (DUALSYNC_WEBHOOKS__MAX_* set the limits).
The host-level auth is anonymous on purpose: the caller proves itself with the shared secret the webhook was
registered with (BC `clientState`, the Dataverse service endpoint's key, the F&O endpoint's key), checked in
constant time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import azure.functions as func

from shared.app_runtime import current
from shared.mapping import Pack, System
from shared.notices import (
    Answer,
    Intake,
    Request,
    WebhookSource,
    answer_handshake,
    receive_business_central,
    receive_dataverse,
    receive_finance_operations,
    webhook_sources,
)
from shared.telemetry.tracing import webhook_span

Receiver = Callable[[Intake, str, Request], Awaitable[Answer]]
RECEIVERS: dict[System, Receiver] = {System.BUSINESS_CENTRAL: receive_business_central,
                                     System.DATAVERSE: receive_dataverse,
                                     System.FINANCE_OPERATIONS: receive_finance_operations}


def to_request(req: func.HttpRequest) -> Request:
    return Request(method=req.method, params=dict(req.params),
                   headers={k.lower(): v for k, v in req.headers.items()}, body=req.get_body())


def to_response(answer: Answer) -> func.HttpResponse:
    return func.HttpResponse(answer.body, status_code=answer.status, mimetype=answer.mimetype)


def webhooks_blueprint(pack: Pack) -> func.Blueprint:
    """A blueprint with one webhook function per `shared.notices.webhook_sources(pack)`."""
    bp = func.Blueprint()
    for source in webhook_sources(pack):
        handler = make_handler(source)
        bp.function_name(source.function_name)(
            bp.route(route=source.route, methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)(handler))
    return bp


def make_handler(source: WebhookSource) -> Callable[[func.HttpRequest], Awaitable[func.HttpResponse]]:
    """The function body for one webhook source (callable directly with a `func.HttpRequest`)."""
    receive: Receiver = RECEIVERS[source.system]

    async def webhook(req: func.HttpRequest) -> func.HttpResponse:
        request = to_request(req)
        if source.system is System.BUSINESS_CENTRAL and (handshake := answer_handshake(source.entity, request)):
            return to_response(handshake)  # before the runtime is touched: BC waits 5 s at most
        with webhook_span(source.system.value, source.entity) as span:  # the root of the change's trace
            answer = await receive(await current().intake(), source.entity, request)
            span.set_attribute("http.response.status_code", answer.status)
        return to_response(answer)

    webhook.__name__ = webhook.__qualname__ = source.function_name
    return webhook
