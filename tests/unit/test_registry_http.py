"""The registry client's HTTP behaviour against scripted servers on loopback: auth
handshakes, redirects without credentials, digest and size checks, error mapping."""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from secpod.errors import (
    AuthenticationFailed,
    DigestMismatch,
    MalformedInput,
    NotFound,
    RegistryError,
    RegistryUnreachable,
)
from secpod.images._manifest import descriptor
from secpod.images.registry import RegistryClient
from secpod.images.registry._auth import Credentials

Answer = tuple[int, dict[str, str], bytes]
Route = Callable[[http.server.BaseHTTPRequestHandler], Answer]


@dataclass
class Server:
    host: str
    routes: dict[tuple[str, str], Route | Answer] = field(default_factory=dict)
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)


@pytest.fixture
def servers() -> Iterator[Callable[[], Server]]:
    started: list[http.server.ThreadingHTTPServer] = []

    def make() -> Server:
        state = Server(host="")

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _do(self) -> None:
                path = self.path.split("?")[0]
                length = int(self.headers.get("Content-Length") or 0)
                self.body = self.rfile.read(length) if length else b""
                state.seen.append((self.command, self.path, dict(self.headers)))
                route = state.routes.get((self.command, path))
                status, headers, body = (route(self) if callable(route) else route
                                         ) if route else (404, {}, b'{"errors":[{"code":'
                                                               b'"NAME_UNKNOWN"}]}')
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                if "Content-Length" not in headers:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = _do  # noqa: N815

        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        srv.daemon_threads = True
        srv.block_on_close = False  # keep-alive clients of a test may still be connected
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02},
                         daemon=True).start()
        started.append(srv)
        state.host = f"127.0.0.1:{srv.server_address[1]}"
        return state

    yield make
    for srv in started:
        srv.shutdown()
        srv.server_close()


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


MANIFEST = json.dumps({"schemaVersion": 2,
                       "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                  "digest": "sha256:" + "0" * 64, "size": 2},
                       "layers": []}).encode()
