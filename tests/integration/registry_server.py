"""Real registries on loopback for the registry tests: Debian's docker-registry.

``start_registry`` writes a config (version 0.1, filesystem storage in its own
folder, delete enabled, http on 127.0.0.1 and a free port), optionally with
htpasswd auth (bcrypt, from ``htpasswd -Bbn``), TLS (a throwaway CA), or token
auth against :class:`TokenService` (a small bearer-token endpoint that checks
basic credentials and signs ES256 JWTs the registry verifies by their x5c
chain). It waits until ``/v2/`` answers and the caller stops it.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import http.server
import ipaddress
import json
import os
import secrets
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

REGISTRY_BIN = "/usr/bin/docker-registry"
SERVICE = "secpod-test-registry"
ISSUER = "secpod-test-issuer"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Registry:
    """A running docker-registry: ``host`` is ``127.0.0.1:PORT``."""

    host: str
    storage: Path
    process: subprocess.Popen[bytes]
    log: Path
    scheme: str = "http"
    extra: dict[str, Any] = field(default_factory=dict)

    def blob_file(self, digest: str) -> Path:
        hexpart = digest.partition(":")[2]
        return (self.storage / "docker" / "registry" / "v2" / "blobs" / "sha256" / hexpart[:2]
                / hexpart / "data")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass(frozen=True)
class TLSFiles:
    ca: Path
    cert: Path
    key: Path


def make_tls(folder: Path) -> TLSFiles:
    """A CA and a server certificate for 127.0.0.1 signed by it (PEM files)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "secpod test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=7))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    files = TLSFiles(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                            serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
    files.ca.chmod(0o644)
    return files


def htpasswd(folder: Path, user: str, password: str) -> Path:
    out = subprocess.run(["htpasswd", "-Bbn", user, password], check=True,
                         capture_output=True, text=True).stdout
    path = folder / "htpasswd"
    path.write_text(out)
    return path


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenService:
    """A bearer-token endpoint: basic credentials in, an ES256 JWT for the scope out."""

    def __init__(self, folder: Path, users: dict[str, str]) -> None:
        now = datetime.datetime.now(datetime.UTC)
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "secpod test token signer")])
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key())
                     .serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(days=1))
                     .not_valid_after(now + datetime.timedelta(days=7))
                     .sign(self.key, hashes.SHA256()))
        folder.mkdir(parents=True, exist_ok=True)
        self.bundle = folder / "token-signer.pem"
        self.bundle.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self.users = users
        self.requests: list[dict[str, Any]] = []
        self.port = free_port()
        service = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                service._handle(self)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def _handle(self, req: http.server.BaseHTTPRequestHandler) -> None:
        url = urllib.parse.urlsplit(req.path)
        query = urllib.parse.parse_qs(url.query)
        auth = req.headers.get("Authorization", "")
        user = None
        if auth.startswith("Basic "):
            name, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            if self.users.get(name) != password:
                self.requests.append({"user": name, "ok": False})
                req.send_response(401)
                req.send_header("Content-Type", "application/json")
                req.end_headers()
                req.wfile.write(b'{"errors":[{"code":"UNAUTHORIZED"}]}')
                return
            user = name
        access = []
        for scope in query.get("scope", []):
            kind, _, rest = scope.partition(":")
            repo, _, actions = rest.rpartition(":")
            if user is not None:
                access.append({"type": kind, "name": repo, "actions": actions.split(",")})
        self.requests.append({"user": user, "ok": True, "scope": query.get("scope", [])})
        token = self._jwt(user or "", query.get("service", [""])[0], access)
        body = json.dumps({"token": token, "expires_in": 300}).encode()
        req.send_response(200)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        req.wfile.write(body)

    def _jwt(self, subject: str, audience: str, access: list[dict[str, Any]]) -> str:
        now = int(time.time())
        header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(
            self.cert.public_bytes(serialization.Encoding.DER)).decode()]}
        claims = {"iss": ISSUER, "sub": subject, "aud": audience, "exp": now + 300,
                  "nbf": now - 30, "iat": now, "jti": secrets.token_hex(8), "access": access}
        signing_input = (_b64url(json.dumps(header).encode()) + "."
                         + _b64url(json.dumps(claims).encode()))
        der = self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return signing_input + "." + _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_registry(folder: Path, *, htpasswd_file: Path | None = None,
                   tls: TLSFiles | None = None, token: TokenService | None = None) -> Registry:
    """Start docker-registry with its own storage under ``folder``; wait for ``/v2/``."""
    if not Path(REGISTRY_BIN).exists():
        pytest.fail(f"{REGISTRY_BIN} is missing: install Debian's docker-registry "
                    "(scripts/test-env.sh does)")
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    storage = folder / "storage"
    lines = ["version: 0.1", "log:", "  level: warn", "storage:", "  filesystem:",
             f"    rootdirectory: {storage}", "  delete:", "    enabled: true",
             "http:", f"  addr: 127.0.0.1:{port}", f"  secret: {secrets.token_hex(16)}"]
    if tls is not None:
        lines += ["  tls:", f"    certificate: {tls.cert}", f"    key: {tls.key}"]
    if htpasswd_file is not None:
        lines += ["auth:", "  htpasswd:", "    realm: secpod-test",
                  f"    path: {htpasswd_file}"]
    if token is not None:
        lines += ["auth:", "  token:", f"    realm: {token.realm}", f"    service: {SERVICE}",
                  f"    issuer: {ISSUER}", f"    rootcertbundle: {token.bundle}"]
    config = folder / "config.yml"
    config.write_text("\n".join(lines) + "\n")
    log = folder / "registry.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([REGISTRY_BIN, "serve", str(config)], stdout=out,
                                stderr=subprocess.STDOUT, env={**os.environ, "OTEL_SDK_DISABLED": "true"})
    scheme = "https" if tls is not None else "http"
    reg = Registry(host=f"127.0.0.1:{port}", storage=storage, process=proc, log=log,
                   scheme=scheme)
    ctx = ssl.create_default_context(cafile=str(tls.ca)) if tls is not None else None
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"docker-registry exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            import urllib.error
            import urllib.request

            urllib.request.urlopen(f"{scheme}://127.0.0.1:{port}/v2/", timeout=1,  # noqa: S310
                                   context=ctx)
            return reg
        except urllib.error.HTTPError as e:
            if e.code == 401:
                return reg
        except OSError:
            pass
        time.sleep(0.05)
    reg.stop()
    pytest.fail(f"docker-registry did not answer on {reg.host}: {log.read_text()[-2000:]}")


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()
