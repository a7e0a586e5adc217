"""Load a pack from YAML: structure validated by pydantic, then cross-checks; all problems reported."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.mapping.companies import check_companies, expand
from shared.mapping.errors import PackError, PackProblem
from shared.mapping.model import Companies, Pack, Route, Systems, TableMapping
from shared.mapping.validate import check_pack


class _Header(BaseModel):
    """The pack without its mappings, so that one broken mapping does not hide the others' problems."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    version: str = Field(min_length=1)
    description: str = ""
    systems: Systems
    mappings: list[Any] = Field(min_length=1)
    routes: list[Route] = []
    companies: Companies | None = None


def load_pack(path: str | Path) -> Pack:
    """Read and validate a pack file; raises PackError listing every problem."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PackError([PackProblem(source, None, None, f"cannot read the pack: {exc}")]) from exc
    return loads_pack(text, source)


def loads_pack(text: str, source: str = "<string>") -> Pack:
    """Validate a pack given as YAML text; `source` is the name used in messages."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PackError([PackProblem(source, None, None, f"invalid YAML{where}: {problem}")]) from exc
    return parse_pack(data, source)


def parse_pack(data: Any, source: str = "<memory>") -> Pack:
    """Validate an already-parsed pack document."""
    if not isinstance(data, dict):
        raise PackError([PackProblem(source, None, None, "a pack is a mapping with name, version, systems, "
                                     f"mappings; got {type(data).__name__}")])
    problems: list[PackProblem] = []
    try:
        header = _Header.model_validate(data)
    except ValidationError as exc:
        problems += [_located(source, None, None, err, data) for err in exc.errors()]
        header = None
    raw_mappings = data.get("mappings") if isinstance(data.get("mappings"), list) else []
    mappings: list[TableMapping] = []
    broken: list[str] = []
    for i, raw in enumerate(raw_mappings):
        label = raw.get("name") if isinstance(raw, dict) and isinstance(raw.get("name"), str) else f"#{i + 1}"
        try:
            mappings.append(TableMapping.model_validate(raw))
        except ValidationError as exc:
            problems += [_located(source, label, raw, err, None) for err in exc.errors()]
            broken.append(label)
    routes = header.routes if header is not None else []
    companies = header.companies if header is not None else None
    if header is not None or "companies" not in data:  # a broken declaration is reported on its own
        company_problems = check_companies(source, companies, mappings, broken)
        problems += company_problems
        if companies is not None and not company_problems:
            mappings = [expand(companies, m) if m.company_specific else m for m in mappings]
    problems += check_pack(source, mappings, routes, broken)
    if problems or header is None:
        raise PackError(problems)
    by_name = {m.name: m for m in mappings}
    for m in mappings:
        m._source = source
        m._targets = {f.lookup.mapping: by_name[f.lookup.mapping] for f in m.fields if f.lookup}
    pack = Pack(name=header.name, version=header.version, description=header.description,
                systems=header.systems, mappings=mappings, routes=routes, companies=companies)
    pack._source = source
    return pack


def _located(source: str, mapping: str | None, raw_mapping: Any, err: Any, raw_pack: Any) -> PackProblem:
    """Turn a pydantic error into a PackProblem naming the mapping and field it is about."""
    loc = list(err["loc"])
    field: str | None = None
    if mapping is None and len(loc) >= 2 and loc[0] == "mappings":
        return PackProblem(source, f"#{loc[1] + 1}" if isinstance(loc[1], int) else None, None, _message(err))
    if mapping is not None and len(loc) >= 2 and loc[0] == "fields" and isinstance(loc[1], int):
        raw_fields = raw_mapping.get("fields") if isinstance(raw_mapping, dict) else None
        raw_field = raw_fields[loc[1]] if isinstance(raw_fields, list) and loc[1] < len(raw_fields) else None
        field = _field_label(raw_field, loc[1])
        rest = _path(loc[2:])
        return PackProblem(source, mapping, field, f"{rest}: {_message(err)}" if rest else _message(err))
    field = _path(loc) or None
    return PackProblem(source, mapping, field, _message(err))


def _field_label(raw: Any, index: int) -> str:
    if isinstance(raw, dict):
        erp, crm = raw.get("erp"), raw.get("crm")
        if isinstance(erp, str) and isinstance(crm, str):
            return f"{erp} ⇄ {crm}"
        if isinstance(erp, str) or isinstance(crm, str):
            return str(erp if isinstance(erp, str) else crm)
    return f"#{index + 1}"


def _path(loc: list[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part not in ("function-after", "function-before"):
            out += f".{part}" if out else str(part)
    return out


def _message(err: Any) -> str:
    kind, msg = err.get("type", ""), err.get("msg", "")
    if kind == "extra_forbidden":
        return "unknown key (not part of the pack format; check its spelling)"
    if kind == "missing":
        return "required key is missing"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if kind in ("literal_error", "enum", "union_tag_invalid") and "input" in err:
        msg += f" (got {err['input']!r})"
    return msg
