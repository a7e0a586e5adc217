"""Helpers for the infra tests: parse the Bicep templates with pycep and evaluate the few expression forms
the app settings use (literals, interpolation, `a.b.c` references, `string()`), so a test can look at the
settings the Function App will really get."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from pycep import BicepParser

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MAIN = INFRA / "main.bicep"
PARAMETERS = INFRA / "main.parameters.json"
KV_REFERENCE = re.compile(r"^@Microsoft\.KeyVault\(SecretUri=https://[^/]+/secrets/([A-Za-z0-9-]+)/?\)$")
_INTERPOLATION = re.compile(r"\$\{([^}]+)\}")


@cache
def template(path: Path) -> dict[str, Any]:
    """The pycep JSON of one template (cached: parsing is the slow part)."""
    return BicepParser().parse(file_path=path)


def templates() -> dict[str, dict[str, Any]]:
    """Every template under infra/, by path relative to infra/."""
    return {str(p.relative_to(INFRA)): template(p) for p in sorted(INFRA.rglob("*.bicep"))}


def module_template(name: str) -> dict[str, Any]:
    """The template a module of main.bicep points at (e.g. `storage` -> modules/storage.bicep)."""
    return template(INFRA / template(MAIN)["modules"][name]["detail"]["path"])


def body(resource: dict[str, Any]) -> dict[str, Any]:
    """A resource's properties, under its loop or condition wrapper if it has one."""
    config = resource["config"]
    return config["config"] if "loop_type" in config or "condition" in config else config


def resources_of(doc: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in doc.get("resources", {}).items() if r["type"] == type_}


def dotted(expr: Any) -> str | None:
    """`a.b.c` for a property-access chain, else None."""
    if isinstance(expr, str):
        return expr
    if isinstance(expr, dict) and "operator" in expr and expr["operator"]["type"] == "property_accessor":
        operands = expr["operator"]["operands"]
        left, right = dotted(operands["operand_1"]), dotted(operands["operand_2"])
        return f"{left}.{right}" if left and right else None
    return None


def _is_expression(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in ("function", "operator")


def parameter_values() -> dict[str, Any]:
    """main.parameters.json as name -> value."""
    return {name: entry["value"] for name, entry in json.loads(PARAMETERS.read_text())["parameters"].items()}


class Evaluator:
    """Evaluates main.bicep expressions: parameters from main.parameters.json (else their literal default),
    variables recursively, and `outputs` (module outputs, resource properties) from `known`."""

    def __init__(self, known: dict[str, Any], params: dict[str, Any] | None = None) -> None:
        self.doc = template(MAIN)
        self.params = {**parameter_values(), **(params or {})}
        self.known = known

    def reference(self, path: str) -> Any:
        if path in self.known:
            return self.known[path]
        head, _, rest = path.partition(".")
        if head in self.doc["variables"]:
            value = self.value(self.doc["variables"][head]["value"])
        elif head in self.params:
            value = self.params[head]
        elif head in self.doc["parameters"] and not _is_expression(self.doc["parameters"][head]["default"]):
            value = self.doc["parameters"][head]["default"]
        else:
            raise KeyError(f"cannot evaluate {path!r}: add it to the test's known values")
        for part in rest.split(".") if rest else []:
            value = value[part]
        return value

    def value(self, expr: Any) -> Any:
        if isinstance(expr, str):
            # pycep gives a bare identifier and a string literal alike; an exact parameter or variable name is
            # taken as a reference (no literal in main.bicep's settings equals one).
            if expr in self.doc["variables"] or expr in self.doc["parameters"]:
                return self.reference(expr)
            return _INTERPOLATION.sub(lambda m: str(self.reference(m.group(1).strip())), expr)
        if isinstance(expr, bool | int | float) or expr is None:
            return expr
        if isinstance(expr, list):
            return [self.value(e) for e in expr]
        path = dotted(expr)
        if path is not None:
            return self.reference(path)
        if "function" in expr:
            fn = expr["function"]
            if fn["type"] == "string":
                return str(self.value(next(iter(fn["parameters"].values()))))
            if fn["type"] == "union":
                merged: dict[str, Any] = {}
                for arg in fn["parameters"].values():
                    merged.update(self.value(arg))
                return merged
            raise KeyError(f"cannot evaluate function {fn['type']!r}")
        if "operator" in expr:
            op = expr["operator"]
            operands = op["operands"]
            if op["type"] == "conditional":
                chosen = operands["true_value"] if self.value(operands["condition"]) else operands["false_value"]
                return self.value(chosen)
            if op["type"] == "equals":
                return self.value(operands["operand_1"]) == self.value(operands["operand_2"])
            raise KeyError(f"cannot evaluate operator {op['type']!r}")
        return {self.key(key): self.value(v) for key, v in expr.items()}

    def key(self, key: str) -> str:
        """An object key: pycep keeps a quoted key's quotes; an interpolated one is evaluated."""
        if len(key) >= 2 and key[0] == key[-1] == "'":
            key = key[1:-1]
        return _INTERPOLATION.sub(lambda m: str(self.reference(m.group(1).strip())), key)
