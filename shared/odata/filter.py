"""Evaluate an OData v4 `$filter` expression against one record (a JSON-like dict).

Semantics follow the OData v4 URL conventions as Dataverse and Business Central apply them:
comparisons with `null` are only true for `eq null` / `ne null`; a missing field reads as `null`;
`contains`/`startswith`/`endswith` on `null` are false; datetimes compare as instants; GUIDs compare
case-insensitively. Both services compare strings case-insensitively (SQL collation), so callers that
emulate them pass `case_insensitive=True`; the mapping engine's in-process check defaults to exact.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from functools import lru_cache
from typing import Any

from odata_query import ast
from odata_query.exceptions import ODataException
from odata_query.grammar import ODataLexer, ODataParser
from odata_query.roundtrip import AstToODataVisitor


class ODataFilterError(ValueError):
    """The filter text cannot be parsed, uses something unsupported, or compares incompatible types."""


@dataclasses.dataclass(frozen=True)
class EnumLiteral(ast.String):
    """An enum member written as `Namespace.Type'Member'` (Finance and Operations' enums: F&O refuses a plain
    string compared with an enum). It evaluates as its member name, which is what records hold, and prints back
    in the same syntax."""

    type_name: str = ""


# `Microsoft.Dynamics.DataEntities.NoYes'Yes'` outside string literals; odata-query's grammar has no enum
# literal, so each is parsed as a marked string and turned into an EnumLiteral afterwards.
_ENUM = re.compile(r"'(?:[^']|'')*'|\b([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)'((?:[^']|'')*)'")
_MARK = "\x00enum\x00"


def _mark_enums(text: str) -> str:
    def swap(m: re.Match[str]) -> str:
        if m.group(1) is None:
            return m.group(0)  # an ordinary string literal: left alone
        return f"'{_MARK}{m.group(1)}{_MARK}{m.group(2)}'"

    return _ENUM.sub(swap, text)


def _unmark(node: Any) -> Any:
    if isinstance(node, ast.String) and node.val.startswith(_MARK):
        type_name, member = node.val[len(_MARK):].split(_MARK, 1)
        return EnumLiteral(member.replace("''", "'"), type_name)
    if dataclasses.is_dataclass(node) and isinstance(node, ast._Node):
        changes = {f.name: _unmark(getattr(node, f.name)) for f in dataclasses.fields(node)}
        return dataclasses.replace(node, **changes)
    if isinstance(node, list):
        return [_unmark(n) for n in node]
    return node


@lru_cache(maxsize=1024)
def _parse_cached(text: str) -> ast._Node:
    try:
        marked = _mark_enums(text)
        tree = ODataParser().parse(ODataLexer().tokenize(marked))
        return _unmark(tree) if marked != text else tree
    except ODataException as exc:
        raise ODataFilterError(f"invalid $filter {text!r}: {exc}") from exc
    except Exception as exc:  # the lexer/parser raise bare errors on some inputs (e.g. an empty string)
        raise ODataFilterError(f"invalid $filter {text!r}: {exc}") from exc


def parse_filter(text: str) -> ast._Node:
    """Parse `$filter` text into odata-query's syntax tree (cached: filters repeat on every record)."""
    if not isinstance(text, str) or not text.strip():
        raise ODataFilterError("empty $filter")
    return _parse_cached(text.strip())


class _Printer(AstToODataVisitor):
    def visit_String(self, node: ast.String) -> str:
        # odata-query prints strings verbatim; OData escapes a quote inside a literal by doubling it.
        literal = "'" + node.val.replace("'", "''") + "'"
        return f"{node.type_name}{literal}" if isinstance(node, EnumLiteral) else literal

    visit_EnumLiteral = visit_String


def format_filter(node: ast._Node) -> str:
    """Print a syntax tree back as `$filter` text, as sent to an API."""
    return _Printer().visit(node)


