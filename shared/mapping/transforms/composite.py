"""Transforms that read more than the field's own value: concatenation, splitting, related-record lookup."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import field_validator

from shared.mapping.errors import TransformError
from shared.mapping.transforms.base import TransformBase, TransformContext, register, text_of


@register
class Concat(TransformBase):
    """Join the field's value (unless `include_value: false`) and the source record's `fields` with
    `separator`; blank parts are skipped so "Ann" + None gives "Ann", not "Ann ".
    Example: `{type: concat, fields: [lastname], separator: " "}` on `firstname`."""

    type: Literal["concat"] = "concat"
    fields: list[str]
    separator: str = " "
    include_value: bool = True
    skip_blank: bool = True
    handles_none: ClassVar[bool] = True

    @field_validator("fields")
    @classmethod
    def _some(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("concat needs at least one field")
        return v

    def forward(self, value: Any, ctx: TransformContext) -> Any:
        parts = ([value] if self.include_value else []) + [ctx.record.get(f) for f in self.fields]
        texts = [str(p) for p in parts if not (self.skip_blank and (p is None or str(p).strip() == ""))]
        return self.separator.join(texts) if texts else None


@register
class Split(TransformBase):
    """Split on `separator` (at most `maxsplit` times, from the end when `from_end`) and keep part `index`
    (negative counts from the end); a missing part gives an empty value. E.g. the first name of
    "Ann Marie Smith" is index -2 with `maxsplit: 1, from_end: true`, the surname index -1."""

    type: Literal["split"] = "split"
    separator: str = " "
    index: int = 0
    maxsplit: int = -1
    from_end: bool = False

    @field_validator("separator")
    @classmethod
    def _not_empty(cls, v: str) -> str:
        if not v:
            raise ValueError("separator must not be empty")
        return v

    def forward(self, value: Any, ctx: TransformContext) -> Any:
        text = text_of(value, self.type)
        split = text.rsplit if self.from_end else text.split
        parts = split(self.separator, self.maxsplit)
        try:
            return parts[self.index]
        except IndexError:
            return None


@register
class FieldLookup(TransformBase):
    """A value of a related record: `relation` names the navigation property the source record carries
    expanded (`$expand=primarycontactid($select=emailaddress1)`), `field` the value to take. The field's
    own value is ignored. Use `mapping.expands(side)` to learn which `$expand`s a read needs."""

    type: Literal["field_lookup"] = "field_lookup"
    relation: str
    field: str
    required: bool = False
    handles_none: ClassVar[bool] = True

    def forward(self, value: Any, ctx: TransformContext) -> Any:
        related = ctx.record.get(self.relation)
        if related is None:
            if self.required:
                raise TransformError(f"related record '{self.relation}' is missing (not expanded?)")
            return None
        if not isinstance(related, dict):
            raise TransformError(f"'{self.relation}' is not an expanded record: {related!r}")
        return related.get(self.field)
