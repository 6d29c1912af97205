"""HTTP(S) to one registry: connections, TLS, the auth handshake, redirects, errors.

Standard library only (``http.client``). One keep-alive connection per
origin. TLS is verified unless ``tls_verify`` is false, which also allows
plain HTTP (HTTPS is tried first, as containers/image does); no host, not
even ``localhost``, is exempt otherwise. Credentials go only to the
registry's own origin and to the token service its challenge names: a
redirect to another origin (blob storage) is followed without them.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import urllib.parse
from typing import Protocol

from secpod._record import record
from secpod.errors import (
    AuthenticationFailed,
    Error,
    MalformedInput,
    NotFound,
    RegistryError,
    RegistryUnreachable,
)
from secpod.images.registry._auth import Challenge, Credentials, parse_challenges

MAX_ERROR_BODY = 64 << 10
MAX_TOKEN_BODY = 1 << 20
MAX_REDIRECTS = 5
PROBE_TIMEOUT = 5.0
BLOCK = 1 << 20
_REDIRECTS = {301, 302, 303, 307, 308}
_TLS_HINT = "for a registry that serves plain HTTP or a self-signed certificate, use " \
            "--tls-verify=false"


class Body(Protocol):
    """A request body http.client streams: anything with ``read``."""

    def read(self, size: int = -1, /) -> bytes: ...


def api_host(domain: str) -> str:
    """Where a reference's registry answers the API: Docker Hub's is not docker.io."""
    return "registry-1.docker.io" if domain == "docker.io" else domain


def _split_host(netloc: str, scheme: str) -> tuple[str, int]:
    parsed = urllib.parse.urlsplit(f"//{netloc}")
    host = parsed.hostname or netloc
    port = parsed.port or (443 if scheme == "https" else 80)
    return host, port


@record(frozen=True)
class Origin:
    scheme: str
    host: str
    port: int

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


class Response:
    """A response whose body is read at most once, bounded; closing frees the connection."""

    def __init__(self, raw: http.client.HTTPResponse, conn: http.client.HTTPConnection,
                 url: str) -> None:
        self.raw = raw
        self.status = raw.status
        self.headers = raw.headers
        self.url = url
        self._conn = conn

    def header(self, name: str) -> str | None:
        return self.raw.getheader(name)

    def read_bounded(self, limit: int, what: str) -> bytes:
        """The whole body, refusing more than ``limit`` bytes. Raises MalformedInput."""
        length = self.header("Content-Length")
        if length is not None and length.isdigit() and int(length) > limit:
            self.close()
            raise MalformedInput(f"{what} is larger than {limit} bytes "
                                 f"(the registry says {length})")
        try:
            data = self.raw.read(limit + 1)
        except (OSError, http.client.HTTPException) as e:
            self._conn.close()
            raise RegistryError(f"connection lost while reading {what}: {e}",
                                hint="try again") from e
        if len(data) > limit:
            self.close()
            raise MalformedInput(f"{what} is larger than {limit} bytes")
        self.close()
        return data

    def close(self) -> None:
        if self.raw.isclosed():
            return
        try:
            # A short unread body (an error document) is cheaper to drain than to reconnect.
            self.raw.read(MAX_ERROR_BODY)
        except (OSError, http.client.HTTPException):
            pass
        if not self.raw.isclosed():
            self.raw.close()
            self._conn.close()


def _unreachable(origin: Origin, e: BaseException) -> RegistryUnreachable:
    where = origin.netloc
    if isinstance(e, ssl.SSLCertVerificationError):
        return RegistryUnreachable(
            f"the TLS certificate of {where} is not trusted ({e.verify_message})",
            hint="install the registry's CA certificate (SSL_CERT_FILE), or " + _TLS_HINT)
    if isinstance(e, ssl.SSLError):
        return RegistryUnreachable(f"TLS handshake with {where} failed ({e.reason or e})",
                                   hint="the registry may serve plain HTTP; " + _TLS_HINT)
    if isinstance(e, ConnectionRefusedError):
        return RegistryUnreachable(
            f"cannot connect to {where}: connection refused",
            hint="check the registry address and that it is running"
                 + ("" if origin.scheme == "http" else "; " + _TLS_HINT))
    if isinstance(e, socket.gaierror):
        return RegistryUnreachable(f"cannot resolve {origin.host}: {e.strerror}",
                                   hint="check the registry name in the reference")
    if isinstance(e, TimeoutError):
        return RegistryUnreachable(f"connection to {where} timed out",
                                   hint="check the registry address and your network")
    if isinstance(e, http.client.HTTPException):
        proto = origin.scheme.upper()
        return RegistryUnreachable(f"{where} does not answer {proto} ({type(e).__name__}: {e})",
                                   hint=_TLS_HINT)
    reason = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return RegistryUnreachable(f"cannot connect to {where}: {reason}",
                               hint="check the registry address and your network")


def error_from(resp: Response, what: str, host: str) -> Error:
    """An Error for a registry's error answer, with its ``errors[].code`` if it sent one."""
    body = b""
    try:
        body = resp.raw.read(MAX_ERROR_BODY)
    except (OSError, http.client.HTTPException):
        pass
    resp.close()
    codes = []
    try:
        doc = json.loads(body)
        for err in doc.get("errors", [])[:5]:
            code, message = str(err.get("code", "")), str(err.get("message", ""))
            codes.append(f"{code}: {message}"[:200] if message else code[:200])
    except (ValueError, AttributeError, TypeError):
        pass
    detail = f"{resp.status} {'; '.join(codes) or resp.raw.reason}"
    if resp.status == 404:
        return NotFound(f"{what} not found on {host} ({detail})",
                        hint="check the repository name and tag")
    if resp.status == 403:
        return AuthenticationFailed(f"{host} denied access to {what} ({detail})",
                                    hint="the account lacks permission for this repository")
    return RegistryError(f"{host} failed the request for {what} ({detail})",
                         hint="try again; if it persists, the registry's log says why")


