"""The ``signedIdentity`` matchers besides the default (:mod:`secpod.signing.identity`).

Loaded when a policy names one of them; :mod:`secpod.signing.identity` re-exports
each under its own name.
"""

from __future__ import annotations

import re

from secpod._record import record
from secpod.images.reference import Reference
from secpod.signing import _json
from secpod.signing.identity import (
    IdentityMatcher,
    _name_only,
    _repo_digest_or_exact,
    parse_named,
)

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_DOMAIN = re.compile(r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9-]+)*(?::[0-9]+)?"
                     r"|\[[0-9a-fA-F:]+\](?::[0-9]+)?")


@record(frozen=True)
class MatchExact:
    """The signed reference must equal the image's, tag or digest included."""

    type: str = "matchExact"

    def matches(self, intended: Reference | None, signed: str) -> bool:
        sig = parse_named(signed)
        if intended is None or sig is None or _name_only(intended) or _name_only(sig):
            return False
        return str(sig) == str(intended)

    def as_json(self) -> dict[str, Any]:
        return {"type": self.type}


@record(frozen=True)
class MatchRepository:
    """The signed reference must name the image's repository; tags are ignored."""

    type: str = "matchRepository"

    def matches(self, intended: Reference | None, signed: str) -> bool:
        sig = parse_named(signed)
        if intended is None or sig is None:
            return False
        return sig.repository == intended.repository

    def as_json(self) -> dict[str, Any]:
        return {"type": self.type}


@record(frozen=True)
class ExactReference:
    """The signed reference must be exactly ``docker_reference`` (whatever the image's name)."""

    docker_reference: str
    type: str = "exactReference"

    def matches(self, intended: Reference | None, signed: str) -> bool:
        want = parse_named(self.docker_reference)
        sig = parse_named(signed)
        if want is None or sig is None or _name_only(want) or _name_only(sig):
            return False
        return str(sig) == str(want)

    def as_json(self) -> dict[str, Any]:
        return {"type": self.type, "dockerReference": self.docker_reference}


@record(frozen=True)
class ExactRepository:
    """The signed reference must be in repository ``docker_repository``."""

    docker_repository: str
    type: str = "exactRepository"

    def matches(self, intended: Reference | None, signed: str) -> bool:
        want = parse_named(self.docker_repository)
        sig = parse_named(signed)
        if want is None or sig is None:
            return False
        return sig.repository == want.repository

    def as_json(self) -> dict[str, Any]:
        return {"type": self.type, "dockerRepository": self.docker_repository}


def _matches_prefix(ref: str, prefix: str) -> bool:
    if len(ref) < len(prefix):
        return False
    if len(ref) == len(prefix):
        return ref == prefix
    return ref.startswith(prefix) and ref[len(prefix)] in ":/@"


@record(frozen=True)
class RemapIdentity:
    """Like matchRepoDigestOrExact after rewriting the image's ``prefix`` to ``signed_prefix``.

    For mirrors: images pulled from ``prefix`` carry signatures made for ``signed_prefix``.
    """

    prefix: str
    signed_prefix: str
    type: str = "remapIdentity"

    def matches(self, intended: Reference | None, signed: str) -> bool:
        sig = parse_named(signed)
        if intended is None or sig is None:
            return False
        text = str(intended)
        if _matches_prefix(text, self.prefix):
            new_text = text.replace(self.prefix, self.signed_prefix, 1)
            rewritten = parse_named(new_text)
            # Only canonical results count (containers/image uses ParseNamed here).
            if rewritten is None or str(rewritten) != new_text:
                return False
            intended = rewritten
        return _repo_digest_or_exact(intended, sig)

    def as_json(self) -> dict[str, Any]:
        return {"type": self.type, "prefix": self.prefix, "signedPrefix": self.signed_prefix}


def _valid_prefix(value: str) -> bool:
    if _DOMAIN.fullmatch(value):
        return True
    domain, _, path = value.partition("/")
    return bool(path) and bool(_DOMAIN.fullmatch(domain)) and all(
        _PATH_COMPONENT.fullmatch(c) for c in path.split("/"))


def parse(kind: str, obj: dict[str, Any], path: str) -> IdentityMatcher:
    """Parse a ``signedIdentity`` of any type but the default. Raises _json.JSONShapeError."""
    if kind in ("matchExact", "matchRepository"):
        _json.expect_fields(obj, path, required={"type"})
        return MatchExact() if kind == "matchExact" else MatchRepository()
    if kind == "exactReference":
        _json.expect_fields(obj, path, required={"type", "dockerReference"})
        p = _json.child(path, "dockerReference")
        text = _json.expect_str(obj["dockerReference"], p)
        ref = parse_named(text)
        if ref is None:
            raise _json.JSONShapeError(p, f"invalid docker reference {text!r}")
        if _name_only(ref):
            raise _json.JSONShapeError(p, f"{text!r} contains neither a tag nor a digest")
        return ExactReference(text)
    if kind == "exactRepository":
        _json.expect_fields(obj, path, required={"type", "dockerRepository"})
        p = _json.child(path, "dockerRepository")
        text = _json.expect_str(obj["dockerRepository"], p)
        if parse_named(text) is None:
            raise _json.JSONShapeError(p, f"invalid docker repository {text!r}")
        return ExactRepository(text)
    if kind == "remapIdentity":
        _json.expect_fields(obj, path, required={"type", "prefix", "signedPrefix"})
        prefix = _json.expect_str(obj["prefix"], _json.child(path, "prefix"))
        signed = _json.expect_str(obj["signedPrefix"], _json.child(path, "signedPrefix"))
        for key, v in (("prefix", prefix), ("signedPrefix", signed)):
            if not _valid_prefix(v):
                raise _json.JSONShapeError(_json.child(path, key),
                                           f"{v!r} is not a host[:port], namespace or repository")
        return RemapIdentity(prefix, signed)
    raise _json.JSONShapeError(_json.child(path, "type"), f"unknown signedIdentity type {kind!r}")
