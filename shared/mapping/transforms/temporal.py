"""Date and time transforms. Values travel as ISO 8601 text (`2024-05-31`, `2024-05-31T10:15:00Z`), as both
Business Central and Dataverse send them; datetimes without an offset are taken as UTC."""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import field_validator

from shared.mapping.errors import TransformError
from shared.mapping.transforms.base import InverseKind, TransformBase, TransformContext, register

UTC = dt.UTC
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)


def parse_date(value: Any, transform: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value[:10])
        except ValueError:
            pass
    raise TransformError(f"transform '{transform}' expects an ISO date, got {value!r}")


def parse_datetime(value: Any, transform: str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError as exc:
            raise TransformError(f"transform '{transform}' expects an ISO datetime, got {value!r}") from exc
    else:
        raise TransformError(f"transform '{transform}' expects an ISO datetime, got {value!r}")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def iso_utc(moment: dt.datetime) -> str:
    """Canonical UTC text as the APIs write it: seconds precision unless there are microseconds."""
    moment = moment.astimezone(UTC)
    timespec = "microseconds" if moment.microsecond else "seconds"
    return moment.replace(tzinfo=None).isoformat(timespec=timespec) + "Z"


def strftime(moment: dt.date, fmt: str) -> str:
    """strftime with `%Y` always four digits (glibc prints year 999 as "999", which strptime rejects)."""
    if "%%" not in fmt:
        fmt = fmt.replace("%Y", f"{moment.year:04d}")
    return moment.strftime(fmt)


def _check_format(fmt: str) -> str:
    if "%" not in fmt:
        raise ValueError(f"format {fmt!r} has no strftime directive")
    return fmt


@register
class DateFormat(TransformBase):
    """ISO date → text in `format` (strftime); the inverse parses the text back to an ISO date."""

    type: Literal["date_format"] = "date_format"
    format: str
    kind: ClassVar[InverseKind] = "exact"

    _check = field_validator("format")(_check_format)

    def forward(self, value: Any, ctx: TransformContext) -> Any:
        return strftime(parse_date(value, self.type), self.format)

    def backward(self, value: Any, ctx: TransformContext) -> Any:
        try:
            return dt.datetime.strptime(str(value), self.format).date().isoformat()
        except ValueError as exc:
            raise TransformError(f"{value!r} does not match date format {self.format!r}") from exc


@register
class DatetimeFormat(TransformBase):
    """ISO datetime → text in `format`, shown in `timezone`; the inverse reads the text in that zone and
    returns UTC ISO text (exact when the format keeps seconds)."""

    type: Literal["datetime_format"] = "datetime_format"
    format: str
    timezone: str = "UTC"
    kind: ClassVar[InverseKind] = "exact"

    _check = field_validator("format")(_check_format)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v

    def forward(self, value: Any, ctx: TransformContext) -> Any:
        return strftime(parse_datetime(value, self.type).astimezone(ZoneInfo(self.timezone)), self.format)

    def backward(self, value: Any, ctx: TransformContext) -> Any:
        try:
            parsed = dt.datetime.strptime(str(value), self.format)
        except ValueError as exc:
            raise TransformError(f"{value!r} does not match datetime format {self.format!r}") from exc
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=ZoneInfo(self.timezone))
        return iso_utc(parsed)


_PARTS = ("year", "month", "day", "quarter", "weekday", "day_of_year", "week", "hour", "minute", "date")


@register
class ExtractFromDate(TransformBase):
    """One part of a date or datetime: year, month, day, quarter, ISO weekday (1 = Monday), day_of_year,
    ISO week, hour, minute (in UTC) or the date alone."""

    type: Literal["extract_from_date"] = "extract_from_date"
    part: Literal["year", "month", "day", "quarter", "weekday", "day_of_year", "week", "hour", "minute", "date"]

    def forward(self, value: Any, ctx: TransformContext) -> Any:
        if self.part in ("hour", "minute"):
            moment = parse_datetime(value, self.type).astimezone(UTC)
            return moment.hour if self.part == "hour" else moment.minute
        day = parse_date(value, self.type)
        return {
            "year": day.year,
            "month": day.month,
            "day": day.day,
            "quarter": (day.month - 1) // 3 + 1,
            "weekday": day.isoweekday(),
            "day_of_year": day.timetuple().tm_yday,
            "week": day.isocalendar().week,
            "date": day.isoformat(),
        }[self.part]


@register
class UnixTimestamp(TransformBase):
    """ISO datetime → seconds (or milliseconds) since 1970-01-01 UTC; the inverse gives UTC ISO text."""

    type: Literal["unix_timestamp"] = "unix_timestamp"
    unit: Literal["s", "ms"] = "s"
    kind: ClassVar[InverseKind] = "exact"

    def forward(self, value: Any, ctx: TransformContext) -> Any:
        # Integer arithmetic on timedeltas: float timestamps lose milliseconds far from 1970.
        delta = parse_datetime(value, self.type) - EPOCH
        return delta // dt.timedelta(milliseconds=1 if self.unit == "ms" else 1000)

    def backward(self, value: Any, ctx: TransformContext) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise TransformError(f"unix_timestamp expects a number, got {value!r}")
        try:
            number = float(value)
        except ValueError as exc:
            raise TransformError(f"unix_timestamp expects a number, got {value!r}") from exc
        try:
            step = dt.timedelta(milliseconds=1 if self.unit == "ms" else 1000)
            return iso_utc(EPOCH + step * number)
        except (OverflowError, OSError, ValueError) as exc:
            raise TransformError(f"timestamp {value!r} is out of range") from exc
