"""Text transforms: case, trimming, substrings, replacement and regular expressions."""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import field_validator

from shared.mapping.errors import TransformError
from shared.mapping.transforms.base import InverseKind, TransformBase, TransformContext, register, text_of


def _compile(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from exc
    return pattern


@register
class Uppercase(TransformBase):
    type: Literal["uppercase"] = "uppercase"
    kind: ClassVar[InverseKind] = "normalising"

    def forward(self, value: Any, ctx: TransformContext) -> Any:
        return text_of(value, self.type).upper()


@register
class Lowercase(TransformBase):
    type: Literal["lowercase"] = "lowercase"
    kind: ClassVar[InverseKind] = "normalising"

    def forward(self, value: Any, ctx: TransformContext) -> Any:
        return text_of(value, self.type).lower()


@register
class TitleCase(TransformBase):
    """Capitalise each space-separated word, lower-casing the rest (spacing is kept)."""

    type: Literal["title_case"] = "title_case"
    kind: ClassVar[InverseKind] = "normalising"

    def forward(self, value: Any, ctx: TransformContext) -> Any:
        # title() on the first letter, not upper(): "ß" must become "Ss" (idempotent), not "SS".
        return " ".join(w[:1].title() + w[1:].lower() for w in text_of(value, self.type).split(" "))


@register
class Trim(TransformBase):
    """Strip leading and trailing whitespace (or `chars`)."""

    type: Literal["trim"] = "trim"
    chars: str | None = None
    kind: ClassVar[InverseKind] = "normalising"

    def forward(self, value: Any, ctx: TransformContext) -> Any:
        return text_of(value, self.type).strip(self.chars)


@register
class Substring(TransformBase):
    """`length` characters from `start` (0-based; a negative start counts from the end)."""

    type: Literal["substring"] = "substring"
    start: int = 0
    length: int | None = None

    @field_validator("length")
    @classmethod
    def _non_negative(cls, v: int | None) -> int | None:
        if v is not None and v < 0:
            raise ValueError("length must be >= 0")
        return v

    def forward(self, value: Any, ctx: TransformContext) -> Any:
        text = text_of(value, self.type)
        start = self.start if self.start >= 0 else max(len(text) + self.start, 0)
        return text[start:] if self.length is None else text[start : start + self.length]


@register
class Replace(TransformBase):
    """Replace every `old` by `new`. The inverse swaps them, exact as long as `new` is absent from the
    original text (the case for code translations such as `-` → `_`)."""

    type: Literal["replace"] = "replace"
    old: str
    new: str = ""

    @field_validator("old")
    @classmethod
    def _not_empty(cls, v: str) -> str:
        if not v:
            raise ValueError("'old' must not be empty")
        return v

    def inverse_kind(self) -> InverseKind:
        return "exact" if self.new else "none"  # a deletion cannot be undone

    def forward(self, value: Any, ctx: TransformContext) -> Any:
        return text_of(value, self.type).replace(self.old, self.new)

    def backward(self, value: Any, ctx: TransformContext) -> Any:
        return text_of(value, self.type).replace(self.new, self.old)


@register
class RegexReplace(TransformBase):
    """`re.sub(pattern, replacement, value)`; `replacement` may use `\\1` group references."""

    type: Literal["regex_replace"] = "regex_replace"
    pattern: str
    replacement: str = ""
    ignore_case: bool = False

    _check = field_validator("pattern")(_compile)

    def forward(self, value: Any, ctx: TransformContext) -> Any:
        flags = re.IGNORECASE if self.ignore_case else 0
        try:
            return re.sub(self.pattern, self.replacement, text_of(value, self.type), flags=flags)
        except (re.error, IndexError) as exc:  # e.g. a bad group reference in `replacement`
            raise TransformError(f"regex_replace failed: {exc}") from exc


@register
class RegexMatch(TransformBase):
    """Require the value to match `pattern` (searched, use ^…$ to anchor). Without `group` the value
    passes unchanged (a validation, so its inverse is the identity); with `group` the group is extracted.
    A non-match is a per-record error, or an empty value when `on_no_match: blank`."""

    type: Literal["regex_match"] = "regex_match"
    pattern: str
    group: int | str | None = None
    ignore_case: bool = False
    on_no_match: Literal["error", "blank"] = "error"

    _check = field_validator("pattern")(_compile)

    def inverse_kind(self) -> InverseKind:
        return "normalising" if self.group is None else "none"

    def forward(self, value: Any, ctx: TransformContext) -> Any:
        text = text_of(value, self.type)
        match = re.search(self.pattern, text, re.IGNORECASE if self.ignore_case else 0)
        if match is None:
            if self.on_no_match == "blank":
                return None
            raise TransformError(f"{text!r} does not match /{self.pattern}/")
        if self.group is None:
            return text
        try:
            return match.group(self.group)
        except (IndexError, re.error) as exc:
            raise TransformError(f"regex_match has no group {self.group!r}") from exc


@register
class RemoveNonAlphanumeric(TransformBase):
    """Drop every character that is not a letter or digit (Unicode-aware); `keep` lists extra characters."""

    type: Literal["remove_non_alphanumeric"] = "remove_non_alphanumeric"
    keep: str = ""
    kind: ClassVar[InverseKind] = "normalising"

    def forward(self, value: Any, ctx: TransformContext) -> Any:
        return "".join(c for c in text_of(value, self.type) if c.isalnum() or c in self.keep)
