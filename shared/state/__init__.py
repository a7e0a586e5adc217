"""Sync state in Azure Table storage: couplings, watermarks, jobs, errors, webhook subscriptions and settled
conflicts."""

from __future__ import annotations

from shared.state.conflicts import ConflictEntry, ConflictStore
from shared.state.coupling_batches import PartitionRate, TableRequestCounter
from shared.state.couplings import Coupling, CouplingStore
from shared.state.error_records import ErrorRecord, ErrorStore, error_id
from shared.state.exceptions import (
    AlreadyCoupled,
    ConcurrentUpdate,
    InvalidKey,
    NotFound,
    StateError,
    ValueTooLarge,
    WatermarkBackwards,
)
from shared.state.jobs import COUNTERS, Job, JobStore
from shared.state.keys import decode_key, encode_key, json_hash
from shared.state.store import StateStore, TableNames, service_from_settings
from shared.state.subscriptions import Subscription, SubscriptionStore
from shared.state.watermarks import WatermarkStore

__all__ = [
    "COUNTERS", "AlreadyCoupled", "ConcurrentUpdate", "ConflictEntry", "ConflictStore", "Coupling", "CouplingStore",
    "ErrorRecord", "ErrorStore",
    "InvalidKey", "Job", "JobStore", "NotFound", "PartitionRate", "StateError", "StateStore", "Subscription",
    "SubscriptionStore", "TableNames", "TableRequestCounter", "ValueTooLarge", "WatermarkBackwards", "WatermarkStore",
    "decode_key", "encode_key", "error_id", "json_hash", "service_from_settings",
]
