"""From a webhook request to queue messages, free of Azure Functions: authenticate, bound, parse, drop echoes of
our own writes, expand BC `collection` notices, enqueue one message per (mapping, record), answer 202.

Cheap refusals come first. Dataverse and F&O carry their secret outside the body, so it is checked before the
body is looked at; BC's clientState is inside each notice, so a BC body is bounded (size, media type, JSON
depth, number of notices) before it is parsed and trusted. Anything malformed is a 4xx with a short reason and
queues nothing; the Functions host has already buffered the body (its own limit is far larger), so "before
reading" means before decoding or parsing it.

The trigger hands over the plain parts of the request (`Request`) and turns the `Answer` into its response.
Nothing here logs a body, a header value or a secret: only counts, entity names and why a request failed,
and refusals are sampled (`refusals.RefusalLog`) so a flood of forged requests cannot fill the logs.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from shared.connectors import Connector, ConnectorError, PermanentError
from shared.mapping import Pack, Side, System
from shared.notices import business_central as bc
from shared.notices import dataverse as dv
from shared.notices import finance_operations as fo
from shared.notices.limits import check_media_type, check_size
from shared.notices.model import Change, ChangeNotice, NoticeError, Unauthenticated
from shared.notices.refusals import RefusalLog, printable
from shared.notices.routing import logical_name, messages_for, taking_mappings
from shared.queue import QueueSender, SyncMessage
from shared.settings import WebhookSettings
from shared.sync.context import utc_now
from shared.telemetry.tracing import enqueue_span

log = logging.getLogger(__name__)
REFUSALS = RefusalLog(log)  # one per worker process, as the webhook functions are


@dataclass(frozen=True)
class Request:
    """The parts of an HTTP request a webhook reads; `headers` with lower-case names."""

    method: str
    params: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class Answer:
    status: int
    body: str = ""
    mimetype: str = "text/plain"


@dataclass
class Intake:
    """What the webhooks need: the pack, the secrets, our integration users per side (their changes are echoes),
    the BC company synced (notices of others are refused), the queue, and — only for BC `collection` notices —
    a way to get a connector (`connector(side)`, awaited)."""

    pack: Pack
    webhooks: WebhookSettings
    sender: QueueSender
    integration_users: Mapping[Side, frozenset[str]] = field(default_factory=dict)
    company_id: str | None = None
    company_ids: tuple[str, ...] = ()  # several BC companies synced (their records' ids carry the company)
    connector: Callable[[Side], Awaitable[Connector]] | None = None
    # Finance and Operations: key properties per entity set (the record id is built from them) and the legal
    # entities synced (None: all).
    erp_keys: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    companies: frozenset[str] | None = None
    clock: Callable[[], dt.datetime] = utc_now

    def is_echo(self, notice: ChangeNotice, side: Side) -> bool:
        users = {u.lower() for u in self.integration_users.get(side, frozenset())}
        return any(actor.lower() in users for actor in notice.actors)


def answer_handshake(entity: str, request: Request) -> Answer | None:
    """BC's subscription handshake (`?validationToken=`): the token back as plain text, needing nothing else
    (call it before building anything: BC allows 5 s). None when the request is not a handshake."""
    try:
        token = bc.handshake_token(dict(request.params))
    except NoticeError as exc:
        return _refused(400, System.BUSINESS_CENTRAL, entity, str(exc))
    return None if token is None else Answer(200, token)


async def receive_business_central(intake: Intake, entity: str, request: Request) -> Answer:
    """A BC subscription's notification URL: the validationToken handshake, or a batch of notices."""
    if (handshake := answer_handshake(entity, request)) is not None:
        return handshake
    if request.method.upper() != "POST":
        return Answer(405, "POST notifications here")
    secret = intake.webhooks.bc_client_state
    if secret is None or not secret.get_secret_value():
        return _unconfigured(System.BUSINESS_CENTRAL, entity, "BC_CLIENT_STATE")
    hooks = intake.webhooks
    try:
        _bound(intake, request)
        notices = bc.parse_notifications(request.body, entity=entity, client_state=secret.get_secret_value(),
                                         company_id=intake.company_id, company_ids=intake.company_ids,
                                         seen_at=intake.clock(), max_depth=hooks.max_json_depth,
                                         max_notices=hooks.max_notices)
        notices = await _expand(intake, entity, notices)
    except Unauthenticated:
        return _refused(401, System.BUSINESS_CENTRAL, entity, "clientState missing or wrong")
    except NoticeError as exc:
        return _refused(exc.status, System.BUSINESS_CENTRAL, entity, str(exc), intake)
    except ConnectorError as exc:  # paging a collection failed: BC retries 5xx answers
        log.warning("business_central/%s: paging a collection notice failed: %s", entity, exc.message)
        return Answer(503, "could not read the changed records; try again")
    return await _enqueue(intake, Side.ERP, entity, notices)


async def receive_dataverse(intake: Intake, entity: str, request: Request) -> Answer:
    """A Dataverse service endpoint (webhook contract): one RemoteExecutionContext per call."""
    if request.method.upper() != "POST":
        return Answer(405, "POST notifications here")
    key = intake.webhooks.dataverse_key
    if key is None or not key.get_secret_value():
        return _unconfigured(System.DATAVERSE, entity, "DATAVERSE_KEY")
    if not dv.authenticated(request.headers, request.params, intake.webhooks, key.get_secret_value()):
        return _refused(401, System.DATAVERSE, entity, "the service endpoint's secret is missing or wrong")
    try:
        _bound(intake, request)
        notice = dv.parse_context(request.body, entity=entity, logical_name=logical_name(intake.pack, entity, Side.CRM),
                                  exceeded=dv.size_exceeded(request.headers), seen_at=intake.clock(),
                                  max_depth=intake.webhooks.max_json_depth)
    except NoticeError as exc:
        return _refused(exc.status, System.DATAVERSE, entity, str(exc), intake)
    return await _enqueue(intake, Side.CRM, entity, [notice])


