"""The README's demo command tells the whole local story and exits 0 (kept true after every change)."""

from __future__ import annotations

from scripts import demo


def test_demo_runs_end_to_end(capsys) -> None:
    assert demo.main() == 0
    out = capsys.readouterr().out
    assert "demo failed" not in out
    assert "Full sync · dry run" in out and "full sync (bc-sales)" in out
    assert "⇒ Sales" in out and "⇒ BC" in out                       # an edit on each side arrived
    assert out.count("echo suppressed") == 3 and "1 echo(es) dropped" in out  # BC, Dataverse and F&O echoes
    assert "settled by policy erp_wins" in out and "for erp (entry" in out and "both sides say Macon" in out
    assert "every process the demo started has stopped" in out
    # Finance and Operations: dual-write, then Prospect to cash, each ending at zero drift.
    flat = " ".join(out.split())  # the console wraps long lines
    assert "full sync (fo-dataverse)" in flat and "full sync (prospect-to-cash)" in flat
    assert "account of company USMF" in flat and "⇒ F&O" in flat and "1 echo(es) dropped" in flat
    assert "became a contact person of C30001" in flat and "reached Sales as an order of Litware" in flat
    assert out.count("zero drift") == 3


def test_demo_failure_is_reported_with_a_non_zero_exit(capsys, monkeypatch) -> None:
    async def broken(sb: object) -> None:
        raise demo.DemoFailed("the BC customer never arrived")
    monkeypatch.setattr(demo, "story", broken)
    assert demo.main() == 1
    assert "demo failed: the BC customer never arrived" in capsys.readouterr().out
