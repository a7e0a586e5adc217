"""Each webhook, driven as the Functions host drives it (`make_handler` with a `func.HttpRequest`), with 1000
generated requests: valid ones, mutated ones (a field replaced by any JSON or by injection text), garbage,
deep nesting, oversized bodies with an honest, lying, missing or non-numeric Content-Length, other media
types, and the secret right, missing, forged, of the wrong type or in the wrong place.

Each request's expected answer follows from how it was generated: never a 5xx, nothing queued unless the
request was valid and authenticated, and no secret in any log line (every refusal is logged here, not
sampled, so that the check sees every line the app could write).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import azure.functions as func
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import event as tally
from hypothesis import strategies as st

from functions.webhooks import make_handler
from shared.app_runtime import AppRuntime, install
from shared.mapping import Side, System, load_pack
from shared.notices import WebhookSource
from shared.notices.intake import REFUSALS
from shared.settings import Settings, load_settings
from tests.functions.test_fo_notices import event
from tests.functions.test_notices import COMPANY, STATE, bc_notice, dv_context
from tests.functions.test_webhooks import RecordingSender
from tests.sync.conftest import ROOT

DV_KEY, FO_KEY = "dv-K3y-77ab", "fo-K3y-c0de"
SECRETS = (STATE, DV_KEY, FO_KEY)
MAX_BYTES, MAX_NOTICES = 16 * 1024, 20  # small limits: oversized bodies stay cheap to generate
FUZZ = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                        HealthCheck.too_slow])
INJECTION = st.sampled_from(["'; DROP TABLE customers;--", "\r\nX-Injected: 1", "../../etc/passwd", "%00", "\x00",
                             "<script>alert(1)</script>", "${jndi:ldap://x/a}", "\u202e", "' or 1 eq 1 or '",
                             ")(", "companies(x)/customers(y)", "%27%29", "\\", '"', *SECRETS]) | st.text(max_size=24)
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=16),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                 max_size=3), max_leaves=8)


@dataclass(frozen=True)
class Case:
    kind: str            # valid, mutated, garbage, deep, oversized, many (BC: more notices than allowed)
    body: bytes
    auth: str            # "right" or how it is wrong
    length: str          # Content-Length: honest, missing, small (a lie), large (a lie), nan
    media: str | None    # Content-Type, or None

    def headers(self) -> dict[str, str]:
        value = {"honest": str(len(self.body)), "small": "10", "large": str(MAX_BYTES * 4),
                 "nan": "12; drop"}.get(self.length)
        return {**({"Content-Length": value} if value else {}), **({"Content-Type": self.media} if self.media else {})}

    def cheap_refusal(self) -> int | None:
        """The answer of the checks that come before parsing, or None when they pass."""
        if self.length == "nan":
            return 400
        if self.length == "large" or len(self.body) > MAX_BYTES:
            return 413
        if self.media is not None and (not self.media.startswith("application/json") or "utf-16" in self.media):
            return 415
        return None


def _mutate(doc: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    return {**doc, key: value}


def _deep(draw: st.DrawFn) -> bytes:
    depth = draw(st.integers(min_value=33, max_value=20_000))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}"), ('{"value":[', "]}")]))
    return (opener * depth + "1" + closer * draw(st.sampled_from([depth, 0]))).encode()


@st.composite
def cases(draw: st.DrawFn, valid: Callable[[st.DrawFn], dict[str, Any]], auths: list[str]) -> Case:
    kind = draw(st.sampled_from(["valid", "valid", "mutated", "mutated", "garbage", "deep", "oversized", "many"]))
    doc = valid(draw)
    if kind == "valid":
        body = json.dumps(doc).encode()
    elif kind == "mutated":
        target = doc["value"][0] if "value" in doc else doc
        key = draw(st.sampled_from(sorted(target)))
        target[key] = draw(INJECTION | JSON)
        body = json.dumps(doc).encode()
    elif kind == "garbage":
        body = draw(st.binary(max_size=200) | JSON.map(lambda v: json.dumps(v).encode()))
    elif kind == "deep":
        body = _deep(draw)
    elif kind == "oversized":
        body = json.dumps(_mutate(doc, "padding", "x" * draw(st.integers(MAX_BYTES, 3 * MAX_BYTES)))).encode()
    else:  # many: BC notices past the limit; for the others, a JSON array of what should be one object
        body = json.dumps({"value": doc["value"] * (MAX_NOTICES + 1)} if "value" in doc else [doc] * 3).encode()
    length = draw(st.sampled_from(["honest", "honest", "honest", "missing", "small", "large", "nan"]))
    media = draw(st.sampled_from(["application/json", "application/json; charset=utf-8", None, "text/xml",
                                  "application/x-www-form-urlencoded", "application/json; charset=utf-16"]))
    return Case(kind, body, draw(st.sampled_from(auths)), length, media)


def hook_settings(erp: dict[str, Any]) -> Settings:
    return load_settings(storage={"connection_string": "UseDevelopmentStorage=true"}, erp=erp,
                         crm={"tenant_id": "t", "client_id": "c", "base_url": "http://dv.test"},
                         webhooks={"bc_client_state": STATE, "dataverse_key": DV_KEY, "fo_key": FO_KEY,
                                   "max_body_bytes": MAX_BYTES, "max_notices": MAX_NOTICES})


BC_ERP = {"tenant_id": "t", "client_id": "c", "company_id": COMPANY}
FO_ERP = {"kind": "finance_operations", "tenant_id": "t", "client_id": "c", "base_url": "https://fo.test"}


@pytest.fixture
def every_refusal_logged() -> Iterator[None]:
    every, REFUSALS.every = REFUSALS.every, 1
    REFUSALS.reset()
    yield
    REFUSALS.every = every
    REFUSALS.reset()


@functools.cache
def runtime(erp_kind: str) -> tuple[AppRuntime, RecordingSender]:
    """One runtime per ERP kind for all examples (loading a pack per example would dominate the run)."""
    erp, pack = (FO_ERP, "fo-dataverse.yaml") if erp_kind == "finance_operations" else (BC_ERP, "bc-sales.yaml")
    sender = RecordingSender()
    return AppRuntime(settings=hook_settings(erp), pack=load_pack(ROOT / "templates" / pack), sender=sender), sender


def fresh(erp_kind: str) -> tuple[AppRuntime, RecordingSender]:
    app, sender = runtime(erp_kind)
    sender.sent.clear()
    return app, sender


def drive(handler: Callable[[func.HttpRequest], Awaitable[func.HttpResponse]], app: AppRuntime, path: str,
          case: Case, params: dict[str, str], headers: dict[str, str]) -> int:
    previous = install(app)
    try:
        response = asyncio.run(handler(func.HttpRequest(method="POST", url=f"http://localhost/api/{path}",
                                                        params=params, headers={**case.headers(), **headers},
                                                        body=case.body)))
    finally:
        install(previous)
    return response.status_code


def check_logs(caplog: pytest.LogCaptureFixture, case: Case, status: int) -> None:
    tally(f"{case.kind} -> {status}")  # --hypothesis-show-statistics: every kind of request reaches its answer
    for record in caplog.records:
        line = record.getMessage()
        assert not any(secret in line for secret in SECRETS), line
        assert "\n" not in line and "\r" not in line, line  # one request, one line: no forged log lines


# ----- Business Central: the clientState is inside every notice
def bc_valid(draw: st.DrawFn) -> dict[str, Any]:
    records = draw(st.lists(st.uuids(), min_size=1, max_size=3))
    return {"value": [bc_notice(resource=f"api/v2.0/companies({COMPANY})/customers({r})",
                                changeType=draw(st.sampled_from(["created", "updated", "deleted"])))
                      for r in records]}


BC_AUTHS = ["right", "right", "missing", "forged", "number", "list", "one-wrong", "prefix"]


def bc_with_auth(case: Case) -> Case:
    if case.auth == "right" or case.kind not in ("valid", "mutated", "many", "oversized"):
        return case
    doc = json.loads(case.body)
    items = doc["value"] if isinstance(doc, dict) and isinstance(doc.get("value"), list) else []
    wrong = {"missing": None, "forged": "guess", "number": 12, "list": [STATE], "one-wrong": STATE + " ",
             "prefix": STATE[:-1]}[case.auth]
    for item in items[-1:] if case.auth == "one-wrong" else items:
        if isinstance(item, dict):
            item.pop("clientState", None) if wrong is None else item.__setitem__("clientState", wrong)
    return Case(case.kind, json.dumps(doc).encode(), case.auth, case.length, case.media)


BC = make_handler(WebhookSource(System.BUSINESS_CENTRAL, Side.ERP, "customers"))


@FUZZ
@given(case=cases(bc_valid, BC_AUTHS).map(bc_with_auth))
def test_business_central_webhook_fuzz(case: Case, every_refusal_logged: None,
                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    app, sender = fresh("business_central")
    status = drive(BC, app, "webhooks/business_central/customers", case, {}, {})
    cheap = case.cheap_refusal()
    if cheap is not None:
        assert status == cheap
    elif case.kind in ("deep", "oversized"):
        assert status == (413 if case.kind == "oversized" else 400)
    elif case.kind == "many":
        assert status == 413
    elif case.kind == "valid":
        assert status == (202 if case.auth == "right" else 401), case
    elif case.kind == "garbage":
        assert status in (400, 401), status  # 401: a JSON `{"value": [{…}]}` without the clientState
    else:
        assert status in (202, 400, 401), status
    if status != 202:
        assert sender.sent == []
    else:
        assert case.kind in ("valid", "mutated") and case.auth == "right", case
        assert sender.sent or case.kind == "mutated"
    check_logs(caplog, case, status)


# ----- Dataverse: the key in the place the service endpoint's auth type puts it (a header here)
def dv_valid(draw: st.DrawFn) -> dict[str, Any]:
    record = str(draw(st.uuids()))
    doc = dv_context(PrimaryEntityId=record,
                     MessageName=draw(st.sampled_from(["Create", "Update", "Delete", "Assign"])))
    doc["InputParameters"][0]["value"]["Id"] = record
    return doc


DV_AUTHS = {"right": ({"x-api-key": DV_KEY}, {}), "upper-name": ({"X-API-KEY": DV_KEY}, {}),
            "missing": ({}, {}), "forged": ({"x-api-key": "guess"}, {}), "suffix": ({"x-api-key": DV_KEY + "x"}, {}),
            "as-code": ({}, {"code": DV_KEY}), "as-param": ({}, {"key": DV_KEY}),
            "other-header": ({"authorization": DV_KEY}, {})}
DV = make_handler(WebhookSource(System.DATAVERSE, Side.CRM, "accounts"))


@FUZZ
@given(case=cases(dv_valid, [*DV_AUTHS, "right", "right", "right"]))  # weighted: the body checks need the key
def test_dataverse_webhook_fuzz(case: Case, every_refusal_logged: None, caplog: pytest.LogCaptureFixture) -> None:
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    app, sender = fresh("business_central")
    headers, params = DV_AUTHS[case.auth]
    status = drive(DV, app, "webhooks/dataverse/accounts", case, params, headers)
    authenticated = case.auth in ("right", "upper-name")
    expected_plain(case, status, authenticated, sender)
    check_logs(caplog, case, status)


# ----- Finance and Operations: the key as ?code= or in the header
def fo_valid(draw: st.DrawFn) -> dict[str, Any]:
    doc = event(draw(st.sampled_from(["Create", "Update", "Delete"])),
                ControlNumber=draw(st.integers(0, 2**53)))
    attributes = doc["InputParameters"][0]["value"]["Attributes"]
    attributes[1] = {"key": "CustomerAccount", "value": draw(INJECTION.filter(bool))}  # any text is a key value
    return doc


FO_AUTHS = {"code": ({}, {"code": FO_KEY}), "header": ({"x-api-key": FO_KEY}, {}), "missing": ({}, {}),
            "forged": ({}, {"code": "guess"}), "prefix": ({"x-api-key": FO_KEY[:-1]}, {}),
            "as-param": ({}, {"key": FO_KEY}), "dv-key": ({}, {"code": DV_KEY})}
FO = make_handler(WebhookSource(System.FINANCE_OPERATIONS, Side.ERP, "CustomersV3"))


@FUZZ
@given(case=cases(fo_valid, [*FO_AUTHS, "code", "code", "header"]))
def test_finance_operations_webhook_fuzz(case: Case, every_refusal_logged: None,
                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    app, sender = fresh("finance_operations")
    headers, params = FO_AUTHS[case.auth]
    status = drive(FO, app, "webhooks/finance_operations/CustomersV3", case, params, headers)
    expected_plain(case, status, case.auth in ("code", "header"), sender)
    check_logs(caplog, case, status)


def expected_plain(case: Case, status: int, authenticated: bool, sender: RecordingSender) -> None:
    """Dataverse and F&O: the secret (outside the body) first, then the cheap checks, then the body."""
    cheap = case.cheap_refusal()
    if not authenticated:
        assert status == 401
    elif cheap is not None:
        assert status == cheap
    elif case.kind in ("deep", "oversized", "many", "garbage"):
        assert status == (413 if case.kind == "oversized" else 400), (case.kind, status)
    elif case.kind == "valid":
        assert status == 202
    else:
        assert status in (202, 400), status
    if status != 202:
        assert sender.sent == []
    elif case.kind == "valid":
        assert sender.sent  # no echo is generated: a valid notice of an unfiltered record is queued
