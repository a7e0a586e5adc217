"""Webhooks refuse bad input cheaply: size before parsing, JSON depth before recursion, the number of BC notices,
the media type; Dataverse's key only where its auth type puts it; refusals logged sampled, one line each."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.app_runtime import AppRuntime, install
from shared.mapping import load_pack
from shared.notices.intake import REFUSALS
from shared.notices.limits import MAX_DEPTH, check_media_type, check_size, json_depth, load_json
from shared.notices.model import NoticeError, TooLarge, UnsupportedMediaType
from shared.notices.refusals import RefusalLog, printable
from shared.settings import WebhookSettings
from tests.functions.test_notices import COMPANY, STATE, bc_body, bc_notice, dv_context
from tests.functions.test_webhooks import BC, DV, KEY, RecordingSender, hook_settings, request
from tests.sync.conftest import ROOT

BC_PATH, DV_PATH = "webhooks/business_central/customers", "webhooks/dataverse/accounts"


@pytest.fixture
def sender() -> Iterator[RecordingSender]:
    recorder = RecordingSender()
    previous = install(AppRuntime(settings=hook_settings(), pack=load_pack(ROOT / "templates" / "bc-sales.yaml"),
                                  sender=recorder))
    REFUSALS.reset()
    yield recorder
    install(previous)
    REFUSALS.reset()


def notices(n: int) -> bytes:
    return bc_body(*[bc_notice(resource=f"api/v2.0/companies({COMPANY})/customers(00000000-0000-4000-8000-"
                                        f"{i:012d})") for i in range(n)])


# ----- Business Central: bounded before the body is trusted
async def test_a_4kb_deeply_nested_body_is_a_400_not_a_500(sender: RecordingSender) -> None:
    for body in (b"[" * 4096, b'{"value":' * 1400 + b"1" + b"}" * 1400, b'{"value": [' + b"[" * 4000 + b"]"):
        response = await BC(request(BC_PATH, body))
        assert response.status_code == 400 and b"deeper than 32" in response.get_body()
    assert sender.sent == []


async def test_a_10mb_body_is_refused_by_size_before_it_is_parsed(sender: RecordingSender) -> None:
    big = b"x" * (10 * 1024 * 1024)  # not JSON: a 400 would mean it was parsed
    for headers in ({"Content-Length": str(len(big))}, {}, {"Content-Length": "12"}):  # honest, missing, a lie
        response = await BC(request(BC_PATH, big, headers=headers))
        assert response.status_code == 413, headers
    # The declared length alone is enough: the body is not looked at.
    response = await BC(request(BC_PATH, bc_body(bc_notice()), headers={"Content-Length": str(10**7)}))
    assert response.status_code == 413 and sender.sent == []


async def test_bc_notices_beyond_the_limit_are_413_and_the_largest_batch_bc_sends_fits(
        sender: RecordingSender) -> None:
    defaults = WebhookSettings()
    assert defaults.max_body_bytes < 1024 * 1024 and defaults.max_notices == 1000 and defaults.max_json_depth == 32
    largest = notices(defaults.max_notices)  # BC sends a `collection` notice rather than more
    assert len(largest) < defaults.max_body_bytes
    response = await BC(request(BC_PATH, largest, headers={"Content-Type": "application/json"}))
    assert response.status_code == 202 and len(sender.sent) == defaults.max_notices
    sender.sent.clear()
    response = await BC(request(BC_PATH, notices(defaults.max_notices + 1)))
    assert response.status_code == 413 and b"more than 1000 notices" in response.get_body()
    assert sender.sent == []


@pytest.mark.parametrize(("media", "status"), [("text/plain", 415), ("application/xml", 415),
                                               ("application/json; charset=utf-16", 415),
                                               ("application/json; charset=UTF-8", 202),
                                               ("application/vnd.api+json", 202)])
async def test_the_media_type_is_checked_when_declared(sender: RecordingSender, media: str, status: int) -> None:
    response = await BC(request(BC_PATH, bc_body(bc_notice()), headers={"Content-Type": media}))
    assert response.status_code == status


async def test_a_non_numeric_content_length_is_a_400(sender: RecordingSender) -> None:
    for value in ("abc", "-1", "1e3", "١٢"):  # the last: Arabic-Indic digits, which str.isdigit accepts
        response = await BC(request(BC_PATH, bc_body(bc_notice()), headers={"Content-Length": value}))
        assert response.status_code == 400, value


# ----- Dataverse: the key (outside the body) first
async def test_dataverse_checks_the_key_before_the_body(sender: RecordingSender) -> None:
    big = b"[" * (600 * 1024)
    assert (await DV(request(DV_PATH, big))).status_code == 401  # nothing about the body is said to a stranger
    assert (await DV(request(DV_PATH, big, headers={"x-api-key": KEY}))).status_code == 413
    assert (await DV(request(DV_PATH, b"[" * 4096, headers={"x-api-key": KEY}))).status_code == 400
    assert sender.sent == []


async def test_a_refusal_quoting_the_request_stays_one_line_without_secrets(
        sender: RecordingSender, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    context = dv_context(PrimaryEntityName=f"x\r\nERROR forged line {KEY} {STATE}")
    response = await DV(request(DV_PATH, json.dumps(context).encode(), headers={"x-api-key": KEY}))
    assert response.status_code == 400
    [line] = [r.getMessage() for r in caplog.records if r.name == "shared.notices.intake"]
    assert "\n" not in line and "\\r\\n" in line and KEY not in line and STATE not in line
    assert KEY not in response.get_body().decode()


# ----- sampled refusal logs
async def test_a_flood_of_forged_requests_is_counted_not_logged_one_line_each(
        sender: RecordingSender, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    forged = bc_body(bc_notice(clientState="guess"))
    for _ in range(2500):
        assert (await BC(request(BC_PATH, forged))).status_code == 401
    lines = [r.getMessage() for r in caplog.records if r.name == "shared.notices.intake"]
    assert len(lines) == 3  # the first, then one per 1000
    assert "webhook refused (401)" in lines[0] and all("1000 more" in line for line in lines[1:])
    assert sender.sent == []


def test_the_sampler_logs_the_first_then_per_count_or_per_minute() -> None:
    logger = logging.getLogger("tests.refusals")
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    handler = Keep()
    logger.addHandler(handler)
    now = [0.0]
    log = RefusalLog(logger, every=100, interval_s=60.0, clock=lambda: now[0])
    try:
        for _ in range(250):
            log.refused("dataverse", "accounts", 401, "bad key")
        log.refused("dataverse", "accounts", 400, "not JSON")  # another kind: its own first line
        now[0] = 61.0
        log.refused("dataverse", "accounts", 401, "bad key")  # a minute later: the 49 since are reported
    finally:
        logger.removeHandler(handler)
    assert records[0].endswith("webhook refused (401): bad key")
    assert ["100 more" in r for r in records[1:3]] == [True, True]
    assert records[3].endswith("webhook refused (400): not JSON")
    assert "50 more" in records[4] and len(records) == 5
    counted = [int(r.split(": ")[1].split()[0]) if "more" in r else 1 for r in records if "(401)" in r]
    assert sum(counted) == 251  # every refusal is counted in exactly one line


def test_printable_escapes_control_characters_and_masks_secrets() -> None:
    assert printable("a\r\nb\x00\u202e", ()) == "a\\r\\nb\\x00\\u202e"
    assert printable("key k3y-value here", ["k3y-value", ""]) == "key *** here"


# ----- the depth scan and the JSON loader
_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab\n', max_size=8),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                         st.text(alphabet='[]{}"\\k', max_size=4), inner, max_size=3), max_leaves=20)


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


@given(_json, st.sampled_from([None, 2]))
def test_the_depth_scan_counts_what_json_nests_and_ignores_brackets_in_strings(value: Any, indent: int | None) -> None:
    assert json_depth(json.dumps(value, indent=indent)) == _depth(value)


@given(st.text(alphabet='[]{}"\\a,:1 ', max_size=60))
def test_any_text_loads_or_is_a_notice_error(text: str) -> None:
    with contextlib.suppress(NoticeError):  # anything else (RecursionError, TypeError…) fails the test
        load_json(text.encode(), max_depth=4)


def test_load_json_refuses_what_python_would_guess_or_recurse_on() -> None:
    with pytest.raises(NoticeError, match="UTF-8"):
        load_json(json.dumps({"a": 1}).encode("utf-16"))
    with pytest.raises(NoticeError, match="deeper"):
        load_json(b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1))
    assert load_json(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) == json.loads("[" * MAX_DEPTH + "]" * MAX_DEPTH)
    with pytest.raises(NoticeError, match="not JSON"):
        load_json(b"1" * 5000)  # more digits than int() converts


def test_size_and_media_checks_raise_their_statuses() -> None:
    with pytest.raises(TooLarge) as too_large:
        check_size({"content-length": "2048"}, b"", 1024)
    with pytest.raises(UnsupportedMediaType) as media:
        check_media_type({"content-type": "text/html"})
    assert (too_large.value.status, media.value.status) == (413, 415)
    check_size({"content-length": "1024"}, b"x" * 1024, 1024)
    check_media_type({})
