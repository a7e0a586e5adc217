"""Table definitions over the Web API (Microsoft Learn, "Query table definitions using the Web API", "Retrieve
table definitions by name or MetadataId"): `EntityDefinitions`, one by `(LogicalName='x')` or `(<MetadataId>)`,
its `Attributes` / `Keys` / `ManyToOneRelationships` / `OneToManyRelationships` / `ManyToManyRelationships`,
type casts (`/Microsoft.Dynamics.CRM.PicklistAttributeMetadata`), `OptionSet` / `GlobalOptionSet`, with
`$select`, `$filter`, `$expand` and `LabelLanguages`. `route` also hands `$metadata` (csdl.py), the service
document and the functions (functions.py) their requests. The objects come from definitions.py.

Dataverse refuses paging and ordering here (there is no paging: every match comes back at once); the emulator
answers those options with the service's refusal, never by ignoring them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from odata_query import ast

from emulators.dataverse.api import JSON_TYPE, ApiRequest, ApiResponse
from emulators.dataverse.core import Emulator
from emulators.dataverse.definitions import Catalog, Node, catalog
from emulators.dataverse.errors import BAD_PROPERTY, NOT_FOUND, QUERY_SYNTAX, DataverseError
from emulators.dataverse.metatypes import ENUMS, NS, TYPES, is_a, navs_of, props_of
from shared.odata import ODataFilterError, evaluate_filter, parse_filter
from shared.odata.filter import EnumLiteral

HEADERS = {"Content-Type": JSON_TYPE, "OData-Version": "4.0"}
_SEGMENT = re.compile(r"^(?P<name>[A-Za-z_$][\w.$]*)(?:\((?P<key>.*)\))?$", re.S)
_GUID = re.compile(r"^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$")
_KEY_PROPS = {"EntityMetadata": "LogicalName", "AttributeMetadata": "LogicalName",
              "EntityKeyMetadata": "LogicalName", "OneToManyRelationshipMetadata": "SchemaName",
              "ManyToManyRelationshipMetadata": "SchemaName"}
_OPERATORS = {ast.Eq: "Equal", ast.NotEq: "NotEqual", ast.Gt: "GreaterThan", ast.GtE: "GreaterThanOrEqual",
              ast.Lt: "LessThan", ast.LtE: "LessThanOrEqual", ast.In: "In"}
_LITERALS = {ast.String: "Edm.String", ast.Boolean: "Edm.Boolean", ast.Integer: "Edm.Int32", ast.GUID: "Edm.Guid",
             ast.Float: "Edm.Double", ast.DateTime: "Edm.DateTimeOffset"}
_SUPPORTED = {"$select", "$filter", "$expand"}


def route(emu: Emulator, req: ApiRequest) -> ApiResponse | None:
    """The response for a metadata or function path, or None when the path is not one (an entity set)."""
    head = _SEGMENT.match(req.path.split("/", 1)[0])
    name = head.group("name") if head else None
    if req.path and name not in ("$metadata", "EntityDefinitions", "WhoAmI", "RetrieveEntity"):
        return None
    if req.method != "GET":
        # The service also creates and updates definitions; the emulator's schema is fixed.
        raise DataverseError(405, BAD_PROPERTY, f"The HTTP method '{req.method}' is not allowed on this resource.")
    from emulators.dataverse import csdl, functions  # both build on this module

    if not req.path:
        return functions.service_document(emu, req)
    if name == "$metadata":
        return csdl.response(emu, req)
    if name == "EntityDefinitions":
        return definitions(emu, req)
    return functions.call(emu, req, name or "", head.group("key") if head else None)


def refuse_options(req: ApiRequest, allowed: set[str]) -> None:
    for option in req.query:
        if option.startswith("$") and option not in allowed:
            # What Dataverse answers for $top on EntityDefinitions (observed; code and wording alike for the
            # other paging/ordering options: unconfirmed).
            raise DataverseError(400, BAD_PROPERTY, f"The query parameter {option} is not supported")


# ---------------------------------------------------------------- resolving the path
@dataclass
class Cursor:
    value: Node | list[Node] | None
    type: str  # the declared (or cast) type of the value / of the collection's members
    path: str  # canonical path to the value, for @odata.context
    single: bool
    container: str = ""  # for a single member: the collection path it belongs to (context `…/$entity`)


def definitions(emu: Emulator, req: ApiRequest) -> ApiResponse:
    cat = catalog(emu.settings)
    refuse_options(req, _SUPPORTED)
    cur = _walk(cat, _split(req.path))
    if cur.single and "$filter" in req.query:
        raise DataverseError(400, QUERY_SYNTAX, "The $filter query option cannot be applied to the query path. "
                             "Query options such as $filter, $orderby, $count, $skip, and $top can only be "
                             "applied to collections.")  # (unconfirmed wording)
    opts = parse_options(req.query, cur.type)
    langs = _languages(req.query.get("LabelLanguages"))
    suffix = opts.context()
    if cur.single:
        if cur.value is None:  # a null single-valued navigation (GlobalOptionSet of a local option set)
            return ApiResponse(204, {"OData-Version": "4.0"})
        body = {"@odata.context": f"{req.base}/$metadata#{cur.container}{suffix}/$entity",
                **shape(cur.value, cur.type, opts)}  # type: ignore[arg-type]
    else:
        members = [m for m in cur.value or [] if matches(opts.filter, m)]  # type: ignore[union-attr]
        body = {"@odata.context": f"{req.base}/$metadata#{cur.path}{suffix}",
                "value": [shape(m, cur.type, opts) for m in members]}
    return ApiResponse(200, dict(HEADERS), localize(body, langs))


def _split(path: str) -> list[str]:
    """Path segments; a `/` inside a quoted key value does not split."""
    parts, buf, quoted = [], "", False
    for ch in path:
        if ch == "'":
            quoted = not quoted
        if ch == "/" and not quoted:
            parts.append(buf)
            buf = ""
        else:
            buf += ch
    return [*parts, buf]


def _walk(cat: Catalog, segments: list[str]) -> Cursor:
    cur = Cursor(cat.entities, "EntityMetadata", "EntityDefinitions", False)
    for i, seg in enumerate(segments):
        m = _SEGMENT.match(seg)
        if not m:
            raise DataverseError(400, QUERY_SYNTAX, "Bad Request - Error in query syntax.")
        name, key = m.group("name"), m.group("key")
        if i == 0:
            if key is not None:
                cur = _member(cur, key, cat)
            continue
        if name.startswith(NS + "."):
            cur = _cast(cur, name[len(NS) + 1:], name)
            if key is not None:  # `…/Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata(<key>)`
                if cur.single:
                    raise DataverseError(400, QUERY_SYNTAX, "Bad Request - Error in query syntax.")
                cur = _member(cur, key, cat, segments[0])
        elif cur.single and name in navs_of(cur.type):
            target = cur.value.navs.get(name)  # type: ignore[union-attr]
            elem = _element(navs_of(cur.type)[name])
            if isinstance(target, list):
                cur = Cursor(target, elem, f"{cur.path}/{name}", False)
                if key is not None:
                    cur = _member(cur, key, cat, segments[0])
            elif key is None:
                cur = Cursor(target, elem, f"{cur.path}/{name}", True, f"{cur.path}/{name}")
            else:
                raise DataverseError(400, QUERY_SYNTAX, "Bad Request - Error in query syntax.")
        else:
            raise DataverseError(404, BAD_PROPERTY, f"Resource not found for the segment '{name}'.")
    return cur


def _element(type_expr: str) -> str:
    return type_expr[len("Collection("):-1] if type_expr.startswith("Collection(") else type_expr


def _member(cur: Cursor, key: str, cat: Catalog, entity_segment: str = "") -> Cursor:
    """The member of a collection a key segment names: `(LogicalName='x')` (`SchemaName` for relationships),
    `(<MetadataId>)` or `(MetadataId=<guid>)`."""
    prop, value = _parse_key(key, _KEY_PROPS.get(cur.type, "LogicalName"))
    wanted = value.lower()
    found = next((m for m in cur.value or [] if str(m.props.get(prop, "")).lower() == wanted), None)  # type: ignore[union-attr]
    if found is None:
        raise _not_found(cur, prop, value, entity_segment, cat)
    path = f"{cur.path}({found.props['MetadataId']})"
    return Cursor(found, cur.type, path, True, cur.path)


def _parse_key(key: str, name_prop: str) -> tuple[str, str]:
    key = key.strip()
    if _GUID.match(key):
        return "MetadataId", key
    prop, eq, raw = key.partition("=")
    prop, raw = prop.strip(), raw.strip()
    if eq and prop == "MetadataId" and _GUID.match(raw):
        return prop, raw
    if eq and prop == name_prop and len(raw) >= 2 and raw[0] == raw[-1] == "'":
        return prop, raw[1:-1].replace("''", "'")
    raise DataverseError(400, QUERY_SYNTAX, "Bad Request - Error in query syntax.")


def _not_found(cur: Cursor, prop: str, value: str, entity_segment: str, cat: Catalog) -> DataverseError:
    name, mid = (value, "00000000-0000-0000-0000-000000000000") if prop != "MetadataId" else ("", value)
    if cur.type == "EntityMetadata":
        # The platform's ObjectDoesNotExist message for a table (SDK RetrieveEntity; the same for the Web API).
        return DataverseError(404, NOT_FOUND, f"Could not find an entity with name {name} and id {mid}.")
    # (unconfirmed for the Web API) the platform's message for a missing column, and alike for keys/relationships.
    owner = _walk(cat, [entity_segment]).value.props["SchemaName"]  # type: ignore[union-attr]
    what = ("attribute" if is_a(cur.type, "AttributeMetadata") else
            "entity key" if cur.type == "EntityKeyMetadata" else "relationship")
    by = f"Name = '{value}' and NameMapping = 'Logical'" if prop != "MetadataId" else f"Id = '{value}'"
    return DataverseError(404, NOT_FOUND, f"'{owner}' entity doesn't contain {what} with {by}.")


def _cast(cur: Cursor, type_name: str, seg: str) -> Cursor:
    meta = TYPES.get(type_name)
    # Microsoft Learn: a query cannot cast to EnumAttributeMetadata (abstract); nor to anything not derived.
    if meta is None or meta.complex or meta.abstract or not is_a(type_name, cur.type):
        raise DataverseError(404, BAD_PROPERTY, f"Resource not found for the segment '{seg}'.")
    if cur.single:
        if cur.value is None or not is_a(cur.value.type, type_name):  # type: ignore[union-attr]
            # (unconfirmed) a cast the definition is not of names no resource.
            raise DataverseError(404, BAD_PROPERTY, f"Resource not found for the segment '{seg}'.")
        return Cursor(cur.value, type_name, f"{cur.path}/{seg}", True, f"{cur.container}/{seg}")
    members = [m for m in cur.value or [] if is_a(m.type, type_name)]  # type: ignore[union-attr]
    return Cursor(members, type_name, f"{cur.path}/{seg}", False)


# ---------------------------------------------------------------- query options
@dataclass
class Options:
    type: str
    select: list[str] | None = None
    filter: Any = None
    expand: dict[str, Options] = field(default_factory=dict)

    def context(self) -> str:
        """`(LogicalName,Attributes(LogicalName))` for @odata.context; "" without $select/$expand."""
        parts = list(self.select or [])
        for nav, sub in self.expand.items():
            inner = sub.context()
            parts = [p for p in parts if p != nav] + [f"{nav}{inner}" if inner else nav]
        return f"({','.join(parts)})" if parts else ""


def parse_options(query: dict[str, str], type_name: str) -> Options:
    opts = Options(type_name)
    if (expand := query.get("$expand")) is not None:
        for item in _top_level(expand, ","):
            m = re.fullmatch(r"\s*([\w.]+)\s*(?:\((.*)\))?\s*", item, re.S)
            nav = m.group(1) if m else item.strip()
            if not m or nav not in navs_of(type_name):
                raise _no_property(nav, type_name)
            nested = {}
            for part in _top_level(m.group(2) or "", ";"):
                option, _, value = part.partition("=")
                option = option.strip()
                if option not in _SUPPORTED:
                    raise DataverseError(400, BAD_PROPERTY, f"The query parameter {option} is not supported")
                nested[option] = value
            opts.expand[nav] = parse_options(nested, _element(navs_of(type_name)[nav]))
    if (select := query.get("$select")) is not None:
        names = [n.strip() for n in select.split(",") if n.strip()]
        known = props_of(type_name)
        for n in names:
            if n not in known and n not in opts.expand and n != "*":
                raise _no_property(n, type_name)
        opts.select = None if "*" in names else [n for n in names if n not in opts.expand]
    if (text := query.get("$filter")) is not None:
        try:
            opts.filter = parse_filter(text)
        except ODataFilterError:
            raise DataverseError(400, QUERY_SYNTAX, "Bad Request - Error in query syntax.") from None
        _check_filter(opts.filter, type_name)
    return opts


def _top_level(text: str, sep: str) -> list[str]:
    """Split at `sep` outside parentheses and quotes."""
    parts, depth, quoted, buf = [], 0, False, ""
    for ch in text:
        quoted = not quoted if ch == "'" else quoted
        depth += (ch == "(") - (ch == ")") if not quoted else 0
        if ch == sep and depth == 0 and not quoted:
            parts.append(buf)
            buf = ""
        else:
            buf += ch
    return [p for p in [*parts, buf] if p.strip()]


def _no_property(name: str, type_name: str) -> DataverseError:
    return DataverseError(400, BAD_PROPERTY, f"Could not find a property named '{name}' on type "
                          f"'{NS}.{type_name}'.")


def _check_filter(node: Any, type_name: str) -> None:
    """Refuse what the metadata query does not evaluate, as Dataverse does: functions, Label properties, enum
    properties compared with anything but their enum's members (Microsoft Learn: "you must include the
    namespace of the enumeration"), unknown properties."""
    if isinstance(node, ast.BoolOp):
        _check_filter(node.left, type_name)
        _check_filter(node.right, type_name)
    elif isinstance(node, ast.UnaryOp):
        _check_filter(node.operand, type_name)
    elif isinstance(node, ast.Call):
        # Observed wording and code (unconfirmed in the documentation).
        raise DataverseError(400, QUERY_SYNTAX, f'The "{node.func.name}" function isn\'t supported for Metadata '
                             "Entities.")
    elif isinstance(node, ast.Compare):
        left = _operand_type(node.left, type_name)
        rights = node.right.val if isinstance(node.right, ast.List) else [node.right]
        for right in rights:
            _operand_type(right, type_name)
            if left is not None and not isinstance(right, ast.Null):
                _compatible(left, right, node.comparator)
    elif isinstance(node, ast.Identifier | ast.Attribute):
        if _operand_type(node, type_name) != "Edm.Boolean":
            raise DataverseError(400, QUERY_SYNTAX, "The $filter expression must evaluate to a single boolean "
                                 "value.")  # ODataLib's wording (code unconfirmed)
    elif not isinstance(node, ast.Boolean):
        raise DataverseError(400, QUERY_SYNTAX, "The $filter expression must evaluate to a single boolean value.")


