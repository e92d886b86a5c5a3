"""A throwaway certificate authority and a server certificate for `localhost` / 127.0.0.1.

Made with the `openssl` command line at test time (nothing is committed); tests that need TLS
skip when `openssl` is missing.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True, slots=True)
class Certs:
    ca: Path  # the CA certificate: what clients verify the server against
    cert: Path  # the server's certificate, signed by the CA
    key: Path  # the server's private key


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def make_certs(directory: Path) -> Certs:
    """Create a CA and a server certificate (SAN localhost and 127.0.0.1) in `directory`."""
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command is not installed (scripts/bootstrap installs it)")
    directory.mkdir(parents=True, exist_ok=True)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl(
        "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=eventfwd test CA", cwd=directory,
    )  # fmt: skip
    _openssl(
        "req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost",
        cwd=directory,
    )  # fmt: skip
    (directory / "san.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-set_serial", "1", "-days", "2", "-extfile", "san.cnf", "-out", "server.pem",
        cwd=directory,
    )  # fmt: skip
    return Certs(
        ca=directory / "ca.pem", cert=directory / "server.pem", key=directory / "server.key"
    )


def tls_args(certs: Certs, port: int) -> list[str]:
    """redis-server options: TLS only on `port` (no plain TCP), clients need no certificate."""
    return [
        "--port", "0", "--tls-port", str(port),
        "--tls-cert-file", str(certs.cert), "--tls-key-file", str(certs.key),
        "--tls-ca-cert-file", str(certs.ca), "--tls-auth-clients", "no",
    ]  # fmt: skip
