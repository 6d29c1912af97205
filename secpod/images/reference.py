"""Docker-style image references: parse and normalise.

``busybox`` -> ``docker.io/library/busybox:latest``; ``localhost:5000/a/b:t``
keeps its registry; ``name@sha256:<hex>`` pins a digest. The grammar is the
one in distribution/reference, which containers-policy.json scopes use too.
"""

from __future__ import annotations

import re

from secpod._record import record
from secpod.errors import UsageError

DEFAULT_DOMAIN = "docker.io"
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_DOMAIN = re.compile(r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9-]+)*(?::[0-9]+)?"
                     r"|\[[0-9a-fA-F:]+\](?::[0-9]+)?")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}")


@record(frozen=True)
class Reference:
    """A normalised reference. ``tag`` may be None when a digest pins it."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def repository(self) -> str:
        """``domain/path``: what matchRepository and scopes compare."""
        return f"{self.domain}/{self.path}"

    def __str__(self) -> str:
        s = self.repository
        if self.tag:
            s += f":{self.tag}"
        if self.digest:
            s += f"@{self.digest}"
        return s

    def familiar(self) -> str:
        """The short form people type: ``busybox:latest`` for Docker Hub library images."""
        repo = self.repository
        if self.domain == DEFAULT_DOMAIN:
            repo = self.path.removeprefix("library/")
        s = repo + (f":{self.tag}" if self.tag else "")
        return s + (f"@{self.digest}" if self.digest else "")


def parse(text: str, *, default_tag: str | None = "latest") -> Reference:
    """Parse and normalise ``text``. Raises UsageError naming what is wrong."""
    raw = text
    if not text or len(text) > 4096 or text != text.strip():
        raise UsageError(f"invalid image reference {raw!r}", hint="use NAME[:TAG][@DIGEST]")
    digest = None
    if "@" in text:
        text, digest = text.split("@", 1)
        if not _DIGEST.fullmatch(digest):
            raise UsageError(f"invalid digest in reference {raw!r}",
                             hint="a digest is sha256: followed by 64 lowercase hex digits")
    tag = None
    slash = text.rfind("/")
    colon = text.rfind(":")
    if colon > slash:
        text, tag = text[:colon], text[colon + 1:]
        if not _TAG.fullmatch(tag):
            raise UsageError(f"invalid tag {tag!r} in reference {raw!r}",
                             hint="tags are letters, digits, '_', '.' and '-', at most 128")
    first, _, rest = text.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        domain, path = first, rest
        if not _DOMAIN.fullmatch(domain):
            raise UsageError(f"invalid registry {domain!r} in reference {raw!r}")
    else:
        domain, path = DEFAULT_DOMAIN, text
    if domain == "index.docker.io":
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = "library/" + path
    for component in path.split("/"):
        if not _COMPONENT.fullmatch(component):
            raise UsageError(f"invalid repository name {path!r} in reference {raw!r}",
                             hint="repository names are lowercase letters, digits and separators")
    if tag is None and digest is None:
        tag = default_tag
    return Reference(domain=domain, path=path, tag=tag, digest=digest)
