"""Test-time TLS material made with ``openssl`` (as test/helpers/tcp-certs.ts does): a CA, a
server certificate for 127.0.0.1 / ::1 / localhost signed by it, and an unrelated CA."""
from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass


@dataclass(frozen=True)
class Certs:
    """Paths of PEM files."""

    ca: str
    other_ca: str
    cert: str
    key: str


def make(directory: str | None = None) -> Certs:
    """Writes the certificates into ``directory`` (a new temporary one by default)."""
    d = directory or tempfile.mkdtemp(prefix="plexus-py-certs-")

    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for name in ("ca", "other-ca"):
        ssl("req", "-x509", *ec, "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "1", "-subj", f"/CN=Plexus test {name}",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    ssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=plexus-server")
    ssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.crt",
        "-days", "1", "-extfile", "server.ext")
    j = lambda f: os.path.join(d, f)  # noqa: E731
    return Certs(j("ca.crt"), j("other-ca.crt"), j("server.crt"), j("server.key"))
