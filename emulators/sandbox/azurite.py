"""Start Azurite's Table service (the real, local implementation of Azure Table storage) for the sandbox, the
demo, the benchmarks and the tests (`tests/support/azurite.py` re-exports this module).

Azurite is installed from npm into `.tools/azurite` (git-ignored) by `make test` / `make demo`; when a test
run starts without it (plain `pytest`), it is installed here on first use.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository: emulators/sandbox/azurite.py
TOOLS = ROOT / ".tools" / "azurite"
BINARY = TOOLS / "node_modules" / ".bin" / "azurite-table"

# Azurite's well-known development account; it guards nothing (documented by Microsoft for local use only).
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def ensure_installed() -> Path:
    if not BINARY.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("Azurite is needed for Table storage tests: install Node.js and npm, then `make test`")
        subprocess.run([npm, "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(TOOLS), "azurite@3"],
                       check=True)
    return BINARY


def connection_string(port: int) -> str:
    return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"TableEndpoint=http://127.0.0.1:{port}/{ACCOUNT};")


class Azurite:
    """An Azurite Table server on a free port, in-memory, stopped by `stop()` (or the context manager)."""

    def __init__(self) -> None:
        self.port = _free_port()
        self._workdir = tempfile.TemporaryDirectory(prefix="azurite-")
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def connection_string(self) -> str:
        return connection_string(self.port)

    def start(self) -> Azurite:
        binary = ensure_installed()
        self._proc = subprocess.Popen(
            [str(binary), "--tableHost", "127.0.0.1", "--tablePort", str(self.port), "--inMemoryPersistence",
             "--silent", "--skipApiVersionCheck", "--disableTelemetry"],
            cwd=self._workdir.name,  # Azurite writes a debug/extent folder in its cwd even in memory mode
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                raise RuntimeError(f"Azurite exited at start: {err.strip()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"Azurite did not listen on port {self.port} within 30 s")

    def stop(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._workdir.cleanup()

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
