"""The queue message between the webhooks and the processor: "look at this record of this mapping".

A message is a hint, never data (level-triggered): the processor reads the source record when it runs.
`session_id` serialises work on one record (Service Bus sessions: one message of a session at a time, FIFO);
`message_id` lets Service Bus drop a duplicate notice within its duplicate-detection window.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from shared.mapping import Direction

CHANGES = ("created", "updated", "deleted")
MAX_ID = 128  # Service Bus limit for SessionId and MessageId
VERSION = 1


class PoisonMessage(ValueError):
    """A message that can never be processed (unreadable, unknown mapping, too many attempts). The processor
    raises it; Service Bus dead-letters the message after its maximum delivery count, the reason in the log."""


def _bounded(text: str) -> str:
    """Ids longer than Service Bus allows keep a readable prefix and a hash of the whole."""
    if len(text) <= MAX_ID:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:32]
    return f"{text[:MAX_ID - 33]}~{digest}"


@dataclass(frozen=True)
class SyncMessage:
    """One record to bring in step: `mapping`, the one-way `direction` the change came from, the source
    record's id, the change seen (created / updated / deleted), and the attempt (1 for a fresh notice).
    `held` counts the times the notice was put back because its mapping was paused (shared.queue.process):
    it never uses up an attempt, and gives each copy put back its own message id.

    `marker` identifies the source's version of the change (BC `lastModifiedDateTime`, Dataverse `modifiedon`
    or the operation's time): two notices of the same version are duplicates."""

    mapping: str
    direction: Direction
    source_id: str
    change: str = "updated"
    attempt: int = 1
    marker: str | None = None
    seen_at: dt.datetime | None = None
    held: int = 0

    def __post_init__(self) -> None:
        if self.direction is Direction.BIDIRECTIONAL:
            raise ValueError("a message carries the one-way direction of its change (to_crm or to_erp)")
        if self.change not in CHANGES:
            raise ValueError(f"change must be one of {', '.join(CHANGES)}, not {self.change!r}")
        if not self.mapping or not self.source_id:
            raise ValueError("a message needs a mapping and a source id")
        if self.attempt < 1:
            raise ValueError("attempt starts at 1")
        if self.held < 0:
            raise ValueError("held cannot be negative")

    @property
    def session_id(self) -> str:
        """Mapping + source side + record: one record is never synced twice at once."""
        return _bounded(f"{self.mapping}/{self.direction.source.value}/{self.source_id.lower()}")

    @property
    def message_id(self) -> str:
        """Same notice (mapping, record, change, version) → same id, so Service Bus drops the repeat; a retry
        gets its own id (`#<attempt>`), or duplicate detection would swallow it."""
        key = "|".join((self.mapping, self.direction.value, self.source_id.lower(), self.change,
                        self.marker or ""))
        base = hashlib.sha256(key.encode()).hexdigest()[:40]
        base = base if self.attempt == 1 else f"{base}#{self.attempt}"
        return base if not self.held else f"{base}~held{self.held}"

    def next_attempt(self) -> SyncMessage:
        return dataclasses.replace(self, attempt=self.attempt + 1)

    def held_again(self) -> SyncMessage:
        """The copy put back while the mapping is paused: same attempt, same seen_at, a new message id."""
        return dataclasses.replace(self, held=self.held + 1)

    def to_json(self) -> str:
        body: dict[str, Any] = {"v": VERSION, "mapping": self.mapping, "direction": self.direction.value,
                                "source_id": self.source_id, "change": self.change, "attempt": self.attempt,
                                "marker": self.marker,
                                "seen_at": self.seen_at.isoformat() if self.seen_at else None}
        if self.held:
            body["held"] = self.held
        return json.dumps(body, separators=(",", ":"))

    @classmethod
    def from_json(cls, body: bytes | str) -> SyncMessage:
        """Parse a message body; raises `PoisonMessage` naming what is wrong."""
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise PoisonMessage(f"the message body is not JSON ({type(exc).__name__})") from None
        if not isinstance(data, dict):
            raise PoisonMessage("the message body is not a JSON object")
        if data.get("v") != VERSION:
            raise PoisonMessage(f"unknown message version {data.get('v')!r} (expected {VERSION})")
        try:
            seen = data.get("seen_at")
            attempt, held = data.get("attempt", 1), data.get("held", 0)
            for name, number in (("attempt", attempt), ("held", held)):
                if not isinstance(number, int) or isinstance(number, bool):
                    raise ValueError(f"{name} must be an integer")
            for key in ("mapping", "source_id"):
                if not isinstance(data.get(key), str):
                    raise ValueError(f"{key} must be a string")
            marker = data.get("marker")
            return cls(mapping=data["mapping"], direction=Direction.parse(str(data.get("direction"))),
                       source_id=data["source_id"], change=str(data.get("change", "updated")), attempt=attempt,
                       marker=marker if isinstance(marker, str) else None,
                       seen_at=dt.datetime.fromisoformat(seen) if isinstance(seen, str) else None, held=held)
        except (ValueError, TypeError) as exc:
            raise PoisonMessage(f"invalid message: {exc}") from None
