"""Multipart $batch: format, change sets (atomic, $n references), stop-on-error, continue-on-error, limits."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulators.common.multipart import (
    MultipartError,
    boundary_of,
    multipart,
    parse_request,
    response_part,
    split_parts,
)
from emulators.dataverse.core import Emulator
from tests.emulators.dataverse.conftest import API, BASE


def op(method: str, url: str, body: dict | None = None, content_id: str | None = None,
       headers: dict[str, str] | None = None) -> str:
    head = "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
    if content_id:
        head += f"Content-ID: {content_id}\r\n"
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    if body is None:
        return f"{head}\r\n{method} {url} HTTP/1.1\r\n{extra}\r\n"
    return (f"{head}\r\n{method} {url} HTTP/1.1\r\nContent-Type: application/json; type=entry\r\n{extra}\r\n"
            f"{json.dumps(body)}")


def batch(items: list[str | list[str]], boundary: str = "batch_AAA123") -> tuple[bytes, dict[str, str]]:
    out = []
    for n, item in enumerate(items):
        if isinstance(item, list):
            cs = f"changeset_{n}"
            inner = "".join(f"--{cs}\r\n{p}\r\n" for p in item) + f"--{cs}--"
            out.append(f"--{boundary}\r\nContent-Type: multipart/mixed; boundary={cs}\r\n\r\n{inner}\r\n")
        else:
            out.append(f"--{boundary}\r\n{item}\r\n")
    body = "".join(out) + f"--{boundary}--\r\n"
    return body.encode(), {"Content-Type": f'multipart/mixed; boundary="{boundary}"'}


def parse_response(r: httpx.Response) -> list[tuple[int, dict[str, str], bytes]]:
    """Flatten the multipart answer into (status, part headers + http headers, body) per operation."""
    boundary = boundary_of(r.headers["content-type"])
    assert boundary and boundary.startswith("batchresponse_")
    out = []
    for part in split_parts(r.content, boundary):
        inner = boundary_of(part.headers.get("content-type", ""))
        parts = split_parts(part.body, inner) if inner else [part]
        if inner:
            assert inner.startswith("changesetresponse_")
        for p in parts:
            assert p.headers["content-type"] == "application/http"
            assert p.headers["content-transfer-encoding"] == "binary"
            status_line, _, rest = p.body.partition(b"\r\n")
            m = re.fullmatch(rb"HTTP/1\.1 (\d{3}) [A-Za-z ]+", status_line)
            assert m, status_line
            head, _, body = rest.partition(b"\r\n\r\n")
            headers = dict(p.headers)
            for line in head.decode().split("\r\n"):
                if line:
                    k, _, v = line.partition(":")
                    headers[k.strip().lower()] = v.strip()
            out.append((int(m.group(1)), headers, body.strip()))
    return out


async def test_change_set_with_references_in_url_and_bind(dv: httpx.AsyncClient, emu: Emulator) -> None:
    body, headers = batch([
        [op("POST", f"{API}/accounts", {"name": "Batch Co", "accountnumber": "B-1"}, "1"),
         op("POST", f"{BASE}{API}/contacts",
            {"lastname": "Batchman", "parentcustomerid_account@odata.bind": "$1"}, "2"),
         op("PATCH", "$1", {"primarycontactid@odata.bind": "$2"}, "3")],
        op("GET", f"{API}/accounts(accountnumber='B-1')?$select=name,_primarycontactid_value"),
    ])
    r = await dv.post("$batch", content=body, headers=headers)
    assert r.status_code == 200
    results = parse_response(r)
    assert [s for s, _, _ in results] == [204, 204, 204, 200]
    assert [h.get("content-id") for _, h, _ in results[:3]] == ["1", "2", "3"]
    account_url = results[0][1]["odata-entityid"]
    assert re.fullmatch(rf"{BASE}{API}/accounts\([0-9a-f-]{{36}}\)", account_url)
    contact_id = results[1][1]["odata-entityid"].rsplit("(", 1)[1][:-1]
    got = json.loads(results[3][2])
    assert got["_primarycontactid_value"] == contact_id
    assert emu.store.table("contacts").find(contact_id)["_parentcustomerid_value"] == got["accountid"]


async def test_failed_change_set_rolls_back_everything(dv: httpx.AsyncClient, emu: Emulator) -> None:
    before = len(emu.store.table("accounts"))
    seq = emu.store.current_seq()
    body, headers = batch([[op("POST", "accounts", {"name": "Rolled back"}, "1"),
                            op("POST", "accounts", {"name": "Bad", "nosuch": 1}, "2")]])
    r = await dv.post("$batch", content=body, headers=headers)
    assert r.status_code == 400
    (status, h, err), = parse_response(r)
    assert status == 400 and h["content-id"] == "2" and json.loads(err)["error"]["code"] == "0x80060888"
    assert len(emu.store.table("accounts")) == before and emu.store.current_seq() == seq


async def test_stops_at_first_error_without_continue_on_error(dv: httpx.AsyncClient, emu: Emulator) -> None:
    body, headers = batch([op("POST", "accounts", {"name": "One"}), op("POST", "accounts", {"bad": 1}),
                           op("POST", "accounts", {"name": "Three"})])
    r = await dv.post("$batch", content=body, headers=headers)
    assert r.status_code == 400
    assert [s for s, _, _ in parse_response(r)] == [204, 400]
    names = {a["name"] for a in emu.store.table("accounts").all()}
    assert "One" in names and "Three" not in names


async def test_continue_on_error_runs_everything(dv: httpx.AsyncClient, emu: Emulator) -> None:
    body, headers = batch([op("POST", "accounts", {"bad": 1}), op("POST", "accounts", {"name": "After error"}),
                           [op("POST", "accounts", {"name": "In set", "nosuch": 2}, "1")]])
    r = await dv.post("$batch", content=body, headers={**headers, "Prefer": "odata.continue-on-error"})
    assert r.status_code == 200 and r.headers["Preference-Applied"] == "odata.continue-on-error"
    assert [s for s, _, _ in parse_response(r)] == [400, 204, 400]
    assert "After error" in {a["name"] for a in emu.store.table("accounts").all()}


async def test_reads_and_return_representation_inside_batch(dv: httpx.AsyncClient) -> None:
    body, headers = batch([op("POST", "accounts", {"name": "Rep"}, headers={"Prefer": "return=representation"}),
                           op("GET", "accounts?$top=2&$select=name")])
    results = parse_response(await dv.post("$batch", content=body, headers=headers))
    assert results[0][0] == 201 and json.loads(results[0][2])["name"] == "Rep"
    assert results[1][0] == 200 and len(json.loads(results[1][2])["value"]) == 2


async def test_get_inside_change_set_and_unknown_reference_fail(dv: httpx.AsyncClient) -> None:
    body, headers = batch([[op("GET", "accounts", content_id="1")]])
    assert (await dv.post("$batch", content=body, headers=headers)).status_code == 400
    bad_ref = {"lastname": "x", "parentcustomerid_account@odata.bind": "$9"}
    body, headers = batch([[op("POST", "contacts", bad_ref, "1")]])
    r = await dv.post("$batch", content=body, headers=headers)
    assert r.status_code == 400 and b"'$9' does not exist" in r.content


@pytest.mark.parametrize("settings_overrides", [{"max_batch_requests": 5}])
async def test_more_than_the_limit_is_400(dv: httpx.AsyncClient, emu: Emulator) -> None:
    body, headers = batch([op("GET", "accounts?$top=1")] * 6)
    r = await dv.post("$batch", content=body, headers=headers)
    assert r.status_code == 400 and "exceeds the limit of 5" in r.json()["error"]["message"]
    body, headers = batch([op("GET", "accounts?$top=1")] * 5)
    assert (await dv.post("$batch", content=body, headers=headers)).status_code == 200


def test_default_batch_limit_is_1000() -> None:
    from emulators.dataverse.settings import DataverseSettings

    assert DataverseSettings().max_batch_requests == 1000


async def test_malformed_batch_bodies_are_400(dv: httpx.AsyncClient) -> None:
    r = await dv.post("$batch", content=b"{}", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    r = await dv.post("$batch", content=b"--batch_x\r\nContent-Type: application/http\r\n\r\nGET accounts HTTP/1.1\r\n",
                      headers={"Content-Type": "multipart/mixed; boundary=batch_x"})
    assert r.status_code == 400 and "closing delimiter" in r.json()["error"]["message"]


@given(st.lists(st.tuples(st.sampled_from([200, 201, 204, 400, 404, 412]),
                          st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n-"),
                                  max_size=40)), min_size=1, max_size=5))
def test_multipart_round_trip(parts: list[tuple[int, str]]) -> None:
    encoded = multipart("batchresponse_x", [response_part(s, {"OData-Version": "4.0"}, b.encode()) for s, b in parts])
    decoded = split_parts(encoded, "batchresponse_x")
    assert len(decoded) == len(parts)
    for part, (status, text) in zip(decoded, parts, strict=True):
        assert part.body.startswith(f"HTTP/1.1 {status} ".encode())
        assert part.body.endswith(text.strip("\r\n").encode()) or not text.strip()


def test_request_parsing_accepts_bare_newlines() -> None:
    msg = parse_request(b"\nPATCH /api/data/v9.2/accounts(1) HTTP/1.1\nContent-Type: application/json\n\n{\"a\": 1}\n")
    assert (msg.method, msg.url, msg.headers["content-type"], json.loads(msg.body)) == (
        "PATCH", "/api/data/v9.2/accounts(1)", "application/json", {"a": 1})
    with pytest.raises(MultipartError):
        parse_request(b"\r\n\r\n")
    assert boundary_of('multipart/mixed; boundary="batch_1"') == "batch_1"
    assert boundary_of("application/json") is None


async def test_key_values_in_operation_urls_are_percent_decoded(dv, emu) -> None:
    # A $batch operation URL is a request line: `accounts(accountnumber='A%20B%2FC')` names the key `A B/C`.
    body = ("--b\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
            "PATCH accounts(accountnumber='A%20B%2FC') HTTP/1.1\r\nContent-Type: application/json\r\n\r\n"
            '{"name": "Spaced"}\r\n--b--\r\n')
    r = await dv.post("$batch", content=body, headers={"Content-Type": "multipart/mixed; boundary=b"})
    assert r.status_code == 200, r.text
    assert [a["accountnumber"] for a in emu.store.table("accounts").all() if a.get("name") == "Spaced"] == ["A B/C"]
