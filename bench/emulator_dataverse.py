"""Throughput of the Dataverse emulator over real HTTP: `python -m bench.emulator_dataverse`.

Starts `python -m emulators.dataverse` (uvicorn) on a free port with no injected latency and throttling off,
then measures single-record GETs by id from a few concurrent clients, and 100-operation multipart `$batch`
requests (PATCH updates; plain and as one atomic change set). Prints requests/s and operations/s."""

from __future__ import annotations

from bench.odata_throughput import Target, main

DATAVERSE = Target(module="dataverse", title="Dataverse", api="/api/data/v9.2",
                   listing="accounts?$select=accountid", key_of=lambda row: row["accountid"],
                   path_of=lambda rid: f"accounts({rid})", payload=lambda n: {"telephone2": f"+1 555 {n:04d}"})

if __name__ == "__main__":
    main(DATAVERSE, __doc__ or "")
