"""Run an emulator in a child process for a benchmark, so the load generator never shares its interpreter."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx

from emulators.common.server import free_port


@contextlib.contextmanager
def standalone_emulator(module: str, *args: str) -> Iterator[str]:
    """`python -m emulators.<module> --port <free> --no-throttle *args`; yields its base URL, stops it after."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", f"emulators.{module}", "--port", str(port), "--no-throttle",
                             *args], stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/_admin/tables", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"emulator {module} did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
