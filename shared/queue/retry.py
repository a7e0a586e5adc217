"""When a transiently failed record is tried again: exponential back-off with jitter, bounded attempts."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from shared.settings import QueueSettings


@dataclass(frozen=True)
class RetrySchedule:
    """`delay(n)` after the n-th failed attempt: base·2^(n-1), capped at `max_delay`, half of it jittered
    (so a throttling storm's retries spread out instead of arriving together). `max_attempts` bounds the
    attempts of one notice; the modified-records sync still catches a record given up on."""

    max_attempts: int = 6
    base_delay: float = 30.0
    max_delay: float = 1800.0
    random: Callable[[], float] = field(default=random.random, repr=False)

    @classmethod
    def from_settings(cls, settings: QueueSettings) -> RetrySchedule:
        return cls(settings.max_attempts, settings.retry_base_s, settings.retry_max_s)

    def delay(self, attempt: int) -> dt.timedelta:
        step = min(self.max_delay, self.base_delay * 2 ** max(0, attempt - 1))
        return dt.timedelta(seconds=step / 2 + self.random() * step / 2)
