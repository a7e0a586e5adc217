"""Number transforms: rounding and decimal formatting (Decimal arithmetic, so 2.675 rounds as written)."""

from __future__ import annotations

import decimal
from decimal import Decimal
from typing import Any, ClassVar, Literal

from pydantic import field_validator

from shared.mapping.errors import TransformError
from shared.mapping.transforms.base import InverseKind, TransformBase, TransformContext, register

_MODES = {
    "half_even": decimal.ROUND_HALF_EVEN,
    "half_up": decimal.ROUND_HALF_UP,
    "half_down": decimal.ROUND_HALF_DOWN,
    "up": decimal.ROUND_UP,
    "down": decimal.ROUND_DOWN,
    "ceiling": decimal.ROUND_CEILING,
    "floor": decimal.ROUND_FLOOR,
}


def to_decimal(value: Any, transform: str) -> Decimal:
    if isinstance(value, bool):
        raise TransformError(f"transform '{transform}' expects a number, got {value!r}")
    try:
        # str() first: Decimal(0.1) would expose the binary float's full expansion.
        number = Decimal(str(value)) if isinstance(value, int | float | str) else Decimal(value)
    except (decimal.InvalidOperation, TypeError, ValueError) as exc:
        raise TransformError(f"transform '{transform}' expects a number, got {value!r}") from exc
    if not number.is_finite():
        raise TransformError(f"transform '{transform}' expects a finite number, got {value!r}")
    return number


def _plain(number: Decimal, decimals: int) -> int | float:
    """JSON-friendly result: an int when no decimals are kept, else a float."""
    return int(number) if decimals <= 0 else float(number)


@register
class Round(TransformBase):
    """Round to `decimals` places with `mode`; the default, half_up, is BC's "Round" rule (to nearest,
    halves away from zero)."""

    type: Literal["round"] = "round"
    decimals: int = 0
    mode: Literal["half_even", "half_up", "half_down", "up", "down", "ceiling", "floor"] = "half_up"
    kind: ClassVar[InverseKind] = "normalising"

    def forward(self, value: Any, ctx: TransformContext) -> Any:
        number = to_decimal(value, self.type)
        quantum = Decimal(1).scaleb(-self.decimals)
        return _plain(number.quantize(quantum, rounding=_MODES[self.mode]), self.decimals)


@register
class DecimalFormat(TransformBase):
    """Number → text with `decimals` places and the given separators (e.g. `1.234,50`); the inverse parses
    such text back to a number (exact for numbers that already have at most `decimals` places)."""

    type: Literal["decimal_format"] = "decimal_format"
    decimals: int = 2
    decimal_separator: str = "."
    thousands_separator: str = ""
    kind: ClassVar[InverseKind] = "exact"

    @field_validator("decimals")
    @classmethod
    def _range(cls, v: int) -> int:
        if not 0 <= v <= 12:
            raise ValueError("decimals must be between 0 and 12")
        return v

    @field_validator("decimal_separator")
    @classmethod
    def _one_char(cls, v: str) -> str:
        if len(v) != 1 or v.isdigit() or v == "-":
            raise ValueError("decimal_separator must be one non-digit character")
        return v

    def forward(self, value: Any, ctx: TransformContext) -> Any:
        number = to_decimal(value, self.type).quantize(Decimal(1).scaleb(-self.decimals), decimal.ROUND_HALF_UP)
        sign = "-" if number < 0 else ""
        whole, _, frac = f"{abs(number):f}".partition(".")
        if self.thousands_separator:
            groups = []
            while len(whole) > 3:
                whole, groups = whole[:-3], [whole[-3:], *groups]
            whole = self.thousands_separator.join([whole, *groups])
        return sign + whole + (self.decimal_separator + frac if self.decimals else "")

    def backward(self, value: Any, ctx: TransformContext) -> Any:
        if not isinstance(value, str):
            raise TransformError(f"decimal_format inverse expects text, got {value!r}")
        text = value.strip()
        if self.thousands_separator:
            text = text.replace(self.thousands_separator, "")
        text = text.replace(self.decimal_separator, ".")
        number = to_decimal(text, self.type)
        return _plain(number, self.decimals)
