"""NCRONTAB schedules of timer triggers (`{second} {minute} {hour} {day} {month} {day-of-week}`), e.g.
`0 */30 * * * *` every 30 minutes. Fields take `*`, numbers, ranges `a-b`, steps `*/n` or `a-b/n`, and
lists `a,b`; day-of-week 0-6 with 0 = Sunday. Day and day-of-week must both match (as NCrontab does)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

_BOUNDS = (("second", 0, 59), ("minute", 0, 59), ("hour", 0, 23), ("day", 1, 31), ("month", 1, 12),
           ("day-of-week", 0, 6))


class ScheduleError(ValueError):
    """A schedule that is not a six-field NCRONTAB expression."""


def _field(text: str, name: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        body, _, step_text = part.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if body == "*":
                start, stop = low, high
            elif "-" in body:
                a, b = body.split("-", 1)
                start, stop = int(a), int(b)
            else:
                start = stop = int(body)
                if step_text:
                    stop = high
        except ValueError:
            raise ScheduleError(f"{name} field '{text}' is not a number, range, step or list") from None
        if step < 1 or not low <= start <= stop <= high:
            raise ScheduleError(f"{name} field '{text}' is outside {low}-{high}")
        values.update(range(start, stop + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Schedule:
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]

    @classmethod
    def parse(cls, text: str) -> Schedule:
        parts = text.split()
        if len(parts) != 6:
            raise ScheduleError(f"'{text}' needs six fields: second minute hour day month day-of-week")
        return cls(*(_field(p, name, lo, hi) for p, (name, lo, hi) in zip(parts, _BOUNDS, strict=True)))

    def matches(self, when: dt.datetime) -> bool:
        return (when.second in self.seconds and when.minute in self.minutes and when.hour in self.hours
                and when.day in self.days and when.month in self.months
                and (when.isoweekday() % 7) in self.weekdays)

    def next_after(self, when: dt.datetime) -> dt.datetime:
        """The first matching second strictly after `when` (same time zone); ScheduleError if none in 5 years."""
        t = when.replace(microsecond=0) + dt.timedelta(seconds=1)
        limit = when + dt.timedelta(days=366 * 5)
        while t <= limit:
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0, second=0) + dt.timedelta(days=32)).replace(day=1)
            elif t.day not in self.days or (t.isoweekday() % 7) not in self.weekdays:
                t = t.replace(hour=0, minute=0, second=0) + dt.timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0, second=0) + dt.timedelta(hours=1)
            elif t.minute not in self.minutes:
                t = t.replace(second=0) + dt.timedelta(minutes=1)
            elif t.second not in self.seconds:
                t += dt.timedelta(seconds=1)
            else:
                return t
        raise ScheduleError("the schedule never fires")
