"""http.tls_cert / http.tls_key: the daemon's HTTP server speaks HTTPS directly."""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import ssl
import subprocess
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from taskflowd.api.openapi import REGISTRY_KEY, ApiRegistry
from taskflowd.api.routes import meta
from taskflowd.api.server import HttpServer
from taskflowd.config import HttpSettings
from tests.services import unavailable


def _with_cryptography(cert: Path, key: Path) -> bool:
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        return False
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return True


def _with_openssl(cert: Path, key: Path) -> bool:
    openssl = shutil.which("openssl")
    if openssl is None:
        return False
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return True


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    if not (_with_cryptography(cert, key) or _with_openssl(cert, key)):
        unavailable("a certificate generator", "neither cryptography nor openssl is installed")
    key.chmod(0o600)
    return cert, key


# HttpServer still passes shutdown_timeout to TCPSite, deprecated by aiohttp 3.14.
async def test_health_over_https(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    app = web.Application()
    registry = ApiRegistry(app, "taskflowd", "test")
    app[REGISTRY_KEY] = registry
    meta.install(registry)
    server = HttpServer(
        lambda: app, HttpSettings(host="127.0.0.1", port=0, tls_cert=str(cert), tls_key=str(key))
    )
    await server.start()
    try:
        trust = ssl.create_default_context(cafile=str(cert))
        async with aiohttp.ClientSession() as session:
            async with session.get(f"https://127.0.0.1:{server.port}/health", ssl=trust) as r:
                assert r.status == 200
                assert await r.json() == {"status": "ok"}
            # An untrusting client refuses the self-signed certificate: TLS is real.
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await session.get(f"https://127.0.0.1:{server.port}/health")
    finally:
        await server.stop()
