"""Run an emulator: standalone (`python -m emulators.<name> --port …`) or in a background thread for tests
and the demo (a real socket on 127.0.0.1, so webhooks and connectors use real HTTP)."""

from __future__ import annotations

import argparse
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import uvicorn

from emulators.common.tls import LocalTLS, trust_local_ca


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BackgroundServer:
    """Serve an ASGI app on 127.0.0.1 in a thread of its own; use as a context manager. With `tls` it serves
    HTTPS with the local CA's certificate (`emulators.common.tls`), as the services do."""

    def __init__(self, app: Any, port: int | None = None, host: str = "127.0.0.1", *,
                 tls: LocalTLS | None = None) -> None:
        self.host = host
        self.port = port or free_port()
        self.app = app
        self.tls = tls
        # A keep-alive connection a client leaves open must not hold the shutdown: a second is plenty for a
        # request in flight (else every sandbox waited out its 10 s join per server).
        config = uvicorn.Config(app, host=host, port=self.port, log_level="warning", lifespan="on",
                                access_log=False, timeout_graceful_shutdown=1,
                                **(tls.uvicorn_options() if tls else {}))
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True, name=f"emulator:{self.port}")

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def start(self) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on port {self.port} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_cli(name: str, build: Callable[[argparse.Namespace], Any], default_port: int,
            add_arguments: Callable[[argparse.ArgumentParser], None] | None = None) -> None:
    """Parse the common options, build the app and serve it until interrupted."""
    parser = argparse.ArgumentParser(prog=f"python -m emulators.{name}", description=f"Local {name} emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=default_port)
    parser.add_argument("--records", type=int, default=50, help="seeded records per main table")
    parser.add_argument("--seed", type=int, default=1, help="random seed for the seed data")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every API request")
    parser.add_argument("--batch-op-latency-ms", type=float, default=0.0, help="added per $batch operation")
    parser.add_argument("--error-ratio", type=float, default=0.0, help="share of requests answered 5xx")
    parser.add_argument("--timeout-ratio", type=float, default=0.0, help="share of requests that hang")
    parser.add_argument("--no-throttle", action="store_true", help="disable service protection limits")
    parser.add_argument("--tls", action="store_true",
                        help="serve HTTPS with the local CA's certificate (emulators.common.tls)")
    if add_arguments:
        add_arguments(parser)
    args = parser.parse_args()
    tls = trust_local_ca() if args.tls else None  # the emulator's own webhook calls trust it too
    app = build(args)
    print(f"{name} emulator on {'https' if tls else 'http'}://{args.host}:{args.port}", flush=True)
    if tls:
        print(f"clients trust it with: export SSL_CERT_FILE={tls.bundle}", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False,
                **(tls.uvicorn_options() if tls else {}))
