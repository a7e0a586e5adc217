"""Multipart $batch: change sets atomic (rollback, no events), Content-ID, stop-on-error, continue-on-error."""

from __future__ import annotations

import json

import httpx

from emulators.common.multipart import boundary_of, split_parts
from emulators.finance_operations.core import Emulator
from tests.emulators.finance_operations.conftest import DATA


def _op(method: str, url: str, body: dict[str, object] | None = None, cid: int | None = None) -> str:
    head = "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
    if cid is not None:
        head += f"Content-ID: {cid}\r\n"
    req = f"{method} {url} HTTP/1.1\r\nContent-Type: application/json\r\n\r\n"
    return head + "\r\n" + req + (json.dumps(body) if body is not None else "")


def _body(items: list[str | list[str]]) -> bytes:
    out = ""
    for item in items:
        if isinstance(item, list):
            inner = "".join(f"--cs\r\n{p}\r\n" for p in item) + "--cs--"
            out += f"--b\r\nContent-Type: multipart/mixed; boundary=cs\r\n\r\n{inner}\r\n"
        else:
            out += f"--b\r\n{item}\r\n"
    return (out + "--b--\r\n").encode()


async def _post(fo: httpx.AsyncClient, items: list[str | list[str]], prefer: str | None = None) -> list[str]:
    headers = {"Content-Type": "multipart/mixed; boundary=b"}
    if prefer:
        headers["Prefer"] = prefer
    r = await fo.post("$batch", content=_body(items), headers=headers)
    assert r.status_code == 200, r.text
    boundary = boundary_of(r.headers["content-type"])
    assert boundary
    statuses = []
    for part in split_parts(r.content, boundary):
        inner = boundary_of(part.headers.get("content-type", ""))
        for p in split_parts(part.body, inner) if inner else [part]:
            statuses.append(p.body.split(b"\r\n", 1)[0].decode())
    return statuses


CUST = "CustomersV3(dataAreaId='usmf',CustomerAccount='US-000001')"


async def test_batch_mixed_urls_and_changeset(fo: httpx.AsyncClient) -> None:
    statuses = await _post(fo, [
        _op("GET", f"{DATA}/{CUST}"),
        _op("GET", "Currencies('USD')"),
        [_op("POST", "/data/CustomersV3", {"CustomerGroupId": "10", "OrganizationName": "In batch"}, cid=1),
         _op("PATCH", "$1", {"NameAlias": "ref"}, cid=2),
         _op("PATCH", CUST, {"NameAlias": "batched"}, cid=3)],
    ])
    assert [s.split()[1] for s in statuses] == ["200", "200", "201", "204", "204"]
    assert (await fo.get(CUST)).json()["NameAlias"] == "batched"
    made = (await fo.get("CustomersV3", params={"$filter": "OrganizationName eq 'In batch'"})).json()["value"]
    assert made[0]["NameAlias"] == "ref"


async def test_changeset_failure_rolls_back_and_stops(fo: httpx.AsyncClient, emu: Emulator) -> None:
    before = len(emu.store.changes)
    statuses = await _post(fo, [
        [_op("PATCH", CUST, {"NameAlias": "never"}, cid=1),
         _op("POST", "CustomersV3", {"OrganizationName": "no group"}, cid=2)],
        _op("GET", "Currencies('USD')"),
    ])
    assert [s.split()[1] for s in statuses] == ["400"]  # the failing operation's answer; then processing stops
    assert (await fo.get(CUST)).json()["NameAlias"] != "never"
    assert len(emu.store.changes) == before


async def test_continue_on_error(fo: httpx.AsyncClient) -> None:
    statuses = await _post(fo, [
        _op("PATCH", "CustomersV3(dataAreaId='usmf',CustomerAccount='NOPE')", {"NameAlias": "x"}),
        _op("PATCH", CUST, {"NameAlias": "after failure"}),
    ], prefer="odata.continue-on-error")
    assert [s.split()[1] for s in statuses] == ["404", "204"]
    assert (await fo.get(CUST)).json()["NameAlias"] == "after failure"


async def test_batch_refusals(fo: httpx.AsyncClient, emu: Emulator) -> None:
    r = await fo.post("$batch", content=b"{}", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    emu.settings.max_batch_requests = 2
    r = await fo.post("$batch", content=_body([_op("GET", "Currencies")] * 3),
                      headers={"Content-Type": "multipart/mixed; boundary=b"})
    assert r.status_code == 400