OCI = {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_basic_auth_is_sent_after_the_challenge(servers: Callable[[], Server]) -> None:
    s = servers()
    want = basic("u", "p")

    def manifest(req: http.server.BaseHTTPRequestHandler) -> Answer:
        if req.headers.get("Authorization") != want:
            return 401, {"WWW-Authenticate": 'Basic realm="r"'}, b""
        return 200, OCI, MANIFEST

    s.routes[("GET", "/v2/")] = (401, {"WWW-Authenticate": 'Basic realm="r"'}, b"")
    s.routes[("GET", "/v2/a/manifests/1")] = manifest
    good = RegistryClient(s.host, tls_verify=False, credentials=Credentials("u", "p", "test"))
    assert good.get_manifest("a", "1").digest == sha(MANIFEST)
    bad = RegistryClient(s.host, tls_verify=False, credentials=Credentials("u", "x", "test"))
    with pytest.raises(AuthenticationFailed, match=f"authentication failed for {s.host}"):
        bad.get_manifest("a", "1")
    with pytest.raises(AuthenticationFailed, match=f"{s.host} requires authentication"):
        RegistryClient(s.host, tls_verify=False).get_manifest("a", "1")


def test_bearer_token_is_fetched_once_per_scope(servers: Callable[[], Server]) -> None:
    registry, auth = servers(), servers()
    challenge = {"WWW-Authenticate": f'Bearer realm="http://{auth.host}/token",service="svc"'}
    registry.routes[("GET", "/v2/")] = (401, challenge, b"")

    def manifest(req: http.server.BaseHTTPRequestHandler) -> Answer:
        if req.headers.get("Authorization") != "Bearer T0K3N":
            return 401, challenge, b""
        return 200, OCI, MANIFEST

    registry.routes[("GET", "/v2/team/app/manifests/1")] = manifest
    auth.routes[("GET", "/token")] = (200, {}, b'{"token": "T0K3N"}')
    with RegistryClient(registry.host, tls_verify=False,
                        credentials=Credentials("u", "p", "t")) as client:
        client.get_manifest("team/app", "1")
        client.get_manifest("team/app", "1")
    [(_, target, headers)] = auth.seen
    assert "scope=repository%3Ateam%2Fapp%3Apull" in target and "service=svc" in target
    assert headers["Authorization"] == basic("u", "p")
    # the registry itself never saw the password
    assert all(h.get("Authorization", "").startswith(("Bearer", "")) and
               not h.get("Authorization", "").startswith("Basic") for _, _, h in registry.seen)


def test_token_service_refusing_credentials(servers: Callable[[], Server]) -> None:
    registry, auth = servers(), servers()
    registry.routes[("GET", "/v2/")] = (401, {
        "WWW-Authenticate": f'Bearer realm="http://{auth.host}/token"'}, b"")
    auth.routes[("GET", "/token")] = (401, {}, b"")
    client = RegistryClient(registry.host, tls_verify=False,
                            credentials=Credentials("u", "bad", "--creds"))
    with pytest.raises(AuthenticationFailed, match="authentication failed"):
        client.get_manifest("a", "1")


def test_plain_http_token_service_needs_tls_verify_false(servers: Callable[[], Server]) -> None:
    registry = servers()
    from secpod.images.registry._auth import Challenge
    from secpod.images.registry._http import Session

    session = Session(registry.host, tls_verify=True)
    with pytest.raises(RegistryError, match="refusing to send credentials"):
        session._fetch_token(Challenge("bearer", {"realm": "http://elsewhere/token"}), None)


def test_redirect_to_another_origin_drops_credentials(servers: Callable[[], Server]) -> None:
    registry, storage = servers(), servers()
    blob = b"layer bytes"
    registry.routes[("GET", "/v2/")] = (401, {"WWW-Authenticate": 'Basic realm="r"'}, b"")
    registry.routes[("GET", f"/v2/a/blobs/{sha(blob)}")] = (
        307, {"Location": f"http://{storage.host}/store/obj?sig=1"}, b"")
    storage.routes[("GET", "/store/obj")] = (200, {}, blob)
    client = RegistryClient(registry.host, tls_verify=False,
                            credentials=Credentials("u", "p", "t"))
    d = descriptor({"mediaType": "x", "digest": sha(blob), "size": len(blob)}, "b")
    assert client.read_blob("a", d, 1 << 20) == blob
    assert registry.seen[-1][2]["Authorization"] == basic("u", "p")
    [(_, target, headers)] = storage.seen
    assert target == "/store/obj?sig=1" and "Authorization" not in headers


def test_manifest_checks(servers: Callable[[], Server]) -> None:
    s = servers()
    s.routes[("GET", "/v2/")] = (200, {}, b"{}")
    s.routes[("GET", "/v2/a/manifests/lying")] = (200, {**OCI, "Docker-Content-Digest":
                                                        "sha256:" + "1" * 64}, MANIFEST)
    s.routes[("GET", "/v2/a/manifests/" + "sha256:" + "2" * 64)] = (200, OCI, MANIFEST)
    s.routes[("GET", "/v2/a/manifests/huge")] = (200, OCI, b" " * (4 << 20) + b"{}")
    client = RegistryClient(s.host, tls_verify=False)
    with pytest.raises(DigestMismatch, match="does not match the digest the registry names"):
        client.get_manifest("a", "lying")
    with pytest.raises(DigestMismatch, match="content is " + sha(MANIFEST)):
        client.get_manifest("a", "sha256:" + "2" * 64)
    with pytest.raises(MalformedInput, match="larger than"):
        client.get_manifest("a", "huge")
    with pytest.raises(NotFound, match=r"not found on .* \(404 NAME_UNKNOWN"):
        client.get_manifest("a", "missing")


def test_blob_size_is_checked_before_reading(servers: Callable[[], Server]) -> None:
    s = servers()
    blob = b"0123456789"
    s.routes[("GET", "/v2/")] = (200, {}, b"{}")
    s.routes[("GET", f"/v2/a/blobs/{sha(blob)}")] = (200, {}, blob + b"more")
    d = descriptor({"mediaType": "x", "digest": sha(blob), "size": len(blob)}, "b")
    with pytest.raises(DigestMismatch, match="the registry sends 14 bytes, its descriptor says 10"):
        RegistryClient(s.host, tls_verify=False).open_blob("a", d)


def test_error_statuses(servers: Callable[[], Server]) -> None:
    s = servers()
    s.routes[("GET", "/v2/")] = (200, {}, b"{}")
    s.routes[("GET", "/v2/a/manifests/denied")] = (403, {}, b'{"errors":[{"code":"DENIED",'
                                                          b'"message":"no"}]}')
    s.routes[("GET", "/v2/a/manifests/broken")] = (500, {}, b"oops")
    client = RegistryClient(s.host, tls_verify=False)
    with pytest.raises(AuthenticationFailed, match="denied access .*403 DENIED: no"):
        client.get_manifest("a", "denied")
    with pytest.raises(RegistryError, match="500"):
        client.get_manifest("a", "broken")


def test_not_a_registry(servers: Callable[[], Server]) -> None:
    s = servers()
    with pytest.raises(RegistryError, match="does not answer as a container registry"):
        RegistryClient(s.host, tls_verify=False).get_manifest("a", "1")


def test_tls_required_by_default(servers: Callable[[], Server]) -> None:
    s = servers()
    s.routes[("GET", "/v2/")] = (200, {}, b"{}")
    with pytest.raises(RegistryUnreachable, match="TLS handshake with") as e:
        RegistryClient(s.host).get_manifest("a", "1")
    assert "--tls-verify=false" in (e.value.hint or "")


def test_put_manifest_checks_the_digest_the_registry_names(servers: Callable[[], Server]
                                                           ) -> None:
    s = servers()
    s.routes[("GET", "/v2/")] = (200, {}, b"{}")
    s.routes[("PUT", "/v2/a/manifests/1")] = (201, {"Docker-Content-Digest":
                                                    "sha256:" + "3" * 64}, b"")
    with pytest.raises(RegistryError, match="stored manifest .* as sha256:3"):
        RegistryClient(s.host, tls_verify=False, push=True).put_manifest(
            "a", "1", MANIFEST, OCI["Content-Type"])


def test_referrers_fall_back_to_the_tag(servers: Callable[[], Server]) -> None:
    s = servers()
    subject = "sha256:" + "5" * 64
    index = json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json",
         "digest": "sha256:" + "6" * 64, "size": 10,
         "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json"}]}).encode()
    s.routes[("GET", "/v2/")] = (200, {}, b"{}")
    client = RegistryClient(s.host, tls_verify=False)
    assert client.referrers("a", subject) is None
    s.routes[("GET", "/v2/a/manifests/sha256-" + "5" * 64)] = (
        200, {"Content-Type": "application/vnd.oci.image.index.v1+json"}, index)
    found = client.referrers("a", subject)
    assert found is not None
    entries, where = found
    assert where == "tag sha256-" + "5" * 64 and entries[0].digest == "sha256:" + "6" * 64
    s.routes[("GET", f"/v2/a/referrers/{subject}")] = (
        200, {"Content-Type": "application/vnd.oci.image.index.v1+json"}, index)
    found = client.referrers("a", subject)
    assert found is not None and found[1] == "referrers API"


