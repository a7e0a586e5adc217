"""Throughput of the Finance and Operations emulator over real HTTP: `python -m bench.emulator_finance_operations`.

Starts `python -m emulators.finance_operations` (uvicorn) on a free port with no injected latency and throttling
off, then measures single-record GETs by composite key (`CustomersV3(dataAreaId='usmf',CustomerAccount='…')`)
from a few concurrent clients, and 100-operation multipart `$batch` requests (PATCH updates; plain and as one
atomic change set). Prints requests/s and operations/s."""

from __future__ import annotations

from urllib.parse import quote

from bench.odata_throughput import Target, main


def _key(account: str) -> str:
    return "CustomersV3(" + quote(f"dataAreaId='usmf',CustomerAccount='{account}'", safe="'=,") + ")"


FINANCE_OPERATIONS = Target(module="finance_operations", title="Finance and Operations", api="/data",
                            listing="CustomersV3?$select=CustomerAccount", key_of=lambda row: row["CustomerAccount"],
                            path_of=_key, payload=lambda n: {"PrimaryContactPhone": f"+1 555 {n:04d}"},
                            get_label="GET by composite key")

if __name__ == "__main__":
    main(FINANCE_OPERATIONS, __doc__ or "")
