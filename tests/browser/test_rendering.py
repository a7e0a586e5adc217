"""The console's pure pieces: escaping (record data can hold markup), sparklines (a gap is not a zero), the
last hour summed from activity rows, and the Content-Security-Policy that lets exactly our inline script run."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
from dataclasses import dataclass

from shared.admin.identity import OPERATOR_ROLE, VIEWER_ROLE, Caller
from shared.console.activity import summarise
from shared.console.layout import Context, Page, action, asset, document, security_headers
from shared.console.markup import Html, el, esc, raw
from shared.console.overview import pause_buttons, state_badge
from shared.console.sparkline import points, sparkline

NOW = dt.datetime(2026, 3, 1, 12, 30, 20, tzinfo=dt.UTC)
OPERATOR = Caller("user", "1", "olga@contoso.example", frozenset({OPERATOR_ROLE}))
VIEWER = Caller("user", "2", "vik@contoso.example", frozenset({VIEWER_ROLE}))


def test_text_and_attributes_are_escaped_and_markup_is_kept() -> None:
    evil = '<img src=x onerror="alert(1)">'
    made = el("a", evil, href=f"errors?mapping={evil}", title=evil)
    assert "<img" not in made and made.count("<a ") == 1
    assert made == ('<a href="errors?mapping=&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" '
                    'title="&lt;img src=x onerror=&quot;alert(1)&quot;&gt;">&lt;img src=x onerror=&quot;alert(1)'
                    '&quot;&gt;</a>')
    nested = el("p", el("b", "bold"), " & ", raw("<i>ours</i>"), None, 3)
    assert nested == "<p><b>bold</b> &amp; <i>ours</i>3</p>"
    assert el("input", name="n", required=True, disabled=False, value=None) == '<input name="n" required>'
    assert el("td", class_="num", data_mapping="a") == '<td class="num" data-mapping="a"></td>'
    # Markup plus text escapes the text, so concatenating never turns data into markup.
    assert isinstance(esc("x") + "<y>", Html) and esc("x") + "<y>" == "x&lt;y&gt;"


def test_a_sparkline_scales_from_zero_and_breaks_at_gaps() -> None:
    runs = points([0, 10, None, 5, 5], width=104, height=24, pad=2)
    assert runs == [[(2.0, 22.0), (27.0, 2.0)], [(77.0, 12.0), (102.0, 12.0)]]
    assert points([None, None]) == []
    idle = points([0, 0, 0], width=10, height=10, pad=0)
    assert [y for _, y in idle[0]] == [10.0, 10.0, 10.0]  # all zero: on the baseline, not in the middle
    svg = sparkline([1, None, 3], label="customers: 4 <changes>", kind="changes")
    assert svg.startswith("<svg") and 'aria-label="customers: 4 &lt;changes&gt;"' in svg
    assert "<title>customers: 4 &lt;changes&gt;</title>" in svg
    assert svg.count("<polyline") == 0 and svg.count('class="dot"') == 2 and 'class="last"' in svg


@dataclass
class Minute:
    mapping: str
    direction: str
    at: dt.datetime
    changes: int
    failures: int
    lag_ms_sum: float
    lag_ms_max: float
    throttled: int = 0


def test_the_last_hour_adds_directions_and_instances_per_minute() -> None:
    minute = dt.datetime(2026, 3, 1, 12, 30, tzinfo=dt.UTC)
    rows = [Minute("customers", "to_crm", minute, 3, 0, 3000.0, 1500.0),
            Minute("customers", "to_erp", minute, 1, 1, 1000.0, 1000.0, throttled=2),   # another direction
            Minute("customers", "to_crm", minute - dt.timedelta(minutes=2), 2, 0, 400.0, 300.0),
            Minute("customers", "to_crm", minute - dt.timedelta(minutes=61), 9, 9, 9.0, 9.0),  # too old
            Minute("items", "to_crm", minute - dt.timedelta(minutes=59), 1, 0, 50.0, 50.0)]
    hour = summarise(rows, now=NOW)
    customers, items = hour["customers"], hour["items"]
    assert len(customers.changes) == 60 and customers.changes[-1] == 4 and customers.changes[-3] == 2
    assert customers.total_changes == 6 and customers.total_failures == 1 and customers.throttled == 2
    assert customers.lag_ms[-1] == 1000.0 and customers.lag_ms[-3] == 200.0 and customers.lag_ms[-2] is None
    assert customers.last_lag_ms == 1000.0 and customers.lag_max_ms == 1500.0
    assert items.changes[0] == 1 and items.total_changes == 1


def _hashes(directive: str, policy: str) -> set[str]:
    found = re.search(rf"{directive} ([^;]+)", policy)
    assert found, policy
    return set(found.group(1).split())


def test_the_policy_allows_exactly_the_inline_style_and_script_of_the_page() -> None:
    ctx = Context("/api/console", OPERATOR, "bc-sales 1.0.0")
    page = document(Page("Overview", el("p", "hello")), ctx)
    policy = security_headers()["Content-Security-Policy"]
    script = re.search(r"<script>(.*)</script>", page, re.S).group(1)  # type: ignore[union-attr]
    style = re.search(r"<style>(.*)</style>", page, re.S).group(1)  # type: ignore[union-attr]
    digest = lambda text: "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"  # noqa: E731
    assert _hashes("script-src", policy) == {digest(script)} and script == asset("console.js")
    assert _hashes("style-src", policy) == {digest(style)}
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    markup = re.sub(r"<(script|style)>.*?</\1>", "", page, flags=re.S)
    assert not re.search(r"\s(style|on[a-z]+)=", markup)  # no style attributes or inline handlers: both blocked
    assert security_headers()["Referrer-Policy"] == "no-referrer" and security_headers()["Cache-Control"] == "no-store"


def test_buttons_are_offered_to_operators_only() -> None:
    fields = {"mapping": "customers", "direction": "to_crm", "source_id": "a&b"}
    button = action(Context("/api/console", OPERATOR), "retry", "Retry", fields=fields)
    assert button.startswith('<form method="post" action="/api/console/actions/retry" class="inline">')
    assert '<input type="hidden" name="source_id" value="a&amp;b">' in button
    assert action(Context("/api/console", VIEWER), "retry", "Retry", fields=fields) == ""
    assert "viewer" in document(Page("x", el("p")), Context("/api/console", VIEWER))


def test_states_and_their_buttons() -> None:
    ops = Context("/api/console", OPERATOR)
    running = {"name": "customers", "kind": "table", "enabled": True, "state": "running", "paused": None}
    auto = {**running, "state": "auto-paused", "paused": {"reason": "25 failures in 10 min: <b>bad</b>",
                                                          "by": "auto-pause", "at": "2026-03-01T12:00:00Z"}}
    assert state_badge(running) == '<span class="state running">running</span>'
    badge = state_badge(auto)
    assert '<span class="state auto-paused" title="25 failures in 10 min: &lt;b&gt;bad&lt;/b&gt; — by auto-pause ' \
           'since 2026-03-01T12:00:00Z">auto-paused</span>' in badge
    assert '<span class="muted">25 failures in 10 min: &lt;b&gt;bad&lt;/b&gt;</span>' in badge
    assert 'action="/api/console/actions/pause"' in pause_buttons(ops, running) and 'name="reason"' in \
        pause_buttons(ops, running)
    assert 'action="/api/console/actions/resume"' in pause_buttons(ops, auto)
    assert state_badge({**running, "enabled": False}) == '<span class="state disabled">disabled</span>'
    assert pause_buttons(ops, {**running, "enabled": False}) == "" == pause_buttons(ops, {**running, "kind": "option"})
    assert pause_buttons(Context("/api/console", VIEWER), auto) == ""
