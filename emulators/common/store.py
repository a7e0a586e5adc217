"""In-memory tables with row versions and a change log: the state behind both emulators.

Each emulator stamps its own system fields (`lastModifiedDateTime` / `modifiedon`, `@odata.etag` formats)
through the `stamp` hook; the store only keeps records, a per-record version that grows on every write,
and an ordered log of changes that change tracking (Dataverse delta links) and webhooks read.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as dt
import itertools
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

ChangeKind = Literal["created", "updated", "deleted"]


@dataclass(frozen=True)
class Actor:
    """Who made a change: a user of the emulated system."""

    user_id: str
    name: str = ""


@dataclass(frozen=True)
class Change:
    """One write, as the change log and webhook dispatchers see it."""

    seq: int
    table: str
    record_id: str
    kind: ChangeKind
    actor: Actor
    at: dt.datetime
    changed_fields: frozenset[str]
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class RecordNotFound(KeyError):
    pass


class RecordExists(KeyError):
    pass


Stamp = Callable[[str, dict[str, Any], Actor, dt.datetime, int, bool], None]
"""stamp(table, record, actor, now, version, created): set the system's own modified-on / modified-by / etag
fields on a record being written."""


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class Table:
    name: str
    key: str
    store: Store
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    # Indexes on attribute tuples (alternate keys), built on first use and kept up to date by every write,
    # standing in for the services' unique indexes: key lookups cost what they cost there, not a table scan.
    indexes: dict[tuple[str, ...], dict[tuple[Any, ...], set[str]]] = field(default_factory=dict)

    def clear(self) -> None:
        """Forget every row (a re-seed); the change log is the store's and stays."""
        self.rows.clear()
        self.versions.clear()
        self.indexes.clear()

    def lookup(self, fields: tuple[str, ...], values: tuple[Any, ...]) -> list[dict[str, Any]]:
        """Rows whose `fields` equal `values` (text compares case-insensitively, as the services' SQL does)."""
        index = self.indexes.get(fields)
        if index is None:
            index = self.indexes[fields] = {}
            for rid, row in self.rows.items():
                index.setdefault(_index_key(row, fields), set()).add(rid)
        return [self.rows[rid] for rid in sorted(index.get(tuple(_fold(v) for v in values), ()))]

    def _reindex(self, rid: str, before: dict[str, Any] | None, after: dict[str, Any] | None) -> None:
        for fields, index in self.indexes.items():
            if before is not None:
                ids = index.get(_index_key(before, fields))
                if ids is not None:
                    ids.discard(rid)
            if after is not None:
                index.setdefault(_index_key(after, fields), set()).add(rid)

    def get(self, record_id: str) -> dict[str, Any]:
        try:
            return self.rows[_norm(record_id)]
        except KeyError:
            raise RecordNotFound(record_id) from None

    def find(self, record_id: str) -> dict[str, Any] | None:
        return self.rows.get(_norm(record_id))

    def version(self, record_id: str) -> int:
        return self.versions[_norm(record_id)]

    def all(self) -> Iterator[dict[str, Any]]:
        return iter(list(self.rows.values()))

    def __len__(self) -> int:
        return len(self.rows)

    def insert(self, record: dict[str, Any], actor: Actor) -> dict[str, Any]:
        with self.store.lock:
            rid = _norm(record.get(self.key) or str(uuid.uuid4()))
            if rid in self.rows:
                raise RecordExists(rid)
            row = copy.deepcopy(record)
            row[self.key] = rid
            version = self.store.next_version()
            now = utcnow()
            self.store.stamp(self.name, row, actor, now, version, True)
            self.rows[rid] = row
            self.versions[rid] = version
            self._reindex(rid, None, row)
            self.store.log_change(self.name, rid, "created", actor, now, frozenset(row), None, row)
            return row

    def update(self, record_id: str, changes: dict[str, Any], actor: Actor) -> dict[str, Any]:
        with self.store.lock:
            rid = _norm(record_id)
            before = self.get(rid)
            row = {**before, **copy.deepcopy(changes)}
            changed = frozenset(k for k, v in changes.items() if before.get(k) != v)
            version = self.store.next_version()
            now = utcnow()
            self.store.stamp(self.name, row, actor, now, version, False)
            self.rows[rid] = row
            self.versions[rid] = version
            self._reindex(rid, before, row)
            self.store.log_change(self.name, rid, "updated", actor, now, changed, before, row)
            return row

    def delete(self, record_id: str, actor: Actor) -> dict[str, Any]:
        with self.store.lock:
            rid = _norm(record_id)
            before = self.get(rid)
            del self.rows[rid]
            del self.versions[rid]
            self._reindex(rid, before, None)
            self.store.log_change(self.name, rid, "deleted", actor, utcnow(), frozenset(), before, None)
            return before


