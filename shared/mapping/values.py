"""Value maps: translate codes and option values between the systems (BC's option mappings, P2C's value
maps). Keys are the field's *forward* source values (ERP values for a bidirectional field)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from shared.mapping.errors import TransformError

Unmapped = Literal["error", "blank", "keep", "fallback"]

# `_xHHHH_`: a character XmlConvert encodes in a name ("_x0020_" is " ", "_x002D_" is "-").
_XML_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")


def xml_decoded(text: str) -> str:
    """`text` with every `_xHHHH_` replaced by its character."""
    return _XML_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)


def value_key(value: Any) -> tuple[str, Any]:
    """A dict key that keeps True apart from 1 and "1" apart from 1 (Python alone would merge the first)."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("num", float(value))
    if value is None:
        return ("null", None)
    return ("str", str(value))


class ValueMap(BaseModel):
    """`values` maps forward; `reverse` maps back (derived from `values` when omitted, which requires
    `values` to be one-to-one). `unmapped` says what an unknown value becomes: a per-record `error`,
    `blank` (as BC does for payment terms without a matching option), `keep` the value, or `fallback`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    values: dict[Any, Any]
    reverse: dict[Any, Any] | None = None
    unmapped: Unmapped = "error"
    fallback: Any = None

    @model_validator(mode="after")
    def _fallback_given(self) -> ValueMap:
        if self.unmapped == "fallback" and self.fallback is None:
            raise ValueError("unmapped: fallback needs a 'fallback' value")
        if not self.values:
            raise ValueError("'values' must not be empty")
        return self

    def duplicate_targets(self) -> list[Any]:
        """Target values reached from more than one source value (these block deriving `reverse`)."""
        seen: dict[tuple[str, Any], Any] = {}
        dupes = []
        for target in self.values.values():
            key = value_key(target)
            if key in seen and target not in dupes:
                dupes.append(target)
            seen[key] = target
        return dupes

    def invertible(self) -> bool:
        return self.reverse is not None or not self.duplicate_targets()

    def forward(self, value: Any) -> Any:
        return self._translate(self.values, value)

    def backward(self, value: Any) -> Any:
        table = self.reverse if self.reverse is not None else {v: k for k, v in self.values.items()}
        return self._translate(table, value)

    def _translate(self, table: dict[Any, Any], value: Any) -> Any:
        lookup = {value_key(k): v for k, v in table.items()}
        key = value_key(value)
        if key in lookup:
            return lookup[key]
        # Business Central sends enum values as their `$metadata` member names, XmlConvert-encoded (a blank
        # option is "_x0020_", "Non-Inventory" is "Non_x002D_Inventory"); older documentation examples and
        # hand-written packs key them by caption (" "). A text value no key matches exactly is therefore
        # compared once more with `_xHHHH_` decoded on both sides, so a pack written either way maps what a real
        # tenant sends. What a map produces is sent as written: a pack that writes BC enums must hold the
        # encoded names (templates/bc-sales.yaml does).
        if isinstance(value, str):
            wanted = xml_decoded(value)
            for k, v in table.items():
                if isinstance(k, str) and xml_decoded(k) == wanted:
                    return v
        if self.unmapped == "blank":
            return None
        if self.unmapped == "keep":
            return value
        if self.unmapped == "fallback":
            return self.fallback
        known = ", ".join(repr(k) for k in table)
        raise TransformError(f"value {value!r} is not in the value map (known: {known})")