async def receive_finance_operations(intake: Intake, entity: str, request: Request) -> Answer:
    """A Finance and Operations data-event endpoint: one event (Create / Update / Delete) per call."""
    if request.method.upper() != "POST":
        return Answer(405, "POST data events here")
    key = intake.webhooks.fo_key
    if key is None or not key.get_secret_value():
        return _unconfigured(System.FINANCE_OPERATIONS, entity, "FO_KEY")
    if not fo.authenticated(request.headers, request.params, intake.webhooks, key.get_secret_value()):
        return _refused(401, System.FINANCE_OPERATIONS, entity, "the endpoint's secret is missing or wrong")
    keys = intake.erp_keys.get(entity)
    if keys is None:
        return _refused(404, System.FINANCE_OPERATIONS, entity, "no mapping of this pack reads this entity")
    try:
        _bound(intake, request)
        notice = fo.parse_event(request.body, entity=entity, public_name=logical_name(intake.pack, entity, Side.ERP),
                                key_fields=keys, companies=intake.companies, seen_at=intake.clock(),
                                max_depth=intake.webhooks.max_json_depth)
    except NoticeError as exc:
        return _refused(exc.status, System.FINANCE_OPERATIONS, entity, str(exc), intake)
    only = None
    if notice.change is not Change.DELETED and notice.values is not None:
        # The event carries the whole record: a mapping whose filter it fails (P2C's other legal entities, the
        # organisations' map for a person) costs no queue message and no read. A deletion goes to every mapping
        # (a coupling may hold it).
        only = {m.name for m in taking_mappings(intake.pack, Side.ERP, entity, notice.values)}
        if not only:
            log.info("finance_operations/%s: 1 notice outside every mapping's filter, 0 message(s) queued", entity)
            return Answer(202)
    return await _enqueue(intake, Side.ERP, entity, [notice], only=only)


def _bound(intake: Intake, request: Request) -> None:
    """The checks that need no parsing: size (413) and media type (415)."""
    check_size(request.headers, request.body, intake.webhooks.max_body_bytes)
    check_media_type(request.headers)


def _secrets(intake: Intake | None) -> list[str]:
    if intake is None:
        return []
    hooks = intake.webhooks
    return [s.get_secret_value() for s in (hooks.bc_client_state, hooks.dataverse_key, hooks.fo_key) if s]


def _refused(status: int, system: System, entity: str, why: str, intake: Intake | None = None) -> Answer:
    """A 4xx whose reason may quote the request (a name it sent): made printable, secrets masked, and logged
    through the sampler."""
    why = printable(why, _secrets(intake))
    REFUSALS.refused(system.value, entity, status, why)
    return Answer(status, why)


def _unconfigured(system: System, entity: str, setting: str) -> Answer:
    REFUSALS.refused(system.value, entity, 503, f"DUALSYNC_WEBHOOKS__{setting} is not set", level=logging.ERROR)
    return Answer(503, "webhook secret not configured")


async def _expand(intake: Intake, entity: str, notices: Sequence[ChangeNotice]) -> list[ChangeNotice]:
    """Replace each `collection` notice by one `updated` notice per record its filtered resource lists."""
    out: list[ChangeNotice] = []
    for notice in notices:
        if notice.change is not Change.COLLECTION:
            out.append(notice)
            continue
        if intake.connector is None:
            raise NoticeError("a collection notice arrived but no connector is configured to page it")
        connector = await intake.connector(Side.ERP)
        try:
            async for page in connector.list(entity, filter=notice.collection_filter, select=("id",)):
                out.extend(ChangeNotice(notice.system, entity, Change.UPDATED, r.id.lower(), notice.seen_at,
                                        marker=r.modified_on.isoformat() if r.modified_on else notice.marker)
                           for r in page)
        except PermanentError as exc:  # BC refused the filter it sent us: the notice itself is bad
            raise NoticeError(f"the collection's resource could not be listed: {exc.message}") from None
    return out


async def _enqueue(intake: Intake, side: Side, entity: str, notices: Sequence[ChangeNotice], *,
                   only: set[str] | None = None) -> Answer:
    """Queue one message per (candidate mapping, record); `only` limits the mappings."""
    fresh = [n for n in notices if not intake.is_echo(n, side)]
    messages: dict[str, SyncMessage] = {}
    for notice in fresh:
        for message in messages_for(intake.pack, side, notice):
            if only is not None and message.mapping not in only:
                continue
            messages.setdefault(message.message_id, message)  # repeats inside one batch
    try:
        with enqueue_span(len(messages)):  # each message carries this span's context to the processor
            await intake.sender.send(list(messages.values()))
    except Exception as exc:  # the queue is unreachable: both services retry a 503
        log.error("%s/%s: enqueueing %d message(s) failed: %s", side.value, entity, len(messages),
                  type(exc).__name__)
        return Answer(503, "could not queue the changes; try again")
    log.info("%s/%s: %d notice(s), %d echo(es) dropped, %d message(s) queued", side.value, entity, len(notices),
             len(notices) - len(fresh), len(messages))
    return Answer(202)


__all__ = ["Answer", "Intake", "Request", "answer_handshake", "receive_business_central", "receive_dataverse",
           "receive_finance_operations"]
