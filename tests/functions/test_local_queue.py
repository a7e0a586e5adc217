"""The local host's in-process Service Bus queue: sessions, duplicate detection, scheduled messages, delivery
count and dead letters, and the NCRONTAB schedules of its timers."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulators.functions_host import InProcessQueue, QueuedMessage, Schedule, ScheduleError


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def test_one_message_per_session_at_a_time_in_order_sessions_in_parallel() -> None:
    queue = InProcessQueue("q", max_concurrent_sessions=4)
    seen: list[tuple[str, str]] = []
    running: dict[str, int] = {}
    peak = {"all": 0}

    async def handler(m: QueuedMessage) -> None:
        running[m.session_id] = running.get(m.session_id, 0) + 1
        assert running[m.session_id] == 1, "two messages of one session in flight"
        peak["all"] = max(peak["all"], sum(running.values()))
        await asyncio.sleep(0.005)
        seen.append((m.session_id, m.message_id))
        running[m.session_id] -= 1

    for i in range(6):
        for session in ("a", "b", "c"):
            assert queue.put(f"{session}{i}", message_id=f"{session}-{i}", session_id=session)
    queue.start(handler)
    await queue.wait_idle()
    await queue.stop()
    for session in ("a", "b", "c"):
        assert [mid for s, mid in seen if s == session] == [f"{session}-{i}" for i in range(6)]  # FIFO
    assert peak["all"] >= 2  # other sessions ran alongside


async def test_duplicates_are_dropped_within_the_window_only() -> None:
    queue = InProcessQueue("q", duplicate_window=dt.timedelta(milliseconds=80))
    delivered: list[str] = []

    async def handler(m: QueuedMessage) -> None:
        delivered.append(m.message_id)

    queue.start(handler)
    assert queue.put(b"1", message_id="same", session_id="s")
    assert not queue.put(b"1", message_id="same", session_id="s")
    assert not queue.put(b"1", message_id="same", session_id="other", scheduled_at=now())
    assert queue.put(b"2", message_id="different", session_id="s")
    await queue.wait_idle()
    await asyncio.sleep(0.1)
    assert queue.put(b"1", message_id="same", session_id="s")  # the window has passed
    await queue.wait_idle()
    await queue.stop()
    assert delivered == ["same", "different", "same"] and queue.duplicates_dropped == 2


async def test_scheduled_messages_wait_for_their_time() -> None:
    queue = InProcessQueue("q")
    delivered: list[tuple[str, dt.datetime]] = []

    async def handler(m: QueuedMessage) -> None:
        delivered.append((m.message_id, now()))

    queue.start(handler)
    due = now() + dt.timedelta(milliseconds=150)
    queue.put(b"later", message_id="later", session_id="s", scheduled_at=due)
    queue.put(b"now", message_id="now", session_id="s")
    await queue.wait_idle()
    assert [mid for mid, _ in delivered] == ["now"] and len(queue.scheduled) == 1
    await queue.wait_idle(scheduled=True, timeout=5)
    await queue.stop()
    assert [mid for mid, _ in delivered] == ["now", "later"] and delivered[1][1] >= due


async def test_failing_messages_are_redelivered_then_dead_lettered_with_the_reason() -> None:
    queue = InProcessQueue("q", max_delivery_count=3)
    counts: dict[str, list[int]] = {}

    async def handler(m: QueuedMessage) -> None:
        counts.setdefault(m.message_id, []).append(m.delivery_count)
        if m.message_id == "poison" or (m.message_id == "flaky" and m.delivery_count == 1):
            raise ValueError(f"cannot handle {m.message_id}")

    queue.start(handler)
    queue.put(b"x", message_id="poison", session_id="s")
    queue.put(b"y", message_id="after", session_id="s")  # waits behind the poison message (same session)
    queue.put(b"z", message_id="flaky", session_id="t")
    await queue.wait_idle()
    await queue.stop()
    assert counts == {"poison": [1, 2, 3], "after": [1], "flaky": [1, 2]}
    [dead] = queue.dead_letters
    assert (dead.message_id, dead.dead_letter_reason) == ("poison", "MaxDeliveryCountExceeded")
    assert dead.dead_letter_description == "ValueError: cannot handle poison"


async def test_a_dead_letter_receiver_gets_dead_letters_without_sessions_and_completes_them() -> None:
    queue = InProcessQueue("q", max_delivery_count=2)
    received: list[tuple[str, int, str | None, str | None, dict[str, object]]] = []
    leftover = b"dead before the receiver started"

    async def main(m: QueuedMessage) -> None:
        raise ValueError(f"cannot handle {m.message_id}")

    async def dead_letters(m: QueuedMessage) -> None:
        received.append((m.message_id, m.delivery_count, m.dead_letter_reason, m.dead_letter_description,
                         dict(m.application_properties)))
        if m.message_id == "stubborn":
            raise RuntimeError("the dead-letter function fails too")

    queue.start(main)
    queue.put(leftover, message_id="early", session_id="s")
    await queue.wait_idle()
    assert [m.message_id for m in queue.dead_letters] == ["early"]
    queue.start_dead_letters(dead_letters)  # what is already in the DLQ comes first
    queue.put(b"a", message_id="a", session_id="s", application_properties={"attempt": 1})
    queue.put(b"b", message_id="b", session_id="t")  # another session: the DLQ has no sessions
    queue.put(b"c", message_id="stubborn", session_id="s")
    await queue.wait_idle()
    await queue.stop()
    assert received[0][0] == "early" and sorted(r[0] for r in received[1:]) == ["a", "b", "stubborn", "stubborn"]
    early, a = received[0], next(r for r in received if r[0] == "a")
    # Delivered once each after 2 failed deliveries from the main queue, the reason and description as set.
    assert early[1:4] == (3, "MaxDeliveryCountExceeded", "ValueError: cannot handle early")
    assert a[4] == {"attempt": 1, "DeadLetterReason": "MaxDeliveryCountExceeded",
                    "DeadLetterErrorDescription": "ValueError: cannot handle a"}
    # A failing dead letter is redelivered, never dead-lettered again: it stays in the DLQ.
    assert [r[1] for r in received if r[0] == "stubborn"] == [3, 4]
    assert [m.message_id for m in queue.dead_letters] == ["stubborn"]
    assert sorted(m.message_id for m in queue.dead_lettered) == ["a", "b", "early", "stubborn"]
    assert sorted((d.message_id, d.completed) for d in queue.dead_letter_deliveries) == [
        ("a", True), ("b", True), ("early", True), ("stubborn", False), ("stubborn", False)]


async def test_dead_letters_wait_for_a_receiver() -> None:
    queue = InProcessQueue("q", max_delivery_count=1)

    async def main(m: QueuedMessage) -> None:
        raise ValueError("no")

    queue.start(main)
    queue.put(b"x", message_id="x", session_id="s")
    await queue.wait_idle()  # no DLQ receiver: idle with the dead letter kept
    await queue.stop()
    assert [m.message_id for m in queue.dead_letters] == ["x"] and queue.dead_letter_deliveries == []


def test_a_session_queue_needs_session_and_message_ids() -> None:
    queue = InProcessQueue("q")
    with pytest.raises(ValueError, match="session id"):
        queue.put(b"x", message_id="m", session_id="")
    with pytest.raises(ValueError, match="message id"):
        queue.put(b"x", message_id="", session_id="s")


@pytest.mark.parametrize(("text", "after", "expected"), [
    ("0 */30 * * * *", "2026-01-05T10:14:59", "2026-01-05T10:30:00"),
    ("0 0 */6 * * *", "2026-01-05T18:00:00", "2026-01-06T00:00:00"),
    ("0 30 2 * * *", "2026-01-31T03:00:00", "2026-02-01T02:30:00"),
    ("15 5 9 1 1-3 *", "2026-03-02T00:00:00", "2027-01-01T09:05:15"),
    ("0 0 9 * * 1-5", "2026-01-09T10:00:00", "2026-01-12T09:00:00"),  # Friday → Monday
])
def test_ncrontab_next_fire(text: str, after: str, expected: str) -> None:
    tz = dt.UTC
    start = dt.datetime.fromisoformat(after).replace(tzinfo=tz)
    assert Schedule.parse(text).next_after(start) == dt.datetime.fromisoformat(expected).replace(tzinfo=tz)


@pytest.mark.parametrize("text", ["* * * * *", "61 * * * * *", "0 */0 * * * *", "0 0 0 31 2 *", "a b c d e f"])
def test_bad_schedules_are_refused(text: str) -> None:
    with pytest.raises(ScheduleError):
        Schedule.parse(text).next_after(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))


@given(st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2090, 1, 1)),
       st.sampled_from(["0 */30 * * * *", "0 0 */6 * * *", "*/7 * * * * *", "0 0 12 1,15 * *"]))
def test_next_fire_matches_and_nothing_matches_earlier(start: dt.datetime, text: str) -> None:
    schedule = Schedule.parse(text)
    start = start.replace(tzinfo=dt.UTC)
    fire = schedule.next_after(start)
    assert fire > start and schedule.matches(fire)
    if fire - start < dt.timedelta(hours=2):  # check every second in between on short gaps
        t = start.replace(microsecond=0) + dt.timedelta(seconds=1)
        while t < fire:
            assert not schedule.matches(t)
            t += dt.timedelta(seconds=1)
