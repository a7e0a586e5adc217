"""The README's demo command runs the whole local story and exits 0 (kept true after every change)."""

from __future__ import annotations

from scripts import demo


def test_demo_runs_end_to_end(capsys) -> None:
    assert demo.main() == 0
    out = capsys.readouterr().out
    assert "⇐ Business Central" in out and "⇐ Dataverse" in out
    assert "demo failed" not in out
