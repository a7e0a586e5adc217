"""`python -m emulators.functions_host --port 7071`: serve `function_app.app` locally (settings from the
environment, as in Azure; the queue is in-process). Prints the function key for function-level routes."""

from __future__ import annotations

import argparse

import uvicorn

from emulators.common.tls import trust_local_ca
from emulators.functions_host.host import LocalHost


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m emulators.functions_host", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7071)
    parser.add_argument("--no-timers", action="store_true", help="fire timers only on demand")
    parser.add_argument("--tls", action="store_true", help="serve HTTPS with the local CA (emulators.common.tls)")
    args = parser.parse_args()
    tls = trust_local_ca() if args.tls else None  # before the app makes any client: it must trust the emulators
    from function_app import app  # imported here: it loads the pack named by DUALSYNC_PACK_PATH

    host = LocalHost(app, run_timers=not args.no_timers)
    scheme = "https" if tls else "http"
    print(f"functions host on {scheme}://{args.host}:{args.port}/api/ (function key: {host.keys['function']})",
          flush=True)
    uvicorn.run(host.asgi(), host=args.host, port=args.port, log_level="warning", access_log=False,
                **(tls.uvicorn_options() if tls else {}))


if __name__ == "__main__":
    main()
