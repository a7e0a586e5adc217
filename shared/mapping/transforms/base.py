"""The transform protocol and its registry.

A transform is a pydantic model whose `type` literal selects it in YAML. It maps one value in the field's
forward direction (`apply`) and, where one exists, back (`inverse`). `inverse_kind` says how good the way
back is:

- `exact`: `inverse(apply(x)) == x` for every value `apply` accepts in canonical form;
- `normalising`: the transform only normalises (case, whitespace, rounding), so the way back keeps the value
  as it is and `apply(inverse(apply(x))) == apply(x)`;
- `none`: there is no way back; a bidirectional field using it must declare `reverse_transforms`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from shared.mapping.errors import NotInvertibleError, TransformError

InverseKind = Literal["exact", "normalising", "none"]


@dataclass(frozen=True)
class TransformContext:
    """What a transform may see besides its value: the whole source record (for concat, field lookup)."""

    record: Mapping[str, Any] = field(default_factory=dict)


class TransformBase(BaseModel):
    """Base of every transform. Subclasses set `type` as a Literal and implement `forward`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    # Most transforms pass an empty value (None) through untouched; concat/field lookup read other fields.
    handles_none: ClassVar[bool] = False
    kind: ClassVar[InverseKind] = "none"

    def inverse_kind(self) -> InverseKind:
        return self.kind

    def apply(self, value: Any, ctx: TransformContext | None = None) -> Any:
        """Map `value` forward; raises TransformError when the value does not fit."""
        if value is None and not self.handles_none:
            return None
        return self.forward(value, ctx or TransformContext())

    def inverse(self, value: Any, ctx: TransformContext | None = None) -> Any:
        """Map `value` back; raises NotInvertibleError when the transform has no inverse."""
        kind = self.inverse_kind()
        if kind == "none":
            raise NotInvertibleError(f"transform '{self.type}' has no inverse")
        if value is None or kind == "normalising":
            return value
        return self.backward(value, ctx or TransformContext())

    def forward(self, value: Any, ctx: TransformContext) -> Any:
        raise NotImplementedError

    def backward(self, value: Any, ctx: TransformContext) -> Any:
        raise NotInvertibleError(f"transform '{self.type}' has no inverse")


REGISTRY: dict[str, type[TransformBase]] = {}


def register(cls: type[TransformBase]) -> type[TransformBase]:
    """Class decorator adding a transform to the registry under its `type` literal."""
    name = cls.model_fields["type"].default
    if not isinstance(name, str) or name in REGISTRY:
        raise RuntimeError(f"transform {cls.__name__} needs a unique `type` default, got {name!r}")
    REGISTRY[name] = cls
    return cls


def text_of(value: Any, transform: str) -> str:
    """The value as text; numbers and booleans are not silently turned into text."""
    if isinstance(value, str):
        return value
    raise TransformError(f"transform '{transform}' expects text, got {type(value).__name__} {value!r}")
