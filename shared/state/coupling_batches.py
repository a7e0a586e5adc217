"""Bulk Table-storage access for the coupling store: partition range reads, entity-group transactions that
isolate a failing item, a per-partition entity-rate cap, and a request counter for tests and benchmarks.

Nothing here knows what a coupling is: the store (`couplings.py`, whose docstring explains the key design)
turns each coupling into an `OpGroup` — the one or two operations that must succeed or fail together, how to
read the answer, and what a failure of one of its operations means for that item.

Why a failing item is found and dropped rather than the batch retried item by item: a transaction is atomic,
so one stale ETag refuses all 100 operations; Table storage names the failing operation (`<index>:` before
the message, `TableTransactionError.index`), so one bad coupling costs one extra transaction, not 49.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from azure.core.exceptions import AzureError
from azure.data.tables import TableTransactionError
from azure.data.tables.aio import TableClient

T = TypeVar("T")

MAX_TRANSACTION = 100            # Table storage: operations per entity-group transaction
MAX_QUERY_PAGE = 1000            # Table storage: entities per query response
# A transaction's payload may be 4 MiB; snapshots make rows large (up to 512 KB compressed each), so chunks
# are also cut by estimated size, with room for the multipart framing.
MAX_TRANSACTION_BYTES = 3 * 2**20
_OP_OVERHEAD = 400               # multipart headers of one operation, bytes (generous)

DEFAULT_PARTITION_RATE = 1500.0  # entities/s per partition from one process: 75 % of the 2 000/s target
DEFAULT_PARTITION_CONCURRENCY = 4  # transactions of one partition in flight at once, per call
DEFAULT_SCAN_FACTOR = 3          # a page's range scan reads at most this many rows per asked id

Operation = tuple[Any, ...]      # the SDK's transaction operation: (kind, entity[, kwargs])
_INDEXED = re.compile(r"^\s*(\d+):")


@dataclass
class OpGroup(Generic[T]):
    """The operations of one item (a coupling's one or two rows): written in one transaction, never split.

    `done` turns the service's answers to these operations (in order) into the item's result; `failed` turns
    the refusal of its operation number `at` into the item's exception (it may read the store, e.g. to return
    the coupling that already exists)."""

    ops: list[Operation]
    done: Callable[[list[Mapping[str, Any]]], T]
    failed: Callable[[int, TableTransactionError], Awaitable[Exception]]

    @property
    def partition(self) -> str:
        return str(self.ops[0][1]["PartitionKey"])

    @property
    def rows(self) -> set[str]:
        return {str(op[1]["RowKey"]) for op in self.ops}

    @property
    def size(self) -> int:
        return sum(_OP_OVERHEAD + _entity_bytes(op[1]) for op in self.ops)


def _entity_bytes(entity: Mapping[str, Any]) -> int:
    """An upper estimate of an entity's JSON size on the wire (binary goes as base64, text JSON-escaped)."""
    total = 0
    for name, value in entity.items():
        total += len(name) + 40  # quotes, colon, an `@odata.type` annotation
        if isinstance(value, bytes | bytearray):
            total += (len(value) + 2) // 3 * 4
        elif isinstance(value, str):
            total += len(json.dumps(value))
        else:
            total += 40
    return total


