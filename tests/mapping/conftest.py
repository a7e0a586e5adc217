from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.mapping import Pack, load_pack

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "templates"


def pack_doc(*mappings: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A minimal BC ⇄ Dataverse pack document around the given mappings."""
    doc = {"name": "test", "version": "1", "systems": {"erp": "business_central", "crm": "dataverse"},
           "mappings": list(mappings)}
    doc.update(extra)
    return doc


def table(name: str = "customers", fields: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    m = {"name": name, "erp": {"entity": "customers", "key": "id"},
         "crm": {"entity": "accounts", "key": "accountid"}, "direction": "bidirectional",
         "fields": fields or [{"erp": "displayName", "crm": "name"}]}
    m.update(extra)
    return m


@pytest.fixture
def write_pack(tmp_path: Path):
    """Write a pack document to a file and return its path (messages then name a real file)."""
    def write(doc: Any, name: str = "pack.yaml") -> Path:
        path = tmp_path / name
        path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        return path
    return write


@pytest.fixture
def build(write_pack):
    """Load a pack built from table mappings."""
    def make(*mappings: dict[str, Any], **extra: Any) -> Pack:
        return load_pack(write_pack(pack_doc(*mappings, **extra)))
    return make


@pytest.fixture(scope="session")
def bc_sales() -> Pack:
    return load_pack(TEMPLATES / "bc-sales.yaml")


@pytest.fixture(scope="session")
def p2c() -> Pack:
    return load_pack(TEMPLATES / "prospect-to-cash.yaml")


@pytest.fixture(scope="session")
def fo_dataverse() -> Pack:
    return load_pack(TEMPLATES / "fo-dataverse.yaml")