class Session:
    """Requests to one registry with auth. ``scope`` is the token scope a request needs."""

    def __init__(self, domain: str, *, tls_verify: bool = True,
                 credentials: Credentials | None = None, timeout: float = 60) -> None:
        self.domain = domain
        self.tls_verify = tls_verify
        self.credentials = credentials
        self.timeout = timeout
        self._conns: dict[Origin, http.client.HTTPConnection] = {}
        self._used: set[Origin] = set()
        self._origin: Origin | None = None
        self._challenge: Challenge | None = None
        self._tokens: dict[str, str] = {}
        self._ctx: ssl.SSLContext | None = None

    # --- connections -------------------------------------------------------------------

    def _tls(self) -> ssl.SSLContext:
        if self._ctx is None:
            if self.tls_verify:
                self._ctx = ssl.create_default_context()
            else:
                # Nothing is verified, so the CA store is not loaded (that costs 50 ms).
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                self._ctx = ctx
        return self._ctx

    def _conn(self, origin: Origin) -> http.client.HTTPConnection:
        conn = self._conns.get(origin)
        if conn is None:
            if origin.scheme == "https":
                conn = http.client.HTTPSConnection(origin.host, origin.port, timeout=self.timeout,
                                                   context=self._tls(), blocksize=BLOCK)
            else:
                conn = http.client.HTTPConnection(origin.host, origin.port, timeout=self.timeout,
                                                  blocksize=BLOCK)
            self._conns[origin] = conn
        return conn

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()

    def _send(self, origin: Origin, method: str, target: str, headers: dict[str, str],
              body: bytes | Body | None) -> Response:
        """One request/response; a stale keep-alive connection is retried once."""
        for attempt in (1, 2):
            conn = self._conn(origin)
            reused = origin in self._used
            try:
                conn.request(method, target, body=body, headers=headers)
                raw = conn.getresponse()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                conn.close()
                if attempt == 1 and reused and (body is None or isinstance(body, bytes)):
                    self._used.discard(origin)
                    continue
                raise _unreachable(origin, e) from e
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                raise _unreachable(origin, e) from e
            self._used.add(origin)
            return Response(raw, conn, f"{origin.scheme}://{origin.netloc}{target}")
        raise AssertionError("unreachable")  # pragma: no cover

    # --- the registry's origin and auth -----------------------------------------------------

    def origin(self) -> Origin:
        """The registry's origin, found by pinging ``/v2/`` (which also learns the challenge).

        Raises RegistryUnreachable, RegistryError.
        """
        if self._origin is not None:
            return self._origin
        netloc = api_host(self.domain)
        schemes = ["https"] if self.tls_verify else ["https", "http"]
        last: Error | None = None
        for scheme in schemes:
            host, port = _split_host(netloc, scheme)
            origin = Origin(scheme, host, port)
            probing = scheme == "https" and not self.tls_verify
            conn = self._conn(origin)
            if probing:
                # A plain-HTTP server may never answer a TLS hello: do not wait long.
                conn.timeout = min(self.timeout, PROBE_TIMEOUT)
            try:
                resp = self._send(origin, "GET", "/v2/", {"Accept": "application/json"}, None)
            except RegistryUnreachable as e:
                last = e
                self._conns.pop(origin, None)
                continue
            finally:
                conn.timeout = self.timeout
                if conn.sock is not None:
                    conn.sock.settimeout(self.timeout)
            if resp.status == 401:
                self._learn(resp)
                resp.close()
            elif resp.status == 200:
                resp.close()
            else:
                resp.close()
                last = RegistryError(
                    f"{origin.netloc} does not answer as a container registry "
                    f"(GET /v2/ returned {resp.status})",
                    hint="check the registry address in the reference")
                continue
            self._origin = origin
            return origin
        assert last is not None
        raise last

    def _learn(self, resp: Response) -> None:
        header = resp.header("WWW-Authenticate") or ""
        challenges = parse_challenges(header)
        bearer = [c for c in challenges if c.scheme == "bearer" and c.params.get("realm")]
        basic = [c for c in challenges if c.scheme == "basic"]
        self._challenge = (bearer or basic or [Challenge("basic", {})])[0]

    def _authorization(self, scope: str | None) -> dict[str, str]:
        ch = self._challenge
        if ch is None:
            return {}
        if ch.scheme == "basic":
            return {"Authorization": self.credentials.basic()} if self.credentials else {}
        key = scope or ""
        token = self._tokens.get(key)
        if token is None:
            token = self._fetch_token(ch, scope)
            self._tokens[key] = token
        return {"Authorization": f"Bearer {token}"}

    def _fetch_token(self, ch: Challenge, scope: str | None) -> str:
        realm = urllib.parse.urlsplit(ch.params["realm"])
        host = api_host(self.domain)
        if realm.scheme not in ("https", "http") or not realm.netloc:
            raise RegistryError(f"{host} names an invalid token service {ch.params['realm']!r}")
        if realm.scheme == "http" and self.tls_verify:
            raise RegistryError(f"{host} names a token service over plain HTTP "
                                f"({ch.params['realm']}); refusing to send credentials there",
                                hint="with --tls-verify=false secpod accepts it, for a registry "
                                     "on a network you trust")
        query = [(k, v) for k, v in urllib.parse.parse_qsl(realm.query)]
        if ch.params.get("service"):
            query.append(("service", ch.params["service"]))
        if scope:
            query.append(("scope", scope))
        target = (realm.path or "/") + ("?" + urllib.parse.urlencode(query) if query else "")
        h, p = _split_host(realm.netloc, realm.scheme)
        origin = Origin(realm.scheme, h, p)
        headers = {"Accept": "application/json"}
        if self.credentials is not None:
            headers["Authorization"] = self.credentials.basic()
        resp = self._send(origin, "GET", target, headers, None)
        if resp.status in (401, 403):
            resp.close()
            raise self._auth_failed()
        if resp.status != 200:
            raise error_from(resp, "an access token", f"token service {origin.netloc}")
        body = resp.read_bounded(MAX_TOKEN_BODY, "the token service's answer")
        try:
            doc = json.loads(body)
            token = doc.get("token") or doc.get("access_token")
        except (ValueError, AttributeError) as e:
            raise MalformedInput(f"the token service of {host} sent malformed JSON") from e
        if not isinstance(token, str) or not token or any(c in token for c in "\r\n"):
            raise MalformedInput(f"the token service of {host} sent no token")
        return token

    def _auth_failed(self) -> AuthenticationFailed:
        host = api_host(self.domain)
        if self.credentials is None:
            return AuthenticationFailed(
                f"{host} requires authentication",
                hint="give --creds USER:PASSWORD or --authfile FILE (containers-auth.json)")
        return AuthenticationFailed(
            f"authentication failed for {host} (user {self.credentials.username!r}, "
            f"credentials from {self.credentials.source})",
            hint="check the user name and password given with --creds or in --authfile")

    # --- requests --------------------------------------------------------------------------

    def request(self, method: str, target: str, *, scope: str | None,
                headers: dict[str, str] | None = None,
                body: bytes | Body | None = None,
                follow: bool = False) -> Response:
        """Send ``method target`` to the registry with auth; return the final response.

        ``target`` is a path (``/v2/...``) or an absolute URL on the registry's origin
        (an upload Location). ``follow`` follows redirects (GET/HEAD), without
        credentials to other origins. A 401 after authenticating raises
        AuthenticationFailed; other statuses are the caller's to judge.
        Raises RegistryUnreachable, RegistryError, AuthenticationFailed.
        """
        origin = self.origin()
        target_origin, path = self._resolve(origin, target)
        self._no_downgrade(origin, target_origin)
        own = target_origin == origin
        hdrs = dict(headers or {})
        if own:
            hdrs.update(self._authorization(scope))
        resp = self._send(target_origin, method, path, hdrs, body)
        if resp.status == 401 and own:
            had = self._challenge
            self._learn(resp)
            resp.close()
            self._tokens.pop(scope or "", None)
            now = self._challenge
            # Retry only when something changed: a (new or expired) token to fetch, or
            # a challenge that first appeared here (a /v2/ that answered without one).
            fresh = now is not None and (now.scheme == "bearer" or had is None)
            if not fresh or not (body is None or isinstance(body, bytes)):
                raise self._auth_failed()
            hdrs = dict(headers or {})
            hdrs.update(self._authorization(scope))
            resp = self._send(target_origin, method, path, hdrs, body)
            if resp.status == 401:
                resp.close()
                raise self._auth_failed()
        if follow and resp.status in _REDIRECTS:
            return self._follow(origin, resp, method, headers or {}, scope)
        return resp

    def _no_downgrade(self, origin: Origin, target: Origin) -> None:
        """A registry reached over HTTPS may not send us to plain HTTP (a redirect, an
        upload Location) unless TLS verification is off."""
        if target.scheme == "http" and origin.scheme == "https" and self.tls_verify:
            raise RegistryError(f"{origin.netloc} sent secpod to plain HTTP ({target.netloc})",
                                hint="refusing to downgrade; " + _TLS_HINT)

    def _resolve(self, origin: Origin, target: str) -> tuple[Origin, str]:
        if target.startswith("/"):
            return origin, target
        parts = urllib.parse.urlsplit(target)
        if not parts.scheme or not parts.netloc:
            raise RegistryError(f"{origin.netloc} sent an invalid location {target[:200]!r}")
        h, p = _split_host(parts.netloc, parts.scheme)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return Origin(parts.scheme, h, p), path

    def _follow(self, origin: Origin, resp: Response, method: str,
                headers: dict[str, str], scope: str | None) -> Response:
        url = resp.url
        for _ in range(MAX_REDIRECTS):
            location = resp.header("Location")
            resp.close()
            if not location:
                raise RegistryError(f"{origin.netloc} sent a redirect without a Location")
            url = urllib.parse.urljoin(url, location)
            nxt, path = self._resolve(origin, url)
            self._no_downgrade(origin, nxt)
            hdrs = dict(headers)
            if nxt == origin:
                hdrs.update(self._authorization(scope))
            resp = self._send(nxt, method, path, hdrs, None)
            if resp.status not in _REDIRECTS:
                return resp
        resp.close()
        raise RegistryError(f"{origin.netloc}: more than {MAX_REDIRECTS} redirects")
