"""The chaos harness (bench/chaos.py, `make chaos` runs 10 000 operations) at 1 000 operations with a fixed
seed: people on both sides create, edit (bursts, both sides of one pair at once) and delete customers and
contacts while the emulators answer 429s, 5xx and hung requests, drop, duplicate, delay and reorder their
webhooks, a full sync is interrupted and resumed and the Functions host is killed and restarted. After the
product's own catch-up, both systems' stores must agree: no divergent pair, no duplicate, no lost update, no
orphan — and every error record left must name a rule an operator can act on, none a transient failure."""

from __future__ import annotations

from bench.chaos import render, run

OPERATIONS, RECORDS, SEED = 1000, 80, 11


async def test_a_thousand_operations_under_faults_converge_with_nothing_lost() -> None:
    verdict, tally, total = await run(OPERATIONS, RECORDS, SEED)
    report = render(verdict, tally, total, OPERATIONS, SEED)
    assert sum(tally.operations.values()) + tally.failed_operations == OPERATIONS, report
    assert tally.host_restarts >= 1, report
    injected = tally.injected
    assert all(injected[s]["delivery_counts"]["dropped"] and injected[s]["delivery_counts"]["duplicated"]
               for s in ("erp", "crm")), report  # the faults really ran
    assert verdict.pairs >= RECORDS, report
    assert (verdict.divergent, verdict.duplicates, verdict.lost, verdict.orphans) == ([], [], [], []), report
    transient = [text for text in verdict.error_records if "could not be synced yet" in text
                 or "service unavailable" in text or "another worker" in text]
    assert transient == [], report