class PartitionRate:
    """At most `per_second` entities per partition, from this process: a token bucket holding one second of
    burst. Writes wait before they are sent (their size is known); reads are charged once their page arrives
    and make the next request wait while the bucket is in debt. `per_second=None` switches the cap off."""

    def __init__(self, per_second: float | None = DEFAULT_PARTITION_RATE, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        if per_second is not None and per_second <= 0:
            raise ValueError("the partition rate must be positive (or None for no cap)")
        self.per_second = per_second
        self._clock, self._sleep = clock, sleep
        self._buckets: dict[str, list[float]] = {}  # partition → [tokens, as of]

    def _bucket(self, partition: str) -> list[float]:
        assert self.per_second is not None
        now = self._clock()
        bucket = self._buckets.setdefault(partition, [self.per_second, now])
        bucket[0] = min(self.per_second, bucket[0] + (now - bucket[1]) * self.per_second)
        bucket[1] = now
        return bucket

    async def spend(self, partition: str, entities: int) -> None:
        """Wait until `entities` may be sent to `partition`, then count them."""
        if self.per_second is None:
            return
        need = min(float(entities), self.per_second)  # a bucket never holds more than one second's worth
        # The tolerance and the shortest sleep keep float rounding from spinning on a deficit of 1e-13.
        while (bucket := self._bucket(partition))[0] < need - 1e-6:
            await self._sleep(max((need - bucket[0]) / self.per_second, 0.001))
        bucket[0] -= entities

    def charge(self, partition: str, entities: int) -> None:
        """Count entities already read (the bucket may go into debt: the next `spend` waits it off)."""
        if self.per_second is not None:
            self._bucket(partition)[0] -= entities


@dataclass
class TableRequestCounter:
    """Counts the HTTP requests a Table client sends (every try, retries included): pass it as
    `raw_request_hook=` when creating the `TableServiceClient` / `TableClient`. `transactions` are the
    `$batch` requests among them; `queries` the GETs (point reads and query pages). Passed as
    `raw_response_hook=counter.response` too, it also counts `rows_read`, the entities the GETs returned
    (what reads cost against the per-partition entity target)."""

    requests: int = 0
    transactions: int = 0
    queries: int = 0
    rows_read: int = 0
    log: list[str] = field(default_factory=list, repr=False)

    def response(self, response: Any) -> None:
        if response.http_request.method != "GET" or response.http_response.status_code != 200:
            return
        body = json.loads(response.http_response.body() or b"{}")
        self.rows_read += len(body["value"]) if isinstance(body.get("value"), list) else 1

    def __call__(self, request: Any) -> None:
        http = request.http_request
        path = http.url.split("?", 1)[0]
        self.requests += 1
        self.transactions += path.endswith("/$batch")
        self.queries += http.method == "GET"
        self.log.append(f"{http.method} {path.rsplit('/', 1)[-1]}")

    def reset(self) -> None:
        self.requests = self.transactions = self.queries = self.rows_read = 0
        self.log.clear()


async def scan_range(table: TableClient, partition: str, row_keys: Collection[str], *, bound: int,
                     rate: PartitionRate) -> tuple[dict[str, Any], set[str]]:
    """Read the rows `row_keys` of `partition` with one range query from their smallest to their largest key.

    Returns the entities found by row key, and the row keys left unresolved because the scan stopped after
    reading `bound` rows with more to come (rows of the range that were not asked for make it long when the
    asked keys are scattered). A key neither found nor unresolved does not exist."""
    wanted = set(row_keys)
    found: dict[str, Any] = {}
    if not wanted:
        return found, set()
    query = "PartitionKey eq @pk and RowKey ge @lo and RowKey le @hi"
    params = {"pk": partition, "lo": min(wanted), "hi": max(wanted)}
    pages = table.query_entities(query, parameters=params,
                                 results_per_page=max(1, min(MAX_QUERY_PAGE, bound))).by_page()
    read = 0
    while True:
        await rate.spend(partition, 0)  # a read's size is known only once it arrives: wait off any debt
        try:
            page = [entity async for entity in await pages.__anext__()]
        except StopAsyncIteration:
            return found, set()
        rate.charge(partition, len(page))
        read += len(page)
        found.update((e["RowKey"], e) for e in page if e["RowKey"] in wanted)
        if len(found) == len(wanted) or pages.continuation_token is None:
            return found, set()  # the rest of the range (if any) holds nothing asked
        if read >= bound:
            return found, wanted - found.keys()


@dataclass
class _Chunk:
    """One transaction being packed."""

    members: list[int] = field(default_factory=list)
    rows: set[str] = field(default_factory=set)
    ops: int = 0
    size: int = 0

    def fits(self, group: OpGroup[Any]) -> bool:
        return (self.ops + len(group.ops) <= MAX_TRANSACTION and self.size + group.size <= MAX_TRANSACTION_BYTES
                and not self.rows & group.rows)

    def add(self, i: int, group: OpGroup[Any]) -> None:
        self.members.append(i)
        self.rows |= group.rows
        self.ops += len(group.ops)
        self.size += group.size


def pack(groups: Sequence[OpGroup[Any]]) -> list[list[int]]:
    """Indexes of `groups` cut into transactions: one partition each, ≤ `MAX_TRANSACTION` operations, ≤
    `MAX_TRANSACTION_BYTES`, and never two groups touching the same row (Table storage refuses a transaction
    naming a row twice; such groups go to different transactions, where the usual ETag / insert-if-absent
    rules decide between them). First fit, so groups keep their order within a partition."""
    order: list[_Chunk] = []
    by_partition: dict[str, list[_Chunk]] = {}
    first_open: dict[str, int] = {}  # chunks before it are full: later groups need not look at them
    for i, group in enumerate(groups):
        chunks = by_partition.setdefault(group.partition, [])
        k = first_open.get(group.partition, 0)
        while k < len(chunks) and chunks[k].ops >= MAX_TRANSACTION:
            k += 1
        first_open[group.partition] = k
        target = next((c for c in chunks[k:] if c.fits(group)), None)
        if target is None:
            target = _Chunk()
            chunks.append(target)
            order.append(target)
        target.add(i, group)
    return [c.members for c in order]


async def run_groups(table: TableClient, groups: Sequence[OpGroup[T]], *, rate: PartitionRate,
                     concurrency: int = DEFAULT_PARTITION_CONCURRENCY) -> list[T | Exception]:
    """Write `groups` in entity-group transactions; one answer per group, in order: its result, or the
    exception that refused it. A group never fails because of another one: when a transaction is refused, the
    group owning the failing operation gets its exception and the others are sent again without it. An error
    that names no operation (or a transport error the SDK's retries did not overcome) is every pending group's
    answer in that transaction — returned, never dropped."""
    results: list[T | Exception | None] = [None] * len(groups)
    gates: dict[str, asyncio.Semaphore] = {}

    async def send(members: list[int]) -> None:
        partition = groups[members[0]].partition
        async with gates.setdefault(partition, asyncio.Semaphore(concurrency)):
            await _send_chunk(table, groups, members, results, rate)

    await asyncio.gather(*(send(members) for members in pack(groups)))
    assert all(r is not None for r in results), "every group is answered"
    return results  # type: ignore[return-value]


async def _send_chunk(table: TableClient, groups: Sequence[OpGroup[T]], members: list[int],
                      results: list[T | Exception | None], rate: PartitionRate) -> None:
    pending = list(members)
    while pending:
        ops = [op for i in pending for op in groups[i].ops]
        await rate.spend(groups[pending[0]].partition, len(ops))
        try:
            answers = await table.submit_transaction(ops)
        except TableTransactionError as exc:
            culprit = _culprit(exc, pending, groups)
            if culprit is None:
                for i in pending:
                    results[i] = exc
                return
            i, at = culprit
            try:
                results[i] = await groups[i].failed(at, exc)
            except AzureError as why:  # e.g. reading the coupling that already exists failed: still an answer
                results[i] = why
            pending.remove(i)  # the transaction wrote nothing: send the others again
            continue
        except AzureError as exc:
            for i in pending:
                results[i] = exc
            return
        pos = 0
        for i in pending:
            n = len(groups[i].ops)
            results[i] = groups[i].done(list(answers[pos:pos + n]))
            pos += n
        return


def _culprit(exc: TableTransactionError, pending: list[int], groups: Sequence[OpGroup[Any]]) -> tuple[int, int] | None:
    """(group, operation within it) the service blamed, or None when it named no operation. The SDK reports
    index 0 also when the message carries none, so the message itself is checked."""
    if not _INDEXED.match(str(exc.message or "")):
        return None
    at = exc.index
    for i in pending:
        n = len(groups[i].ops)
        if at < n:
            return i, at
        at -= n
    return None