def _operand_type(node: Any, type_name: str) -> str | None:
    if isinstance(node, ast.Identifier):
        props = props_of(type_name)
        if node.name not in props:
            raise _no_property(node.name, type_name)
        return props[node.name]
    if isinstance(node, ast.Attribute):
        owner = _operand_type(node.owner, type_name)
        meta = TYPES.get(owner or "")
        if meta is None or not meta.complex or owner == "Label":
            # Microsoft Learn: complex-type paths work one level deep, not on Label properties.
            raise DataverseError(400, BAD_PROPERTY, f"The property '{node.attr}' cannot be used in $filter on "
                                 f"'{NS}.{type_name}'.")  # (unconfirmed wording)
        if node.attr not in props_of(owner or ""):
            raise _no_property(node.attr, owner or "")
        return props_of(owner or "")[node.attr]
    return None


def _compatible(left: str, right: Any, op: Any) -> None:
    """An enum property takes its own enum's members; any other literal, or a member compared with anything
    else, is ODataLib's incompatible-types refusal (code unconfirmed)."""
    enum = ENUMS.get(left)
    if isinstance(right, EnumLiteral):
        if enum is not None and right.type_name in (f"{NS}.{left}", f"mscrm.{left}"):
            if not {m.strip() for m in right.val.split(",")} <= set(enum[0]):
                raise DataverseError(400, QUERY_SYNTAX, f"The string '{right.val}' is not a valid enumeration "
                                     "type constant.")  # (unconfirmed wording)
            return
        literal = right.type_name
    else:
        literal = _LITERALS.get(type(right))
        if literal is None or (enum is None and left.startswith("Edm.")):
            return  # a property on the right, or a primitive: the evaluation compares them
    declared = left if left.startswith(("Edm.", "Collection(")) else f"{NS}.{left}"
    raise DataverseError(400, BAD_PROPERTY, "A binary operator with incompatible types was detected. Found operand "
                         f"types '{declared}' and '{literal}' for operator kind '{_OPERATORS.get(type(op), 'Equal')}'.")


