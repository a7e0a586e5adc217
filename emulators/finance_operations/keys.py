"""Resource paths and key predicates: `CustomersV3`, `CustomersV3/$count`,
`CustomersV3(dataAreaId='usmf',CustomerAccount='US-001')` (any order of the key properties, all required),
`Currencies('USD')` (shorthand for a single key), enum literals `Microsoft.Dynamics.DataEntities.NoYes'Yes'`.

The path arrives percent-decoded, so a key value may hold `/`, `'` (doubled), `&`, `#` or spaces. Each record's
store id is its canonical key predicate (declared key order), lower-cased by the store: keys compare
case-insensitively as F&O's SQL does."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from emulators.finance_operations.errors import FOError
from emulators.finance_operations.schema import ENUMS, NAMESPACE, EntityDef, enum_member

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PAIR = re.compile(r"\s*([A-Za-z_]\w*)\s*=")
_ENUM = re.compile(re.escape(NAMESPACE) + r"\.([A-Za-z_][A-Za-z0-9_]*)'((?:[^']|'')*)'")
_TOKEN = re.compile(r"(?P<enum>" + re.escape(NAMESPACE) + r"\.(?P<ename>[A-Za-z_]\w*)'(?P<eval>(?:[^']|'')*)')"
                    r"|(?P<str>'(?:[^']|'')*')")


@dataclass
class Target:
    entity_set: str
    key: str | None  # the text between the parentheses, undecoded
    count: bool  # `/$count`


def syntax_error(detail: str = "") -> FOError:
    return FOError(400, f"The request URI is not valid. {detail}".strip())


def split_path(path: str) -> Target:
    """`CustomersV3(…)` / `CustomersV3/$count` → Target; quotes inside the key are respected."""
    m = _NAME.match(path)
    if not m:
        raise syntax_error()
    name, i = m.group(0), m.end()
    key = None
    if i < len(path) and path[i] == "(":
        j, in_str = i + 1, False
        while j < len(path):
            ch = path[j]
            if ch == "'":
                in_str = not in_str  # a doubled quote toggles twice: still inside
            elif ch == ")" and not in_str:
                break
            j += 1
        if j >= len(path):
            raise syntax_error("Unbalanced parentheses in the key.")
        key, i = path[i + 1:j], j + 1
    rest = path[i:]
    if rest in ("", "/"):
        return Target(name, key, False)
    if rest == "/$count" and key is None:
        return Target(name, None, True)
    raise syntax_error(f"The segment '{rest.lstrip('/')}' is not supported.")


def _literal(raw: str, enum_of: str | None = None) -> Any:
    raw = raw.strip()
    if raw.startswith("'") and raw.endswith("'") and len(raw) >= 2:
        return raw[1:-1].replace("''", "'")
    m = _ENUM.fullmatch(raw)
    if m:
        member = enum_member(m.group(1), m.group(2).replace("''", "'")) if m.group(1) in ENUMS else None
        if member is None:
            raise FOError(400, f"The value '{m.group(2)}' is not a valid member of the enumeration "
                          f"'{NAMESPACE}.{m.group(1)}'.")
        return member
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise syntax_error(f"Unrecognized literal '{raw}' in the key.") from None
    return value


def _pairs(text: str) -> list[tuple[str | None, str]]:
    """Split `a='x',b=1` (or a lone literal) into (name, raw literal) respecting quotes."""
    out: list[tuple[str | None, str]] = []
    i, n = 0, len(text)
    while i < n:
        m = _PAIR.match(text, i)
        name = None
        if m:
            name, i = m.group(1), m.end()
        j, in_str = i, False
        while j < n and (in_str or text[j] != ","):
            if text[j] == "'":
                in_str = not in_str
            j += 1
        if in_str:
            raise syntax_error("Unterminated string literal in the key.")
        out.append((name, text[i:j]))
        i = j + 1
    return out


def parse_key(entity: EntityDef, text: str) -> dict[str, Any]:
    """{key property: value} for a key predicate; every key property must be named exactly once."""
    pairs = _pairs(text)
    if len(pairs) == 1 and pairs[0][0] is None:
        if len(entity.keys) != 1:
            raise syntax_error(f"The key of '{entity.entity_set}' has {len(entity.keys)} properties; name each.")
        pairs = [(entity.keys[0], pairs[0][1])]
    values: dict[str, Any] = {}
    for name, raw in pairs:
        if name is None:
            raise syntax_error("Name every key property of a composite key.")
        if name not in entity.keys:
            raise FOError(400, f"The key property '{name}' is not a key of type '{NAMESPACE}.{entity.public}'.")
        if name in values:
            raise syntax_error(f"The key property '{name}' is given twice.")
        values[name] = coerce_key(entity, name, _literal(raw))
    missing = [k for k in entity.keys if k not in values]
    if missing:
        raise FOError(400, f"The number of keys specified in the URI does not match number of key properties for "
                      f"the resource '{NAMESPACE}.{entity.public}'. Missing: {', '.join(missing)}.")
    return values


def coerce_key(entity: EntityDef, name: str, value: Any) -> Any:
    prop = entity.props[name]
    if prop.type == "decimal":
        if isinstance(value, str):
            raise syntax_error(f"The key property '{name}' is a number.")
        return float(value)
    if isinstance(value, Decimal):
        raise syntax_error(f"The key property '{name}' needs a quoted string literal.")
    return value


def canonical(entity: EntityDef, values: dict[str, Any]) -> str:
    """The store id: the key predicate in declared order (`dataAreaId='usmf',CustomerAccount='US-001'`)."""
    return ",".join(f"{k}={format_literal(values.get(k))}" for k in entity.keys)


def format_literal(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "null" if value is None else str(value).lower()
    if isinstance(value, int | float | Decimal):
        d = Decimal(str(value)).normalize()
        return format(d, "f")
    return "'" + str(value).replace("'", "''") + "'"


def rewrite_enum_literals(filter_text: str) -> str:
    """`Field eq Microsoft.Dynamics.DataEntities.NoYes'Yes'` → `Field eq 'Yes'` (enums are member-name strings
    in this emulator's rows); a member that does not exist → 400. Ordinary string literals are left alone."""
    def repl(m: re.Match[str]) -> str:
        if m.group("str"):
            return m.group("str")
        enum, raw = m.group("ename"), m.group("eval").replace("''", "'")
        member = enum_member(enum, raw) if enum in ENUMS else None
        if member is None:
            raise FOError(400, f"The value '{raw}' is not a valid member of the enumeration '{NAMESPACE}.{enum}'.")
        return "'" + member.replace("'", "''") + "'"

    return _TOKEN.sub(repl, filter_text)
