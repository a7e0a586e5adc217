"""The multipart `$batch` builder and parser on hand-built bodies (CRLF and bare LF, change sets, failures)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.connectors.odata_batch import (
    BatchFormatError,
    BatchRequest,
    boundary_of,
    build_batch,
    parse_batch_response,
    split_headers,
    split_multipart,
)

ROOT = "https://org.crm.dynamics.com/api/data/v9.2/"


def test_non_atomic_batch_has_one_part_per_request() -> None:
    content_type, body = build_batch([
        BatchRequest("POST", ROOT + "accounts", {"Prefer": "return=representation"}, {"name": "A"}),
        BatchRequest("DELETE", ROOT + "accounts(0e5e18ba-f320-4d57-ad14-475b349aae90)", {"If-Match": 'W/"5"'}),
    ], atomic=False, boundary="batch_X")
    assert content_type == "multipart/mixed; boundary=batch_X"
    assert body.decode() == (
        "--batch_X\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        f"POST {ROOT}accounts HTTP/1.1\r\nPrefer: return=representation\r\n"
        "Content-Type: application/json; type=entry\r\n\r\n{\"name\":\"A\"}\r\n"
        "--batch_X\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        f"DELETE {ROOT}accounts(0e5e18ba-f320-4d57-ad14-475b349aae90) HTTP/1.1\r\nIf-Match: W/\"5\"\r\n\r\n\r\n"
        "--batch_X--\r\n")


def test_atomic_batch_is_one_change_set_with_content_ids() -> None:
    _, body = build_batch([BatchRequest("POST", ROOT + "accounts", body={"name": f"N{i}"}) for i in range(3)],
                          atomic=True, boundary="batch_Y")
    (changeset,) = split_multipart(body, "batch_Y")
    headers, inner = split_headers(changeset)
    cs_boundary = boundary_of(headers["content-type"])
    assert cs_boundary and cs_boundary.startswith("changeset_")
    parts = split_multipart(inner, cs_boundary)
    assert [split_headers(p)[0]["content-id"] for p in parts] == ["1", "2", "3"]
    assert all(split_headers(p)[0]["content-transfer-encoding"] == "binary" for p in parts)


def test_build_refuses_empty_batches_and_header_injection() -> None:
    with pytest.raises(ValueError, match="at least one"):
        build_batch([], atomic=False)
    with pytest.raises(ValueError, match="line break"):
        build_batch([BatchRequest("GET", ROOT + "accounts", {"X": "a\r\nEvil: 1"})], atomic=False)


def _answer(eol: str) -> bytes:
    text = (
        "--batchresponse_1\n"
        "Content-Type: multipart/mixed; boundary=changesetresponse_2\n\n"
        "--changesetresponse_2\nContent-Type: application/http\nContent-Transfer-Encoding: binary\nContent-ID: 1\n\n"
        "HTTP/1.1 201 Created\nContent-Type: application/json; odata.metadata=minimal\nETag: W/\"7\"\n"
        "OData-EntityId: https://org/api/data/v9.2/accounts(11111111-1111-1111-1111-111111111111)\n\n"
        "{\"accountid\":\"11111111-1111-1111-1111-111111111111\",\"name\":\"--batchresponse_1 inside\"}\n"
        "--changesetresponse_2\nContent-Type: application/http\nContent-Transfer-Encoding: binary\nContent-ID: 2\n\n"
        "HTTP/1.1 204 No Content\nOData-Version: 4.0\n\n\n"
        "--changesetresponse_2--\n"
        "--batchresponse_1\nContent-Type: application/http\nContent-Transfer-Encoding: binary\n\n"
        "HTTP/1.1 412 Precondition Failed\nContent-Type: application/json\n\n"
        "{\"error\":{\"code\":\"0x80060882\",\"message\":\"The version of the existing record doesn't match\"}}\n"
        "--batchresponse_1--\n")
    return text.replace("\n", eol).encode()


@pytest.mark.parametrize("eol", ["\r\n", "\n"])
def test_parse_flattens_change_sets_and_keeps_statuses(eol: str) -> None:
    parts = parse_batch_response('multipart/mixed; boundary="batchresponse_1"', _answer(eol))
    assert [(p.status, p.content_id) for p in parts] == [(201, "1"), (204, "2"), (412, None)]
    assert parts[0].headers["etag"] == 'W/"7"'
    assert parts[0].json()["name"] == "--batchresponse_1 inside"  # not at a line start: not a delimiter
    assert parts[1].body == b"" and parts[1].json() is None
    assert parts[2].json()["error"]["code"] == "0x80060882"


def test_parse_rejects_what_is_not_a_batch_answer() -> None:
    with pytest.raises(BatchFormatError, match="not multipart"):
        parse_batch_response("application/json", b"{}")
    with pytest.raises(BatchFormatError, match="does not end"):
        parse_batch_response("multipart/mixed; boundary=b", b"--b\r\nContent-Type: application/http\r\n\r\n")
    with pytest.raises(BatchFormatError, match="status line"):
        parse_batch_response("multipart/mixed; boundary=b", b"--b\r\nContent-Type: application/http\r\n\r\n"
                                                             b"garbage\r\n--b--\r\n")


_json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
                            max_leaves=10)


@given(st.lists(st.dictionaries(st.text(min_size=1), _json_values, max_size=4), min_size=1, max_size=5),
       st.booleans())
def test_parser_reads_back_what_the_builder_writes(bodies: list[dict], atomic: bool) -> None:
    # The request and response grammars share the part framing; a request part parses once its request line
    # is swapped for a status line, so builder and parser are checked against each other on any JSON body.
    _, built = build_batch([BatchRequest("POST", ROOT + "accounts", body=b) for b in bodies], atomic=atomic,
                           boundary="batch_Z")
    as_answer = built.replace(f"POST {ROOT}accounts HTTP/1.1".encode(), b"HTTP/1.1 201 Created")
    parts = parse_batch_response("multipart/mixed; boundary=batch_Z", as_answer)
    assert [p.json() for p in parts] == bodies
    assert [p.content_id for p in parts] == ([str(n) for n in range(1, len(bodies) + 1)] if atomic
                                              else [None] * len(bodies))
    assert all(json.loads(p.body) == b for p, b in zip(parts, bodies, strict=True))
