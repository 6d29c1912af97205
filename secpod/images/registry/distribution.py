"""The OCI distribution API, client side: manifests, blobs, uploads, referrers.

Everything a registry sends is untrusted: manifests are read bounded and
checked against the digest asked for (or the one the registry names), blobs
are streamed and never read past their descriptor's size plus one byte, and
every JSON document goes through secpod.images' validators.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from secpod._record import record
from secpod.errors import (
    DigestMismatch,
    MalformedInput,
    NotFound,
    RegistryError,
    RegistryUnreachable,
)
from secpod.images._manifest import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    MAX_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    check_digest,
    descriptor,
    load_json,
)
from secpod.images.registry._auth import Credentials
from secpod.images.registry._http import Response, Session, api_host, error_from

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any, BinaryIO

ALL_MANIFESTS = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST)
MONOLITHIC_MAX = 32 << 20
CHUNK = 32 << 20
MAX_RESUMES = 3
_TAMPERED = "the registry's copy is corrupt or was tampered with; nothing was stored"

Progress = Callable[[str], None]


@record(frozen=True)
class Manifest:
    """Manifest bytes as fetched and checked: ``digest`` is sha256 of ``data``."""

    data: bytes
    media_type: str
    digest: str


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _digest_of(data: bytes, alg: str) -> str:
    return f"{alg}:{hashlib.new(alg, data).hexdigest()}"


def _media_type(resp: Response, data: bytes) -> str:
    header = (resp.header("Content-Type") or "").split(";")[0].strip()
    if header in ALL_MANIFESTS:
        return header
    try:
        body_type = load_json(data, "manifest").get("mediaType")
    except MalformedInput:
        body_type = None
    if isinstance(body_type, str) and body_type:
        return body_type
    return header


class _BlobReader(io.RawIOBase):
    """A blob's body, cut off at ``limit`` bytes, with per-blob progress."""

    def __init__(self, resp: Response, limit: int, label: str, size: int,
                 progress: Progress | None) -> None:
        self._resp = resp
        self._left = limit
        self._label = label
        self._size = size
        self._done = 0
        self._say = progress
        self._next = max(size // 4, 32 << 20)
        self._reported = False
        self._t0 = time.monotonic()

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self._left <= 0:
            return 0
        view = memoryview(b)[:min(len(b), self._left)]
        try:
            n = self._resp.raw.readinto(view)
        except (OSError, ValueError, http.client.HTTPException) as e:
            raise RegistryError(f"connection lost while reading {self._label}: {e}",
                                hint="run the pull again") from e
        self._left -= n
        self._done += n
        if self._say is not None and not self._reported:
            if n == 0 or self._done >= self._size:
                self._reported = True
                self._report(final=True)
            elif self._done >= self._next:
                self._report(final=False)
        return n

    def _report(self, *, final: bool) -> None:
        assert self._say is not None
        from secpod.images import human_size

        self._next = self._done + max(self._size // 4, 32 << 20)
        if final:
            secs = max(time.monotonic() - self._t0, 1e-6)
            self._say(f"{self._label}: {human_size(self._done)} received "
                      f"({human_size(int(self._done / secs))}/s)")
        else:
            self._say(f"{self._label}: {human_size(self._done)} of {human_size(self._size)}")

    def close(self) -> None:
        if not self.closed:
            self._resp.close()
        super().close()


class _Window:
    """``n`` bytes of a file from ``offset``: an upload chunk http.client can send."""

    def __init__(self, f: BinaryIO, offset: int, n: int,
                 tick: Callable[[int], None]) -> None:
        f.seek(offset)
        self._f = f
        self._left = n
        self._tick = tick

    def read(self, size: int = -1, /) -> bytes:
        if self._left <= 0:
            return b""
        want = self._left if size < 0 else min(size, self._left)
        data = self._f.read(want)
        self._left -= len(data)
        self._tick(len(data))
        return data


class RegistryClient:
    """One registry, one set of credentials. ``push`` asks tokens for pull and push."""

    def __init__(self, domain: str, *, tls_verify: bool = True,
                 credentials: Credentials | None = None, push: bool = False,
                 timeout: float = 60) -> None:
        self.domain = domain
        self.host = api_host(domain)
        self.session = Session(domain, tls_verify=tls_verify, credentials=credentials,
                               timeout=timeout)
        self._actions = "pull,push" if push else "pull"

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _scope(self, repo: str) -> str:
        return f"repository:{repo}:{self._actions}"

    def _what(self, repo: str, ref: str) -> str:
        sep = "@" if ":" in ref and ref.split(":")[0] in ("sha256", "sha512") else ":"
        return f"{self.host}/{repo}{sep}{ref}"

    # --- manifests ---------------------------------------------------------------------

    def get_manifest(self, repo: str, ref: str, *,
                     accept: tuple[str, ...] = ALL_MANIFESTS,
                     expect: Descriptor | None = None) -> Manifest:
        """Fetch a manifest or index by tag or digest, checked.

        By digest (or ``expect``): the bytes must hash to it (and have its size).
        By tag: they must hash to the ``Docker-Content-Digest`` the registry sends.
        Raises NotFound, DigestMismatch, MalformedInput, RegistryError.
        """
        what = f"manifest {self._what(repo, ref)}"
        resp = self.session.request("GET", f"/v2/{repo}/manifests/{ref}",
                                    scope=self._scope(repo), follow=True,
                                    headers={"Accept": ", ".join(accept)})
        if resp.status != 200:
            raise error_from(resp, what, self.host)
        data = resp.read_bounded(MAX_MANIFEST, what)
        pinned = expect.digest if expect is not None else (
            ref if ref.startswith(("sha256:", "sha512:")) else None)
        if pinned is not None:
            check_digest(pinned, what)
            got = _digest_of(data, pinned.partition(":")[0])
            if got != pinned:
                raise DigestMismatch(f"{what}: content is {got}", hint=_TAMPERED)
            if expect is not None and len(data) != expect.size:
                raise DigestMismatch(f"{what}: {len(data)} bytes, its descriptor says "
                                     f"{expect.size}", hint=_TAMPERED)
        named = resp.header("Docker-Content-Digest")
        if named:
            try:
                named = check_digest(named.strip(), f"{what}: Docker-Content-Digest")
            except MalformedInput:
                named = None
            if named and _digest_of(data, named.partition(":")[0]) != named:
                raise DigestMismatch(f"{what}: content does not match the digest the registry "
                                     f"names ({named})", hint=_TAMPERED)
        return Manifest(data=data, media_type=_media_type(resp, data), digest=_sha256(data))

    def head_manifest(self, repo: str, ref: str, *,
                      accept: tuple[str, ...] = ALL_MANIFESTS) -> str | None:
        """The digest the registry names for a tag or digest (``Docker-Content-Digest``), or
        None when it has no such manifest or names no digest. Raises RegistryError."""
        resp = self.session.request("HEAD", f"/v2/{repo}/manifests/{ref}",
                                    scope=self._scope(repo), follow=True,
                                    headers={"Accept": ", ".join(accept)})
        if resp.status == 404:
            resp.close()
            return None
        if resp.status != 200:
            raise error_from(resp, f"manifest {self._what(repo, ref)}", self.host)
        resp.close()
        named = (resp.header("Docker-Content-Digest") or "").strip()
        try:
            return check_digest(named, "Docker-Content-Digest")
        except MalformedInput:
            return None

    def put_manifest(self, repo: str, ref: str, data: bytes, media_type: str) -> str:
        """Upload a manifest under a tag or digest; return its digest.

        Raises RegistryError (including when the registry names another digest).
        """
        what = f"manifest {self._what(repo, ref)}"
        resp = self.session.request("PUT", f"/v2/{repo}/manifests/{ref}",
                                    scope=self._scope(repo), body=data,
                                    headers={"Content-Type": media_type,
                                             "Content-Length": str(len(data))})
        if resp.status not in (200, 201, 202):
            raise error_from(resp, what, self.host)
        resp.close()
        digest = _sha256(data)
        named = resp.header("Docker-Content-Digest")
        if named and named.strip() != digest:
            raise RegistryError(f"{self.host} stored {what} as {named.strip()}, not {digest}",
                                hint="the registry rewrote the manifest; it cannot be signed "
                                     "as pushed")
        return digest

    # --- blobs -------------------------------------------------------------------------

    def blob_size(self, repo: str, digest: str) -> int | None:
        """The size of a blob the registry has, or None. Raises RegistryError."""
        resp = self.session.request("HEAD", f"/v2/{repo}/blobs/{digest}",
                                    scope=self._scope(repo), follow=True)
        if resp.status == 404:
            resp.close()
            return None
        if resp.status != 200:
            raise error_from(resp, f"blob {digest} of {repo}", self.host)
        resp.close()
        length = resp.header("Content-Length") or ""
        return int(length) if length.isdigit() else None

    def open_blob(self, repo: str, d: Descriptor, *, label: str | None = None,
                  progress: Progress | None = None) -> BinaryIO:
        """A stream of blob ``d`` cut at ``d.size + 1`` bytes (the reader verifies it).

        Raises NotFound, DigestMismatch (the registry announces a longer body),
        RegistryError.
        """
        what = f"blob {d.digest} of {self.host}/{repo}"
        resp = self.session.request("GET", f"/v2/{repo}/blobs/{d.digest}",
                                    scope=self._scope(repo), follow=True)
        if resp.status != 200:
            raise error_from(resp, what, self.host)
        length = resp.header("Content-Length") or ""
        if length.isdigit() and int(length) != d.size:
            resp.close()
            raise DigestMismatch(f"{what}: the registry sends {length} bytes, its descriptor "
                                 f"says {d.size}", hint=_TAMPERED)
        raw = _BlobReader(resp, d.size + 1, label or f"blob {d.digest[7:19]}", d.size, progress)
        return io.BufferedReader(raw, 1 << 20)

    def read_blob(self, repo: str, d: Descriptor, limit: int) -> bytes:
        """A small blob (config, signature payload), checked against ``d``.

        Raises MalformedInput (over ``limit``), DigestMismatch, NotFound, RegistryError.
        """
        what = f"blob {d.digest} of {self.host}/{repo}"
        if d.size > limit:
            raise MalformedInput(f"{what} is larger than {limit} bytes")
        with self.open_blob(repo, d) as f:
            data = f.read(d.size + 1)
        if len(data) != d.size:
            raise DigestMismatch(f"{what}: {len(data)} bytes, its descriptor says {d.size}",
                                 hint=_TAMPERED)
        got = _digest_of(data, d.digest.partition(":")[0])
        if got != d.digest:
            raise DigestMismatch(f"{what}: content is {got}", hint=_TAMPERED)
        return data

    # --- uploads -----------------------------------------------------------------------

    def _location(self, resp: Response, what: str) -> str:
        loc = resp.header("Location")
        if not loc:
            raise RegistryError(f"{self.host} sent no upload Location for {what}")
        base = resp.url
        return urllib.parse.urljoin(base, loc)

    @staticmethod
    def _with_digest(location: str, digest: str) -> str:
        parts = urllib.parse.urlsplit(location)
        query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        query.append(("digest", digest))
        return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))

    def upload_blob(self, repo: str, digest: str, path: Path, *,
                    chunk_size: int = CHUNK, monolithic_max: int = MONOLITHIC_MAX,
                    progress: Progress | None = None) -> None:
        """Upload the file at ``path`` as blob ``digest``: one PUT when small, PATCH chunks
        when large, resuming from the registry's ``Range`` after a broken chunk.

        Raises RegistryError, RegistryUnreachable, AuthenticationFailed.
        """
        size = path.stat().st_size
        what = f"blob {digest}"
        location = self._start_upload(repo, what)
        sent = 0

        def tick(n: int) -> None:
            nonlocal sent
            sent += n

        with open(path, "rb") as f:
            if size <= monolithic_max:
                resp = self.session.request(
                    "PUT", self._with_digest(location, digest), scope=self._scope(repo),
                    body=_Window(f, 0, size, tick),
                    headers={"Content-Type": "application/octet-stream",
                             "Content-Length": str(size)})
                if resp.status != 201:
                    raise error_from(resp, what, self.host)
                resp.close()
                return
            offset = 0
            resumes = 0
            while offset < size:
                n = min(chunk_size, size - offset)
                try:
                    resp = self.session.request(
                        "PATCH", location, scope=self._scope(repo),
                        body=_Window(f, offset, n, tick),
                        headers={"Content-Type": "application/octet-stream",
                                 "Content-Length": str(n),
                                 "Content-Range": f"{offset}-{offset + n - 1}"})
                except RegistryUnreachable as e:
                    # The connection broke mid-chunk. Resume where the registry says the
                    # upload stands; a registry that kept part of the chunk (docker-registry
                    # then refuses the session) gets a fresh upload from byte 0.
                    if resumes >= MAX_RESUMES:
                        raise
                    resumes += 1
                    kept = self._resume_offset(repo, location, e)
                    if kept is None:
                        location = self._start_upload(repo, what)
                        kept = 0
                    offset = kept
                    if progress is not None:
                        progress(f"blob {digest[7:19]}: connection lost, "
                                 f"{'resuming at byte ' + str(offset) if offset else 'restarting'}")
                    continue
                if resp.status in (400, 404, 416) and 0 < resumes < MAX_RESUMES:
                    # After a break the registry may still have been writing the broken
                    # chunk when it told us the upload's range: start this blob over.
                    resp.close()
                    resumes += 1
                    location = self._start_upload(repo, what)
                    offset = 0
                    continue
                if resp.status != 202:
                    raise error_from(resp, what, self.host)
                resp.close()
                location = self._location(resp, what)
                offset = self._range_end(resp, offset + n)
                if progress is not None:
                    from secpod.images import human_size

                    progress(f"blob {digest[7:19]}: {human_size(offset)} of "
                             f"{human_size(size)} sent")
        resp = self.session.request("PUT", self._with_digest(location, digest),
                                    scope=self._scope(repo), body=b"",
                                    headers={"Content-Length": "0"})
        if resp.status != 201:
            raise error_from(resp, what, self.host)
        resp.close()

    def _start_upload(self, repo: str, what: str) -> str:
        resp = self.session.request("POST", f"/v2/{repo}/blobs/uploads/",
                                    scope=self._scope(repo), body=b"",
                                    headers={"Content-Length": "0"})
        if resp.status != 202:
            raise error_from(resp, f"an upload to {repo}", self.host)
        resp.close()
        return self._location(resp, what)

    def upload_bytes(self, repo: str, digest: str, data: bytes) -> None:
        """Upload a small blob held in memory (a signature payload, a config) in one PUT.

        Raises RegistryError, RegistryUnreachable, AuthenticationFailed.
        """
        what = f"blob {digest}"
        location = self._start_upload(repo, what)
        resp = self.session.request("PUT", self._with_digest(location, digest),
                                    scope=self._scope(repo), body=data,
                                    headers={"Content-Type": "application/octet-stream",
                                             "Content-Length": str(len(data))})
        if resp.status != 201:
            raise error_from(resp, what, self.host)
        resp.close()

    @staticmethod
    def _range_end(resp: Response, default: int) -> int:
        """The next byte the registry wants, from ``Range: 0-N`` (inclusive)."""
        rng = (resp.header("Range") or "").strip()
        if rng.startswith("bytes="):
            rng = rng[6:]
        start, _, end = rng.partition("-")
        if start == "0" and end.isdigit():
            return int(end) + 1
        return default

    def _resume_offset(self, repo: str, location: str, cause: Exception) -> int | None:
        """After a broken chunk: how much of the upload the registry kept, or None when
        it no longer accepts this upload session."""
        try:
            resp = self.session.request("GET", location, scope=self._scope(repo))
        except RegistryUnreachable:
            raise cause from None
        if resp.status not in (204, 200):
            resp.close()
            return None
        resp.close()
        return self._range_end(resp, 0)

    # --- referrers ---------------------------------------------------------------------

    def serves_referrers(self, repo: str, digest: str) -> bool:
        """Whether the registry answers the referrers API (else the tag fallback is used).
        Raises RegistryUnreachable, AuthenticationFailed."""
        resp = self.session.request("GET", f"/v2/{repo}/referrers/{digest}",
                                    scope=self._scope(repo), headers={"Accept": OCI_INDEX})
        resp.close()
        return resp.status == 200

    def referrers(self, repo: str, digest: str) -> tuple[list[Descriptor], str] | None:
        """Manifests that name ``digest`` as their subject, and where they were found:
        the referrers API (every page: a ``Link: <...>; rel="next"`` header names the
        next, as the distribution spec says), else the fallback tag ``<alg>-<hex>``;
        None when neither has any. At most MAX_REFERRER_PAGES pages and MAX_ENTRIES
        entries are read; a next page elsewhere than this repository's referrers of
        ``digest`` is refused.

        Raises MalformedInput, DigestMismatch, RegistryError.
        """
        base = f"/v2/{repo}/referrers/{digest}"
        resp = self.session.request("GET", base, scope=self._scope(repo),
                                    headers={"Accept": OCI_INDEX})
        if resp.status == 200:
            entries: list[Descriptor] = []
            for page in range(1, MAX_REFERRER_PAGES + 1):
                what = f"the referrers of {digest}" + (f" (page {page})" if page > 1 else "")
                link = resp.header("Link")
                data = resp.read_bounded(MAX_MANIFEST, what)
                entries += _index_entries(data, what)
                nxt = _next_page(link, base, what) if link else None
                if nxt is None or len(entries) >= MAX_ENTRIES:
                    return entries[:MAX_ENTRIES], "referrers API"
                resp = self.session.request("GET", nxt, scope=self._scope(repo),
                                            headers={"Accept": OCI_INDEX})
                if resp.status != 200:
                    raise error_from(resp, what, self.host)
            resp.close()
            raise MalformedInput(f"the referrers of {digest} run to more than "
                                 f"{MAX_REFERRER_PAGES} pages")
        resp.close()
        if resp.status not in (404, 400, 405):
            raise error_from(resp, f"the referrers of {digest}", self.host)
        tag = digest.replace(":", "-")
        try:
            m = self.get_manifest(repo, tag, accept=(OCI_INDEX,))
        except NotFound:
            return None
        return _index_entries(m.data, f"referrers tag {tag}"), f"tag {tag}"


