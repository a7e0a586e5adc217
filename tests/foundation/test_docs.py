"""Every setting the app reads is documented (docs/cli.md is the configuration reference the README links)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from shared.settings import ENV_PREFIX, NESTED, Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def _names(model: type[BaseModel], prefix: str) -> set[str]:
    out: set[str] = set()
    for name, field in model.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            out |= _names(kind, f"{prefix}{name.upper()}{NESTED}")
        else:
            out.add(prefix + name.upper())
    return out


def test_every_setting_is_documented() -> None:
    documented = DOC.read_text(encoding="utf-8")
    names = _names(Settings, ENV_PREFIX)
    assert len(names) > 40
    assert sorted(n for n in names if f"`{n}`" not in documented) == []
