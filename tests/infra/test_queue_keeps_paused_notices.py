"""A paused mapping's notices wait on the queue (shared.admin.pauses): the queue must keep a message at least
14 days and dead-letter, never drop, what expires; each notice put back is a new message whose message id
duplicate detection has not seen."""

from __future__ import annotations

import datetime as dt
import re

from shared.mapping import Direction
from shared.queue import SyncMessage
from tests.infra.bicep import MAIN, body, module_template, resources_of, template

_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


def duration(text: str) -> dt.timedelta:
    """An ISO 8601 duration of days, hours, minutes and seconds (what the Service Bus properties take)."""
    match = _DURATION.match(text)
    assert match, f"not a duration this test reads: {text!r}"
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return dt.timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def test_the_queue_keeps_messages_14_days_and_dead_letters_expired_ones() -> None:
    params = template(MAIN)["modules"]["serviceBus"]["config"]["params"]
    assert duration(params["messageTimeToLive"]) >= dt.timedelta(days=14)
    (queue,) = resources_of(module_template("serviceBus"), "Microsoft.ServiceBus/namespaces/queues").values()
    props = body(queue)["properties"]
    assert props["defaultMessageTimeToLive"] == "messageTimeToLive"  # the module's parameter, set above
    assert props["deadLetteringOnMessageExpiration"] is True
    # Every copy put back has an id duplicate detection has not seen, however long its window.
    assert duration(params["duplicateDetectionWindow"]) >= dt.timedelta(minutes=1)
    notice = SyncMessage("customers", Direction.TO_CRM, "C-1", marker="v1")
    copies = [notice]
    for _ in range(5):
        copies.append(copies[-1].held_again())
    retried = copies[-1].next_attempt()
    assert len({m.message_id for m in [*copies, retried, retried.held_again()]}) == 8
    assert {m.session_id for m in copies} == {notice.session_id}
