"""Turning ids and values into what Table storage accepts.

PartitionKey/RowKey may not contain `/ \\ # ?` or control characters and are limited to 1 KiB; natural
keys from an ERP may contain any of them. Keys are therefore escaped: letters, digits and `- _ . :` stay as
they are (GUIDs read naturally in Storage Explorer), every other UTF-8 byte becomes `~XX`. The escape is
reversible and keeps distinct ids distinct. Property values are limited to 64 KiB each, so large JSON is
compressed and split over numbered properties.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
import zlib
from collections.abc import Mapping
from typing import Any

from azure.data.tables.aio import TableClient

from shared.state.exceptions import InvalidKey, ValueTooLarge

MAX_KEY_LENGTH = 1000       # service limit is 1 KiB; keep a margin for the `erp:` style prefixes
_SAFE = re.compile(r"[A-Za-z0-9\-_.:]")
_ESCAPED = re.compile(r"~([0-9A-F]{2})")

# A string property may hold 64 KiB = 32 K UTF-16 code units; stay below with margin.
MAX_TEXT_CHARS = 30_000
MAX_BINARY_CHUNK = 60_000   # bytes per binary property (limit 64 KiB)
MAX_JSON_BYTES = 512_000    # compressed, per entity: keeps both coupling rows well inside a 4 MB transaction


def encode_key(value: str) -> str:
    """A Table-storage-safe key for `value` (reversible with `decode_key`)."""
    if not isinstance(value, str) or value == "":
        raise InvalidKey(f"a key must be a non-empty string, got {value!r}")
    out = []
    for char in value:
        if _SAFE.fullmatch(char):
            out.append(char)
        else:
            out.extend(f"~{byte:02X}" for byte in char.encode("utf-8"))
    key = "".join(out)
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidKey(f"key too long for Table storage ({len(key)} characters once escaped, "
                         f"limit {MAX_KEY_LENGTH}): {value[:60]!r}…")
    return key


def decode_key(key: str) -> str:
    """The original value of an `encode_key` result."""
    raw = bytearray()
    pos = 0
    for match in _ESCAPED.finditer(key):
        raw += key[pos:match.start()].encode("ascii")
        raw.append(int(match.group(1), 16))
        pos = match.end()
    raw += key[pos:].encode("ascii")
    return raw.decode("utf-8")


def aware(value: dt.datetime | None, what: str) -> dt.datetime | None:
    """Refuse naive datetimes (their meaning depends on the machine) and normalise to UTC."""
    if value is None:
        return None
    if not isinstance(value, dt.datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime, got {value!r}")
    return value.astimezone(dt.UTC)


async def purge_before(table: TableClient, field: str, older_than: dt.timedelta, now: dt.datetime | None) -> int:
    """Delete the rows of `table` whose datetime `field` is before now − `older_than`; returns how many (the
    history tables' retention: jobs by start, errors by last seen, conflicts by settlement)."""
    cutoff = (aware(now, "now") or dt.datetime.now(dt.UTC)) - older_than
    removed = 0
    async for entity in table.query_entities(f"{field} lt @cutoff", parameters={"cutoff": cutoff},
                                             select=["PartitionKey", "RowKey"]):
        await table.delete_entity(entity["PartitionKey"], entity["RowKey"])
        removed += 1
    return removed


def read_time(value: Any) -> dt.datetime | None:
    """A stored datetime as a plain timezone-aware `datetime` (the SDK returns a subclass)."""
    if value is None:
        return None
    value = value.astimezone(dt.UTC)
    return dt.datetime(value.year, value.month, value.day, value.hour, value.minute, value.second,
                       value.microsecond, tzinfo=dt.UTC)


def canonical_json(value: Any, what: str = "value") -> str:
    """Stable JSON (sorted keys, no spaces); only JSON types are accepted, so a round trip is exact."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must hold JSON values only (str, number, bool, null, list, object): {exc}") from None


def json_hash(value: Any) -> str:
    """sha256 of the canonical JSON: equal values give equal hashes regardless of key order."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


def pack_json(prefix: str, value: Any, what: str) -> dict[str, Any]:
    """Properties holding `value`: `<prefix>` as text when small, else `<prefix>_z<n>` compressed chunks."""
    if value is None:
        return {}
    text = canonical_json(value, what)
    if len(text) <= MAX_TEXT_CHARS:
        return {prefix: text}
    data = zlib.compress(text.encode("utf-8"), 6)
    if len(data) > MAX_JSON_BYTES:
        raise ValueTooLarge(f"{what} is too large to store: {len(data)} bytes compressed, "
                            f"limit {MAX_JSON_BYTES} (Table storage entities hold at most 1 MB)")
    chunks = [data[i:i + MAX_BINARY_CHUNK] for i in range(0, len(data), MAX_BINARY_CHUNK)]
    return {f"{prefix}_z{n}": chunk for n, chunk in enumerate(chunks)}


def unpack_json(prefix: str, entity: Mapping[str, Any]) -> Any:
    """The value `pack_json` stored under `prefix`, or None."""
    if prefix in entity:
        return json.loads(entity[prefix])
    chunks = []
    while (chunk := entity.get(f"{prefix}_z{len(chunks)}")) is not None:
        chunks.append(chunk if isinstance(chunk, bytes) else base64.b64decode(chunk))
    if not chunks:
        return None
    return json.loads(zlib.decompress(b"".join(chunks)).decode("utf-8"))