class Store:
    """All tables of one emulated environment, one version counter and one change log."""

    def __init__(self, stamp: Stamp) -> None:
        self.stamp = stamp
        self.tables: dict[str, Table] = {}
        self.changes: list[Change] = []
        self.listeners: list[Callable[[Change], None]] = []
        # Writes happen on the event loop, but admin helpers and tests may call in from other threads.
        self.lock = threading.RLock()
        self._versions = itertools.count(1000)
        self._seq = itertools.count(1)
        self._deferred: list[Change] | None = None
        self._write_lock: asyncio.Lock | None = None

    @property
    def write_lock(self) -> asyncio.Lock:
        """Serialises writes on the event loop. An atomic batch holds it across its awaits (per-operation
        latency), so no other request's write lands inside it and is rolled back with it. Every writer — API
        handlers and the admin routes alike — takes it. (`lock` above only guards against other threads.)"""
        if self._write_lock is None:
            self._write_lock = asyncio.Lock()
        return self._write_lock

    def add_table(self, name: str, key: str) -> Table:
        table = Table(name=name, key=key, store=self)
        self.tables[name] = table
        return table

    def table(self, name: str) -> Table:
        return self.tables[name]

    def next_version(self) -> int:
        return next(self._versions)

    def current_seq(self) -> int:
        return self.changes[-1].seq if self.changes else 0

    def log_change(self, table: str, rid: str, kind: ChangeKind, actor: Actor, at: dt.datetime,
                   changed: frozenset[str], before: dict[str, Any] | None,
                   after: dict[str, Any] | None) -> None:
        change = Change(next(self._seq), table, rid, kind, actor, at, changed, before, after)
        self.changes.append(change)
        if self._deferred is not None:
            self._deferred.append(change)
        else:
            self._notify(change)

    def _notify(self, change: Change) -> None:
        for listener in list(self.listeners):
            listener(change)

    def changes_since(self, seq: int, table: str | None = None) -> list[Change]:
        return [c for c in self.changes if c.seq > seq and (table is None or c.table == table)]

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """All-or-nothing writes (atomic change sets, `Isolation: snapshot` batches).

        On an exception every table is rolled back and the changes made inside never reach the change
        log's listeners (webhooks), as they never became visible; otherwise listeners hear of them at the end.
        Not re-entrant: the batch handlers never nest transactions.
        """
        with self.lock:
            saved = {n: (copy.deepcopy(t.rows), dict(t.versions)) for n, t in self.tables.items()}
            n_changes = len(self.changes)
            self._deferred = []
            try:
                yield
            except BaseException:
                for name, (rows, versions) in saved.items():
                    self.tables[name].rows = rows
                    self.tables[name].versions = versions
                    self.tables[name].indexes = {}  # rebuilt from the restored rows on next use
                del self.changes[n_changes:]
                self._deferred = None
                raise
            deferred, self._deferred = self._deferred, None
            for change in deferred:
                self._notify(change)


def _fold(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def _index_key(row: dict[str, Any], fields: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(_fold(row.get(f)) for f in fields)


def _norm(record_id: str) -> str:
    """GUID keys compare case-insensitively in both services; store them lower-case."""
    return str(record_id).lower()