def filter_fields(filter_: str | ast._Node) -> set[str]:
    """The field names a filter refers to (for validating it against a schema)."""
    node = parse_filter(filter_) if isinstance(filter_, str) else filter_
    found: set[str] = set()

    def walk(n: Any) -> None:
        if isinstance(n, ast.Identifier):
            found.add(n.name)
        elif isinstance(n, ast.Attribute):
            walk(n.owner)
        elif isinstance(n, ast.Call):
            for arg in n.args:
                walk(arg)
        elif isinstance(n, ast.Compare | ast.BoolOp | ast.BinOp):
            walk(n.left)
            walk(n.right)
        elif isinstance(n, ast.UnaryOp):
            walk(n.operand)

    walk(node)
    return found


def pin_field(node: ast._Node, field: str, value: Any) -> ast._Node | bool:
    """`node` with every comparison on `field` decided for records whose `field` is `value`: True or False when
    that decides the whole filter, else the rest of it (what the service must still evaluate). For a field a
    client adds to records itself (the company of a Business Central connector over several companies), which
    the service cannot filter on. A comparison mixing `field` with other fields is refused."""
    if isinstance(node, ast.BoolOp):
        left, right = pin_field(node.left, field, value), pin_field(node.right, field, value)
        if isinstance(node.op, ast.And):
            if left is False or right is False:
                return False
            if left is True or right is True:
                return right if left is True else left
        else:
            if left is True or right is True:
                return True
            if left is False or right is False:
                return right if left is False else left
        return dataclasses.replace(node, left=left, right=right)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        inner = pin_field(node.operand, field, value)
        return (not inner) if isinstance(inner, bool) else dataclasses.replace(node, operand=inner)
    names = filter_fields(node)
    if field not in names:
        return node
    if names != {field}:
        raise ODataFilterError(f"{field} can only be compared with literals, not with other fields")
    return bool(evaluate_filter(node, {field: value}, case_insensitive=True))


def evaluate_filter(
    filter_: str | ast._Node, record: Mapping[str, Any], *, case_insensitive: bool = False
) -> bool:
    """True when `record` satisfies the filter."""
    node = parse_filter(filter_) if isinstance(filter_, str) else filter_
    return bool(_Evaluator(record, case_insensitive).eval(node))


_MISSING = object()