MAX_REFERRER_PAGES = 16
MAX_ENTRIES = 1024


def _next_page(link: str, base: str, what: str) -> str | None:
    """The path and query of the ``rel="next"`` link (RFC 8288), relative or absolute;
    None when there is no next page. Raises MalformedInput for a link out of ``base``."""
    for part in link.split(","):
        target, _, params = part.strip().partition(";")
        rels = [p.strip().replace('"', "") for p in params.split(";")]
        if "rel=next" not in rels:
            continue
        target = target.strip()
        if not (target.startswith("<") and target.endswith(">")):
            raise MalformedInput(f"{what}: malformed Link header {link[:200]!r}")
        url = urllib.parse.urlsplit(urllib.parse.urljoin(base, target[1:-1]))
        if url.path != base:
            raise MalformedInput(f"{what}: the next page {url.path[:200]!r} is not the "
                                 "referrers of the same manifest")
        return url.path + (f"?{url.query}" if url.query else "")
    return None


def _index_entries(data: bytes, what: str) -> list[Descriptor]:
    doc = load_json(data, what)
    manifests = doc.get("manifests")
    if not isinstance(manifests, list):
        raise MalformedInput(f"{what} has no manifests list")
    return [descriptor(m, f"{what} entry {i + 1}")
            for i, m in enumerate(manifests[:MAX_ENTRIES])]


__all__ = ["ALL_MANIFESTS", "Manifest", "RegistryClient"]
