"""Enum values on BC's wire: what reads return, what writes accept, what `$filter` compares.

BC API v2.0 sends an enum value as its member name in `$metadata`, which is the AL value name with every
character that may not stand in an XML name written as `_xHHHH_` (XmlConvert-style): a blank option is
`"_x0020_"`, "Non-Inventory" is `"Non_x002D_Inventory"`, "In Progress" is `"In_x0020_Progress"` (responses
recorded from tenants; "Filtering with AL Enum objects" in CData's Business Central driver documentation;
"Use OData to return and obtain a service metadata document" for the encoding). The store keeps captions (the
seed, AL-side logic in `refs.py` and `/_admin`, which is not BC's API, all speak captions); this module
translates at the API boundary, and `metadata.py` declares the same names from `member_name`.

- Reads: every enum field of a returned record carries its member name.
- Writes: the member name is accepted. A caption is accepted too (unconfirmed: BC's option error — "'Invalid
  Type' is not an option. The existing options are: Inventory,Service,Non-Inventory", the documented `$batch`
  example — lists captions, as AL's text evaluation of an option does; the tolerant choice). The error keeps
  listing captions, as documented.
- `$filter`: a literal compared with an enum field must be a member name (`blocked eq '_x0020_'`, or the
  qualified `Microsoft.NAV.customerBlocked'_x0020_'`); anything else is refused with odata.net's "The string
  ' ' is not a valid enumeration type constant." (BC parses with odata.net; CData's documentation: filter
  values must be encoded). `gt`/`ge`/`lt`/`le` compare the members' positions (AL compares options by ordinal;
  unconfirmed for the API). String functions over an enum field are refused (odata.net has no such signature;
  wording unconfirmed).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from odata_query import ast

from emulators.business_central.errors import bad_request
from emulators.business_central.schema import NAMESPACE, SERVED, EntitySet, Field
from shared.odata.filter import EnumLiteral


def member_name(caption: str) -> str:
    """An enum caption as its member name: letters, digits and `_` kept (not a leading digit), any other
    character as `_xHHHH_` (XmlConvert-style, as BC writes " " → `_x0020_`, "-" → `_x002D_`); a `_` that
    starts `_x` is encoded too, as XmlConvert does, so that decoding gives the caption back."""
    out = []
    for i, ch in enumerate(caption):
        ok = (ch == "_" and not caption.startswith("_x", i)) or ch.isalpha() or (ch.isdigit() and i > 0)
        out.append(ch if ok and ch.isascii() else f"_x{ord(ch):04X}_")
    return "".join(out)


@dataclass(frozen=True)
class Enum:
    """One enum field's members: captions (stored) and member names (on the wire), in ordinal order."""

    type_name: str  # qualified, e.g. Microsoft.NAV.customerBlocked
    captions: tuple[str, ...]
    names: tuple[str, ...]

    @functools.cached_property
    def _by_name(self) -> dict[str, str]:
        return dict(zip(self.names, self.captions, strict=True))

    @functools.cached_property
    def _by_caption(self) -> dict[str, str]:
        return dict(zip(self.captions, self.names, strict=True))

    def wire(self, stored: Any) -> Any:
        """A stored value as BC sends it (a value that is not a caption, e.g. written raw through `/_admin`,
        passes unchanged)."""
        return self._by_caption.get(stored, stored)

    def accept(self, value: str) -> str | None:
        """The stored caption of a written value (member name, or caption: unconfirmed), or None."""
        if value in self._by_name:
            return self._by_name[value]
        return value if value in self._by_caption else None

    def caption(self, literal: Any) -> str:
        """The caption a `$filter` literal names; only member names are enumeration constants."""
        if isinstance(literal, EnumLiteral) and literal.type_name not in (self.type_name, _alias(self.type_name)):
            raise bad_request(f"A binary operator with incompatible types was detected. Found operand types "
                              f"'{self.type_name}' and '{literal.type_name}'.")
        value = literal.val if isinstance(literal, ast.String) else getattr(literal, "val", literal)
        if not isinstance(value, str) or value not in self._by_name:
            raise bad_request(f"The string '{value}' is not a valid enumeration type constant.")
        return self._by_name[value]