class _Evaluator:
    def __init__(self, record: Mapping[str, Any], case_insensitive: bool) -> None:
        self.record = record
        self.ci = case_insensitive

    def eval(self, node: ast._Node) -> Any:
        method: Callable[[Any], Any] | None = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            raise ODataFilterError(f"unsupported in $filter: {type(node).__name__}")
        return method(node)

    # --- leaves
    def _Identifier(self, node: ast.Identifier) -> Any:
        return self.record.get(node.name)

    def _Attribute(self, node: ast.Attribute) -> Any:
        owner = self.eval(node.owner)
        return owner.get(node.attr) if isinstance(owner, Mapping) else None

    def _literal(self, node: ast._Literal) -> Any:
        return node.py_val

    _Null = _Integer = _Float = _Boolean = _String = _Date = _DateTime = _GUID = _EnumLiteral = _literal

    def _List(self, node: ast.List) -> list[Any]:
        return [self.eval(v) for v in node.val]

    # --- operators
    def _BoolOp(self, node: ast.BoolOp) -> bool:
        left = bool(self.eval(node.left))
        if isinstance(node.op, ast.And):
            return left and bool(self.eval(node.right))
        return left or bool(self.eval(node.right))

    def _UnaryOp(self, node: ast.UnaryOp) -> Any:
        value = self.eval(node.operand)
        if isinstance(node.op, ast.Not):
            return not bool(value)
        if value is None:
            return None
        return -value

    def _Compare(self, node: ast.Compare) -> bool:
        left, right = self.eval(node.left), self.eval(node.right)
        op = node.comparator
        if isinstance(op, ast.In):
            items = right if isinstance(right, list) else [right]
            return any(self._equal(left, item) for item in items)
        if isinstance(op, ast.Eq):
            return self._equal(left, right)
        if isinstance(op, ast.NotEq):
            return not self._equal(left, right)
        if left is None or right is None:
            return False  # OData: ordering comparisons with null are false
        a, b = self._comparable(left, right)
        if isinstance(op, ast.Gt):
            return a > b
        if isinstance(op, ast.GtE):
            return a >= b
        if isinstance(op, ast.Lt):
            return a < b
        return a <= b

    def _Call(self, node: ast.Call) -> Any:
        name = node.func.name.lower()
        args = [self.eval(a) for a in node.args]
        if name in ("contains", "startswith", "endswith"):
            if len(args) != 2:
                raise ODataFilterError(f"{name}() takes 2 arguments")
            hay, needle = args
            if hay is None or needle is None:
                return False
            if not isinstance(hay, str) or not isinstance(needle, str):
                raise ODataFilterError(f"{name}() needs text arguments")
            if self.ci:
                hay, needle = hay.casefold(), needle.casefold()
            return {"contains": needle in hay, "startswith": hay.startswith(needle),
                    "endswith": hay.endswith(needle)}[name]
        if name in ("tolower", "toupper", "trim", "length") and len(args) == 1:
            value = args[0]
            if value is None:
                return None
            if not isinstance(value, str):
                raise ODataFilterError(f"{name}() needs a text argument")
            return {"tolower": str.lower, "toupper": str.upper, "trim": str.strip, "length": len}[name](value)
        raise ODataFilterError(f"unsupported function in $filter: {node.func.name}()")

    # --- value handling
    def _equal(self, left: Any, right: Any) -> bool:
        if left is None or right is None:
            return left is None and right is None
        a, b = self._comparable(left, right)
        return a == b

    def _comparable(self, left: Any, right: Any) -> tuple[Any, Any]:
        """Bring a record value and a literal to one comparable type, or fail clearly."""
        a, b = _normalise(left), _normalise(right)
        # Records hold dates in their wire form ("2025-03-01"); a date literal says how to read them.
        if _is_date(a) and isinstance(b, str):
            b = _as_date(b)
        elif _is_date(b) and isinstance(a, str):
            a = _as_date(a)
        if isinstance(a, dt.datetime) or isinstance(b, dt.datetime):
            return _as_datetime(a), _as_datetime(b)
        if isinstance(a, uuid.UUID) or isinstance(b, uuid.UUID):
            return _as_uuid(a), _as_uuid(b)
        if isinstance(a, bool) or isinstance(b, bool):
            if isinstance(a, bool) and isinstance(b, bool):
                return a, b
            raise ODataFilterError(f"cannot compare {left!r} with {right!r}")
        if isinstance(a, int | float | Decimal) and isinstance(b, int | float | Decimal):
            return Decimal(str(a)), Decimal(str(b))
        if isinstance(a, str) and isinstance(b, str):
            return (a.casefold(), b.casefold()) if self.ci else (a, b)
        if isinstance(a, dt.date) and isinstance(b, dt.date):
            return a, b
        raise ODataFilterError(f"cannot compare {left!r} with {right!r}")


def _normalise(value: Any) -> Any:
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def _as_datetime(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return _normalise(value)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    if isinstance(value, str):
        try:
            return _normalise(dt.datetime.fromisoformat(value))
        except ValueError:
            pass
    raise ODataFilterError(f"not a date/time: {value!r}")


def _is_date(value: Any) -> bool:
    return isinstance(value, dt.date) and not isinstance(value, dt.datetime)


def _as_date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError as exc:
        raise ODataFilterError(f"not a date: {value!r}") from exc


def _as_uuid(value: Any) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError as exc:
        raise ODataFilterError(f"not a GUID: {value!r}") from exc