def test_upload_restarts_when_the_registry_refuses_the_resumed_range(
        servers: Callable[[], Server], tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A chunk breaks after part of it arrived; the registry reports the range it had
    acknowledged (stale), refuses the resumed chunk (416), and the blob starts over."""
    from secpod.images.registry import _http

    s = servers()
    data = bytes(range(256)) * 1000
    blob = tmp_path / "blob"
    blob.write_bytes(data)
    uploads: dict[str, bytearray] = {}
    acked: dict[str, int] = {}
    s.routes[("GET", "/v2/")] = (200, {}, b"{}")

    def start(req: Any) -> Answer:
        name = f"/v2/a/blobs/uploads/u{len(uploads)}"
        uploads[name], acked[name] = bytearray(), 0
        s.routes[("PATCH", name)] = patch
        s.routes[("GET", name)] = status
        s.routes[("PUT", name)] = finish
        return 202, {"Location": name}, b""

    # The uploads whose chunk broke: refused from then on, whether the broken request's
    # partial body reached this server or the connection's reset discarded it (TCP
    # decides that, not the test), as a registry that had taken part of it refuses.
    broken: set[str] = set()

    def patch(req: Any) -> Answer:
        name = req.path.split("?")[0]
        first = int(req.headers["Content-Range"].split("-")[0])
        if first != len(uploads[name]) or name.rsplit("/", 1)[-1] in broken:
            return 416, {}, b'{"errors":[{"code":"BLOB_UPLOAD_INVALID"}]}'
        uploads[name] += req.body
        if len(req.body) == int(req.headers["Content-Length"]):
            acked[name] = len(uploads[name])
        return 202, {"Location": name, "Range": f"0-{len(uploads[name]) - 1}"}, b""

    def status(req: Any) -> Answer:
        name = req.path.split("?")[0]
        return 204, {"Range": f"0-{acked[name] - 1}", "Location": name}, b""

    def finish(req: Any) -> Answer:
        name = req.path.split("?")[0]
        ok = bytes(uploads[name]) + req.body == data and f"digest={sha(data).replace(':', '%3A')}" \
            in req.path
        return (201, {}, b"") if ok else (400, {}, b'{"errors":[{"code":"DIGEST_INVALID"}]}')

    s.routes[("POST", "/v2/a/blobs/uploads/")] = start
    original = _http.Session._send
    sent: list[str] = []

    class Half:
        def __init__(self, inner: Any) -> None:
            self.inner, self.left = inner, 10_000

        def read(self, size: int = -1) -> bytes:
            if self.left <= 0:
                raise ConnectionResetError(104, "reset")
            out: bytes = self.inner.read(min(size, self.left))
            self.left -= len(out)
            return out

    def flaky(self: Any, origin: Any, method: str, target: str, headers: dict[str, str],
              body: Any) -> Any:
        if method == "PATCH":
            sent.append(f"{target.split('/')[-1]} {headers['Content-Range']}")
            if len(sent) == 2:
                broken.add(target.split("?")[0].rsplit("/", 1)[-1])
                body = Half(body)
        return original(self, origin, method, target, headers, body)

    monkeypatch.setattr(_http.Session, "_send", flaky)
    client = RegistryClient(s.host, tls_verify=False, push=True)
    client.upload_blob("a", sha(data), blob, chunk_size=65536, monolithic_max=0)
    assert sent[:4] == ["u0 0-65535", "u0 65536-131071", "u0 65536-131071", "u1 0-65535"]
    assert len(uploads["/v2/a/blobs/uploads/u1"]) == len(data)


def test_no_downgrade_from_https_to_plain_http() -> None:
    from secpod.images.registry._http import Origin, Session

    session = Session("reg.example.com", tls_verify=True)
    session._origin = Origin("https", "reg.example.com", 443)  # as if /v2/ had answered
    with pytest.raises(RegistryError, match=r"sent secpod to plain HTTP \(reg.example.com:80\)"):
        session.request("PUT", "http://reg.example.com/v2/a/blobs/uploads/1", scope=None)


def test_referrers_follow_the_link_header_page_by_page(servers: Callable[[], Server]) -> None:
    """The distribution spec pages the referrers list with `Link: <...>; rel="next"`;
    a next page outside the same referrers list is refused."""
    s = servers()
    subject = "sha256:" + "5" * 64
    base = f"/v2/a/referrers/{subject}"

    def entry(n: int) -> dict[str, Any]:
        return {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": "sha256:" + f"{n:x}" * 64, "size": 10,
                "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json"}

    def page(h: http.server.BaseHTTPRequestHandler) -> Answer:
        last = "last=x" in h.path
        body = json.dumps({"schemaVersion": 2, "manifests": [entry(8 if last else 7)]}).encode()
        headers = {"Content-Type": "application/vnd.oci.image.index.v1+json"}
        if not last:
            headers["Link"] = f'<{base}?n=1&last=x>; rel="next"'
        return 200, headers, body

    s.routes[("GET", "/v2/")] = (200, {}, b"{}")
    s.routes[("GET", base)] = page
    found = RegistryClient(s.host, tls_verify=False).referrers("a", subject)
    assert found is not None
    assert [d.digest for d in found[0]] == [entry(7)["digest"], entry(8)["digest"]]
    assert found[1] == "referrers API"
    s.routes[("GET", base)] = (200, {"Content-Type": "application/vnd.oci.image.index.v1+json",
                                     "Link": '</v2/b/referrers/x>; rel="next"'},
                               json.dumps({"schemaVersion": 2, "manifests": []}).encode())
    with pytest.raises(MalformedInput, match="not the referrers of the same manifest"):
        RegistryClient(s.host, tls_verify=False).referrers("a", subject)
