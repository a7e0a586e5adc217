"""Which query options each kind of request accepts, and BC's refusals of the rest. Every `$` option is either
honoured or refused with a 400 (never silently dropped); options without `$` are OData custom query options
and are ignored, except `company`, which names the company of an entity set addressed at the API root.

Documented: system query options start with `$`, custom ones must not (OData URL conventions); a repeated
option is refused with odata.net's "Query option '$top' was specified more than once, but it must be specified
at most once."; `company=[name]` is BC's custom option ("Troubleshooting REST API/OData calls", the
`Internal_CompanyNotFound` message). `$schemaversion` is BC's own option; API v2.0's "schema version is always
set to 2.0" ("Transitioning from API v1.0 to API v2.0"), so 2.0 is accepted and other versions refused.

Unconfirmed (BC's wording not documented; the texts are the ones Microsoft's OData stacks use):
- unknown or unsupported `$` options ($search, $apply, $compute, $levels, $index…): "The query parameter
  '$x' is not supported.";
- collection options on a single entity: "The requested resource is not a collection. Query options $filter,
  $orderby, $count, $skip, and $top can be applied only on collections.";
- `$format` other than JSON (XML for `$metadata`) → 406 with code `BadRequest`;
- `$expand` with nested options, `*`, paths or `$ref` → 400 (BC honours some of these; the emulator does not);
- option names are case-sensitive (OData 4.0).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from emulators.business_central.errors import BCError, bad_request
from emulators.business_central.schema import EntitySet, Nav

# The system query options the emulator implements, and which requests take them.
COLLECTION = frozenset({"$filter", "$select", "$orderby", "$top", "$skip", "$count", "$expand", "$skiptoken",
                        "$format", "$schemaversion"})
SINGLE = frozenset({"$select", "$expand", "$format", "$schemaversion"})
WRITE = SINGLE  # POST and PATCH answer the entity, shaped by $select / $expand (OData allows both there)
DELETE = frozenset({"$schemaversion"})
# `/$count` answers the number of items after $filter; $orderby, $top and $skip are allowed and, as OData
# prescribes ("the returned count MUST NOT be affected by $top, $skip, $orderby"), do not change it.
COUNT = frozenset({"$filter", "$orderby", "$top", "$skip", "$schemaversion"})
METADATA = frozenset({"$format", "$schemaversion"})
ONLY_COLLECTIONS = frozenset({"$filter", "$orderby", "$count", "$skip", "$top", "$skiptoken"})

_JSON_FORMATS = ("json", "application/json")
_XML_FORMATS = ("xml", "application/xml")


def query_params(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """A request's query options as a dict; a `$` option given twice is refused (odata.net's message)."""
    out: dict[str, str] = {}
    for name, value in pairs:
        if name.startswith("$") and name in out:
            raise bad_request(f"Query option '{name}' was specified more than once, but it must be specified at "
                              "most once.")
        out[name] = value
    return out


NOT_A_COLLECTION = ("The requested resource is not a collection. Query options $filter, $orderby, $count, $skip, "
                    "and $top can be applied only on collections.")


def check_options(params: Mapping[str, str], allowed: frozenset[str], *, context: str = "single",
                  xml: bool = False) -> None:
    """Refuse every `$` option not in `allowed` (`context` names the request in the message: "single" for a
    single entity, else e.g. "a $count request"); check `$format` and `$schemaversion` when present."""
    for name in params:
        if not name.startswith("$") or name in allowed:
            continue
        if name not in COLLECTION:  # not an option the emulator implements anywhere
            raise bad_request(f"The query parameter '{name}' is not supported.")
        if context == "single" and name in ONLY_COLLECTIONS:
            raise bad_request(NOT_A_COLLECTION)
        raise bad_request(f"The query option '{name}' is not supported on {context}.")
    if "$format" in params:
        _check_format(params["$format"], _XML_FORMATS if xml else _JSON_FORMATS)
    if (version := params.get("$schemaversion")) is not None and version != "2.0":
        raise bad_request(f"The schema version '{version}' is not supported by API v2.0; it is always 2.0.")


def _check_format(value: str, accepted: tuple[str, ...]) -> None:
    media, *params = [p.strip() for p in value.split(";")]
    pairs = [(k.lower(), v.lower()) for k, _, v in (p.partition("=") for p in params)]
    # Only the representation the emulator writes: JSON (XML for $metadata) with minimal metadata.
    ok = media.lower() in accepted and all(
        k in ("odata.metadata", "odata.streaming", "charset", "ieee754compatible") for k, _ in pairs) and all(
        v == "minimal" for k, v in pairs if k == "odata.metadata")
    if not ok:
        raise BCError(406, "BadRequest", f"The requested format '{value}' is not supported for this resource.")


def parse_expand(entity: EntitySet, raw: str | None) -> list[Nav]:
    """The navigation properties `$expand` names (each once), or a 400 for anything else."""
    if raw is None:
        return []
    items, depth, start = [], 0, 0
    for i, ch in enumerate(raw + ","):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            items.append(raw[start:i].strip())
            start = i + 1
    out: list[Nav] = []
    for item in items:
        if not item:
            raise bad_request(f"The $expand clause '{raw}' is not valid: an item is empty.")
        if any(c in item for c in "()/*$"):
            raise bad_request(f"The $expand item '{item}' is not supported: only navigation property names "
                              "without nested query options can be expanded.")
        nav = entity.nav(item)
        if nav is None:
            raise bad_request(f"Could not find a property named '{item}' on type "
                              f"'Microsoft.NAV.{entity.type_name}'.")
        if nav not in out:
            out.append(nav)
    return out


__all__ = ["COLLECTION", "COUNT", "DELETE", "METADATA", "SINGLE", "WRITE", "check_options", "parse_expand",
           "query_params"]
