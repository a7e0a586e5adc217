"""Logging refused webhook requests so that a flood of forged or malformed requests cannot fill the logs.

The first refusal of a kind (system, entity, status) gets its own line; after that one line per `every`
refusals or, at the first refusal after `interval` has passed, one line with how many were refused since the
previous line and the latest reason. Kinds are bounded (entities come from the webhook routes, statuses from
the code), so the counters are too. The reason is the request's own text (a name it sent): control characters
are escaped so a line stays one line, and any configured secret is masked.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")


def printable(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every configured secret masked and every non-printable or non-ASCII character escaped."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return _UNPRINTABLE.sub(lambda m: m[0].encode("unicode_escape").decode("ascii"), text)


@dataclass
class _Kind:
    since_line: int = 0     # refusals not yet counted in a line
    line_at: float = 0.0    # clock of the last line


class RefusalLog:
    def __init__(self, logger: logging.Logger, *, every: int = 1000, interval_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger, self.every, self.interval_s, self.clock = logger, every, interval_s, clock
        self._kinds: dict[tuple[str, str, int], _Kind] = {}

    def refused(self, system: str, entity: str, status: int, why: str, *, level: int = logging.WARNING) -> None:
        now = self.clock()
        kind = self._kinds.get((system, entity, status))
        if kind is None:
            self._kinds[(system, entity, status)] = _Kind(0, now)
            self.logger.log(level, "%s/%s: webhook refused (%d): %s", system, entity, status, why)
            return
        kind.since_line += 1
        if kind.since_line >= self.every or now - kind.line_at >= self.interval_s:
            self.logger.log(level, "%s/%s: %d more webhook request(s) refused (%d) since the last line; latest: %s",
                            system, entity, kind.since_line, status, why)
            kind.since_line, kind.line_at = 0, now

    def reset(self) -> None:
        self._kinds.clear()
