"""`python -m emulators.business_central --port 8081 --records 50`"""

from __future__ import annotations

import argparse

from starlette.applications import Starlette

from emulators.business_central.app import create_app
from emulators.business_central.settings import BusinessCentralSettings
from emulators.common.faults import Faults
from emulators.common.server import run_cli


def build(args: argparse.Namespace) -> Starlette:
    base = BusinessCentralSettings()
    faults = Faults(latency_ms=args.latency_ms, batch_op_latency_ms=args.batch_op_latency_ms,
                    error_ratio=args.error_ratio, timeout_ratio=args.timeout_ratio)
    limits = base.limits.model_copy(update={"enabled": not args.no_throttle})
    settings = base.model_copy(update={"records": args.records, "seed": args.seed, "faults": faults,
                                       "limits": limits})
    return create_app(settings)


if __name__ == "__main__":
    run_cli("business_central", build, default_port=8081)
