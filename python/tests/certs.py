"""Test-time TLS material made with ``openssl`` (as test/helpers/tcp-certs.ts does): a CA, a
server certificate for 127.0.0.1 / ::1 / localhost and a client certificate signed by it, and an
unrelated CA."""
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
    client_cert: str
    client_key: str


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
    with open(os.path.join(d, "client.ext"), "w") as f:
        f.write("extendedKeyUsage=clientAuth\n")
    for name in ("server", "client"):
        ssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN=plexus-{name}")
        ssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", f"{name}.crt",
            "-days", "1", "-extfile", f"{name}.ext")
    j = lambda f: os.path.join(d, f)  # noqa: E731
    return Certs(j("ca.crt"), j("other-ca.crt"), j("server.crt"), j("server.key"), j("client.crt"), j("client.key"))
