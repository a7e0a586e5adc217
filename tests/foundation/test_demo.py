"""The README's demo command tells the whole local story and exits 0 (kept true after every change)."""

from __future__ import annotations

from scripts import demo


def test_demo_runs_end_to_end(capsys) -> None:
    assert demo.main() == 0
    out = capsys.readouterr().out
    assert "demo failed" not in out
    assert "Full sync · dry run" in out and "full sync (bc-sales)" in out
    assert "⇒ Sales" in out and "⇒ BC" in out                       # an edit on each side arrived
    assert out.count("echo suppressed") == 2 and "1 echo(es) dropped" in out
    assert "settled for erp (policy erp_wins)" in out and "both sides say Macon" in out
    assert "zero drift" in out and "every process the demo started has stopped" in out


def test_demo_failure_is_reported_with_a_non_zero_exit(capsys, monkeypatch) -> None:
    async def broken(sb: object) -> None:
        raise demo.DemoFailed("the BC customer never arrived")
    monkeypatch.setattr(demo, "story", broken)
    assert demo.main() == 1
    assert "demo failed: the BC customer never arrived" in capsys.readouterr().out