def matches(filter_: Any, node: Node) -> bool:
    if filter_ is None:
        return True
    try:
        return evaluate_filter(filter_, node.props, case_insensitive=True)
    except ODataFilterError as exc:
        raise DataverseError(400, QUERY_SYNTAX, str(exc)) from None


# ---------------------------------------------------------------- shaping the answer
def shape(node: Node, declared: str, opts: Options) -> dict[str, Any]:
    """A definition in wire form: `@odata.type` when it is of a type derived from the declared one, the selected
    properties (all its own when none are) and MetadataId always, then the expanded navigations."""
    out: dict[str, Any] = {}
    if node.type != declared:
        out["@odata.type"] = f"#{NS}.{node.type}"
    for name in opts.select if opts.select is not None else node.props:
        out[name] = node.props.get(name)
    out.setdefault("MetadataId", node.props.get("MetadataId"))
    for nav, sub in opts.expand.items():
        target = node.navs.get(nav)
        if isinstance(target, list):
            out[nav] = [shape(m, sub.type, sub) for m in target if matches(sub.filter, m)]
        else:
            out[nav] = shape(target, sub.type, sub) if target is not None else None
    return out


def _languages(raw: str | None) -> set[int] | None:
    """`LabelLanguages=1033,1031`: the languages of the labels to return."""
    if raw is None:
        return None
    try:
        return {int(part) for part in raw.split(",") if part.strip()}
    except ValueError:
        raise DataverseError(400, QUERY_SYNTAX, "Bad Request - Error in query syntax.") from None


def localize(value: Any, langs: set[int] | None) -> Any:
    """Every Label limited to the requested languages (the emulator's labels exist in 1033 only)."""
    if langs is None:
        return value
    if isinstance(value, list):
        return [localize(v, langs) for v in value]
    if isinstance(value, dict):
        out = {k: localize(v, langs) for k, v in value.items()}
        if isinstance(out.get("LocalizedLabels"), list):
            out["LocalizedLabels"] = [lbl for lbl in out["LocalizedLabels"] if lbl.get("LanguageCode") in langs]
        return out
    return value
