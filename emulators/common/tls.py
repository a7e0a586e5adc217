"""HTTPS for the local stack, as the services serve it.

A certificate authority of this checkout's own (made with trustme at the first start, kept in `.tools/tls/`
beside the other local tools, or `DUALSYNC_TLS_DIR`) signs one server certificate for 127.0.0.1, ::1 and
localhost, which every emulator and the local Functions host serve. Clients trust it the standard way: the
process's `SSL_CERT_FILE` (read by httpx, OpenSSL's default verify paths and so aiohttp, which azure-identity
uses) and `REQUESTS_CA_BUNDLE` name a bundle of the public roots plus the local CA. So the product's own code
needs nothing special: `azure-identity`'s `ClientSecretCredential` and the connectors verify the emulators'
certificates exactly as they verify Microsoft's.

The CA's key never leaves `.tools/tls/` (git-ignored) and is trusted only by processes that set the variables;
nothing is installed system-wide. Delete the folder to make a new one.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import certifi
import trustme
from cryptography import x509

ROOT = Path(__file__).resolve().parents[2]
HOSTS = ("127.0.0.1", "localhost", "::1")
SERVER_LIFETIME = dt.timedelta(days=365)
RENEW_BEFORE = dt.timedelta(days=7)
TRUST_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")


@dataclass(frozen=True)
class LocalTLS:
    """The files of the local CA: what a server serves and what a client trusts."""

    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def cert(self) -> Path:
        return self.directory / "server.pem"  # the server certificate, then the chain

    @property
    def key(self) -> Path:
        return self.directory / "server.key"

    @property
    def bundle(self) -> Path:
        return self.directory / "trusted.pem"  # public roots + the local CA

    def uvicorn_options(self) -> dict[str, str]:
        return {"ssl_certfile": str(self.cert), "ssl_keyfile": str(self.key)}


def default_directory() -> Path:
    return Path(os.environ.get("DUALSYNC_TLS_DIR") or ROOT / ".tools" / "tls")


def local_tls(directory: Path | None = None) -> LocalTLS:
    """The local CA and server certificate, made now if missing or about to expire (safe across processes)."""
    tls = LocalTLS(directory or default_directory())
    tls.directory.mkdir(parents=True, exist_ok=True)
    with open(tls.directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _usable(tls):
            _issue(tls)
        _write_bundle(tls)
    return tls


def trust_local_ca(directory: Path | None = None) -> LocalTLS:
    """Make this process (and the processes it starts) trust the local CA through the standard variables.

    Call it before anything makes an HTTPS client: aiohttp reads the trusted roots once, when it is imported.
    """
    tls = local_tls(directory)
    if os.environ.get("SSL_CERT_FILE") == str(tls.bundle):
        return tls
    if "aiohttp.connector" in sys.modules:
        raise RuntimeError("aiohttp was imported before the local CA was trusted, so its HTTPS clients would "
                           "refuse the emulators' certificates: call emulators.common.tls.trust_local_ca() first, "
                           f"or start the process with SSL_CERT_FILE={tls.bundle}")
    for name in TRUST_VARIABLES:
        os.environ[name] = str(tls.bundle)
    return tls


def _usable(tls: LocalTLS) -> bool:
    if not all(p.exists() for p in (tls.ca, tls.ca_key, tls.cert, tls.key)):
        return False
    try:
        cert = x509.load_pem_x509_certificate(tls.cert.read_bytes())
    except ValueError:
        return False
    return cert.not_valid_after_utc - dt.datetime.now(dt.UTC) > RENEW_BEFORE


def _issue(tls: LocalTLS) -> None:
    try:
        ca = trustme.CA.from_pem(tls.ca.read_bytes(), tls.ca_key.read_bytes())
    except (OSError, ValueError):
        ca = trustme.CA(organization_name="dualsync local CA")
        _write(tls.ca_key, ca.private_key_pem.bytes(), private=True)
        _write(tls.ca, ca.cert_pem.bytes())
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    leaf = ca.issue_cert(*HOSTS, common_name="127.0.0.1", not_before=now - dt.timedelta(days=1),
                         not_after=now + SERVER_LIFETIME)
    _write(tls.key, leaf.private_key_pem.bytes(), private=True)
    _write(tls.cert, b"".join(blob.bytes() for blob in leaf.cert_chain_pems))


def _write_bundle(tls: LocalTLS) -> None:
    """Public roots first (so a trusted bundle still reaches real services), then the local CA. The roots are
    the ones this process was told to trust already, if any, else certifi's."""
    current = os.environ.get("SSL_CERT_FILE")
    roots = Path(current) if current and Path(current) != tls.bundle and Path(current).exists() else None
    public = (roots or Path(certifi.where())).read_bytes()
    _write(tls.bundle, public.rstrip(b"\n") + b"\n" + tls.ca.read_bytes())


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


if __name__ == "__main__":  # `python -m emulators.common.tls`: make the files, print what to export
    made = local_tls()
    print(f"export SSL_CERT_FILE={made.bundle} REQUESTS_CA_BUNDLE={made.bundle}")
