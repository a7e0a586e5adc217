"""The long runs' progress in records (full sync, match coupling, reconcile), against both emulators and
Azurite: on a terminal the display counts records page by page, with the rate, and a total estimated from
the last full run; the summary table gives each run's records, time and rate; off a terminal nothing is
drawn."""

from __future__ import annotations

import io
import json
import re

import pytest
from rich.console import Console

from shared.cli import progress
from shared.cli.progress import RecordProgress
from shared.mapping import Direction
from shared.sync.full import Progress
from tests.cli.conftest import dualsync, rows

# Rich's live display redraws in place; what a person sees is each redraw's text.
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """The progress display's console, as a terminal whose screen is a buffer."""
    screen = io.StringIO()
    monkeypatch.setattr(progress, "err", Console(file=screen, force_terminal=True, width=160))
    return screen


def drawn(screen: io.StringIO) -> str:
    return ANSI.sub("", screen.getvalue())


def test_full_sync_shows_records_and_an_estimate_from_the_last_run(cli_env, bc_admin, terminal):
    company = cli_env["DUALSYNC_ERP__COMPANY_ID"]
    currencies = [c for c in rows(bc_admin, "currencies") if c["_companyId"] == company and c["code"]]
    first = dualsync("sync", "full", "-m", "currencies", "--couple-only")
    assert first.exit_code == 0, first.output
    screen = drawn(terminal)
    assert "currencies to_crm" in screen and "~" not in screen  # no earlier run: a count, no total …
    assert re.search(r"currencies to_crm \S+ 0 records", screen)
    assert f"{len(currencies)}/{len(currencies)} records" in screen  # … until the run ends
    # The summary: each run's records, time and rate.
    assert re.search(r"records\s*┃\s*time\s*┃\s*rate", first.stdout)
    assert re.search(rf"│\s*{len(currencies)}\s*│\s*[\d.]+ s\s*│\s*[\d ]+/s", first.stdout)

    terminal.truncate(0)
    terminal.seek(0)
    again = dualsync("sync", "full", "-m", "currencies", "--couple-only")
    assert again.exit_code == 0, again.output
    # The first run's job says how many records to expect (those it counted): a total, estimated, from the
    # start; the run goes through more (records it ignores, which its job does not count) and raises it.
    screen = drawn(terminal)
    assert re.search(r"currencies to_crm \S+ 0/~\d+ records", screen)
    assert f"{len(currencies)}/~{len(currencies)} records" in screen


def test_match_and_reconcile_show_records_too(cli_env, terminal):
    matched = dualsync("couple", "-m", "currencies", "--match", "--dry-run")
    assert matched.exit_code == 0, matched.output
    assert "currencies to_crm" in drawn(terminal) and "records" in drawn(terminal)
    assert "rate" in matched.stdout

    terminal.truncate(0)
    terminal.seek(0)
    checked = dualsync("reconcile", "-m", "currencies", "-m", "units-of-measure", "--json")
    reports = json.loads(checked.stdout)["reports"]
    assert [r["mapping"] for r in reports] == ["currencies", "units-of-measure"]
    screen = drawn(terminal)
    for r in reports:
        assert f"{r['mapping']} (both sides)" in screen
        assert f"{r['checked']['erp'] + r['checked']['crm']} records" in screen
    table = dualsync("reconcile", "-m", "currencies")
    assert re.search(r"in [\d.]+ s, [\d ]+/s", table.stdout)


def test_nothing_is_drawn_off_a_terminal(cli_env):
    result = dualsync("sync", "full", "-m", "currencies", "--couple-only", "--dry-run")
    assert result.exit_code == 0 and result.stderr == ""


def test_the_estimate_grows_when_a_run_finds_more_records() -> None:
    screen = io.StringIO()
    shown = RecordProgress(Console(file=screen, force_terminal=True, width=160),
                           estimates={("customers", "to_crm"): 10})
    with shown:
        shown.full(Progress("customers", Direction.TO_CRM, 0))
        shown.full(Progress("customers", Direction.TO_CRM, 8))
        shown.display.refresh()
        assert "8/~10 records" in drawn(screen)
        shown.full(Progress("customers", Direction.TO_CRM, 12))
        shown.display.refresh()
        assert "12/~12 records" in drawn(screen)
        shown.full(Progress("customers", Direction.TO_CRM, 15, finished=True))
    run = shown.runs[("customers", "to_crm")]
    assert run.records == 15 and run.seconds is not None and run.rate is not None