def _alias(qualified: str) -> str:
    return "NAV." + qualified.removeprefix(NAMESPACE + ".")  # the schema's alias (metadata.py)


@functools.cache
def enum_of(spec: Field) -> Enum:
    assert spec.options is not None and spec.enum is not None
    return Enum(spec.edm, spec.options, tuple(member_name(o) for o in spec.options))


@functools.cache
def enum_fields(entity_name: str) -> Mapping[str, Enum]:
    """The enum fields of an entity set, by field name."""
    return {name: enum_of(spec) for name, spec in SERVED[entity_name].fields.items() if spec.options is not None}


def to_wire(entity: EntitySet, row: dict[str, Any]) -> dict[str, Any]:
    """Replace, in place, the stored captions of a rendered row by their member names."""
    for name, enum in enum_fields(entity.name).items():
        if name in row:
            row[name] = enum.wire(row[name])
    return row


# --- $filter

_ORDER: dict[type, Callable[[int, int], bool]] = {
    ast.Gt: lambda a, b: a > b, ast.GtE: lambda a, b: a >= b, ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b}
_FLIP: dict[type, type] = {ast.Gt: ast.Lt, ast.GtE: ast.LtE, ast.Lt: ast.Gt, ast.LtE: ast.GtE}


def bind_filter(entity: EntitySet, node: Any) -> Any:
    """The filter with every literal compared to an enum field turned into the stored caption (BC's rules
    above); raises BCError for what BC refuses. Other parts of the tree are returned as they are."""
    enums = enum_fields(entity.name)

    def enum_at(n: Any) -> Enum | None:
        return enums.get(n.name) if isinstance(n, ast.Identifier) else None

    def walk(n: Any) -> Any:
        if isinstance(n, ast.BoolOp):
            return ast.BoolOp(n.op, walk(n.left), walk(n.right))
        if isinstance(n, ast.UnaryOp):
            return ast.UnaryOp(n.op, walk(n.operand))
        if isinstance(n, ast.Call):  # contains(blocked, …), tolower(blocked)…: no signature takes an enum
            if any(enum_at(a) for a in n.args):
                raise bad_request(f"No function signature for the function with name '{n.func.name}' matches "
                                  "the specified arguments.")
            for a in n.args:
                walk(a)
            return n
        if isinstance(n, ast.Compare):
            for side in (n.left, n.right):
                if isinstance(side, ast.Call):
                    walk(side)
            return _compare(n, enum_at(n.left), enum_at(n.right))
        return n

    return walk(node)


def _compare(n: ast.Compare, left: Enum | None, right: Enum | None) -> ast._Node:
    if left is None and right is None:
        for side in (n.left, n.right):
            if isinstance(side, EnumLiteral):  # an enum constant against a field that is not an enum
                raise bad_request("A binary operator with incompatible types was detected. Found operand types "
                                  f"'Edm.String' and '{side.type_name}'.")
        return n
    if left is not None:
        enum, field, literal, op = left, n.left, n.right, n.comparator
    else:  # `'Ship' lt blocked` reads as `blocked gt 'Ship'`
        assert right is not None
        enum, field, literal, op = right, n.right, n.left, _FLIP.get(type(n.comparator), type(n.comparator))()
    if isinstance(literal, ast.Identifier | ast.Null):
        return n  # field against field or null: nothing to translate (BC's enum fields are never null)
    if isinstance(op, ast.In):
        if not isinstance(literal, ast.List):
            return n
        return ast.Compare(op, field, ast.List([ast.String(enum.caption(v)) for v in literal.val]))
    caption = enum.caption(literal)
    if type(op) in _ORDER:  # by position: the members whose ordinal stands in that relation
        at = enum.captions.index(caption)
        keep = [c for i, c in enumerate(enum.captions) if _ORDER[type(op)](i, at)]
        return ast.Compare(ast.In(), field, ast.List([ast.String(c) for c in keep]))
    return ast.Compare(op, field, ast.String(caption))


__all__ = ["Enum", "bind_filter", "enum_fields", "enum_of", "member_name", "to_wire"]
