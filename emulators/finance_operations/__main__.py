"""`python -m emulators.finance_operations --port 8083 --records 50`: serve a seeded emulator until interrupted."""

from __future__ import annotations

import argparse

from starlette.applications import Starlette

from emulators.common.faults import Faults
from emulators.common.server import run_cli
from emulators.finance_operations.app import create_app
from emulators.finance_operations.settings import FinanceOperationsSettings


def build(args: argparse.Namespace) -> Starlette:
    settings = FinanceOperationsSettings(records=args.records, seed=args.seed)
    settings.faults = Faults(latency_ms=args.latency_ms, batch_op_latency_ms=args.batch_op_latency_ms,
                             error_ratio=args.error_ratio, timeout_ratio=args.timeout_ratio)
    if args.no_throttle:
        settings.limits.enabled = False
    return create_app(settings)


if __name__ == "__main__":
    run_cli("finance_operations", build, 8083)
