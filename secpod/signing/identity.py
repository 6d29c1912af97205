"""``signedIdentity``: which docker reference a signature may claim for an image.

The semantics are containers/image's (``policy_reference_match.go``):
references are normalised (``busybox`` is ``docker.io/library/busybox``), and
the "exact" matchers never add a default tag, so a signature that names only a
repository (as cosign's do) never matches ``matchExact``.
"""

from __future__ import annotations

from secpod._lazy import reexports
from secpod._record import record
from secpod.errors import Error
from secpod.images import reference as refs
from secpod.images.reference import Reference
from secpod.signing import _json

# The default matcher lives here; the others (and their parsing) in _matchers, loaded
# when a policy names one: `secpod run` with a plain policy never builds those classes.
_ELSEWHERE = ("MatchExact", "MatchRepository", "ExactReference", "ExactRepository",
              "RemapIdentity")

# typing is for mypy only: not imported at run time. The Protocol classes here only
# describe types: at run time they are plain classes that nothing checks against.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Protocol

    from secpod.signing._matchers import (
        ExactReference,
        ExactRepository,
        MatchExact,
        MatchRepository,
        RemapIdentity,
    )
else:
    Protocol = object


def parse_named(text: str) -> Reference | None:
    """Normalise ``text`` without adding a tag; None when it is not a valid reference."""
    try:
        return refs.parse(text, default_tag=None)
    except Error:
        return None


def _name_only(ref: Reference) -> bool:
    return ref.tag is None and ref.digest is None


def _repo_digest_or_exact(intended: Reference, signed: Reference) -> bool:
    if intended.tag is not None:
        return str(signed) == str(intended)
    if intended.digest is not None:
        # The manifest digest itself is compared against the signature separately.
        return signed.repository == intended.repository
    return False


class IdentityMatcher(Protocol):
    """A ``signedIdentity`` value: decides whether a signed reference fits the image."""

    @property
    def type(self) -> str: ...

    def matches(self, intended: Reference | None, signed: str) -> bool: ...

    def as_json(self) -> dict[str, Any]: ...


@record(frozen=True)
class MatchRepoDigestOrExact:
    """Exact for tagged images; same repository for images named by digest (the default)."""

    type: str = "matchRepoDigestOrExact"

    def matches(self, intended: Reference | None, signed: str) -> bool:
        sig = parse_named(signed)
        if intended is None or sig is None:
            return False
        return _repo_digest_or_exact(intended, sig)

    def as_json(self) -> dict[str, Any]:
        return {"type": self.type}


def parse_identity(value: Any, path: str) -> IdentityMatcher:
    """Parse a ``signedIdentity`` object. Raises _json.JSONShapeError."""
    obj = _json.expect_object(value, path)
    if "type" not in obj:
        raise _json.JSONShapeError(_json.child(path, "type"), "missing required field")
    kind = _json.expect_str(obj["type"], _json.child(path, "type"))
    if kind == "matchRepoDigestOrExact":
        _json.expect_fields(obj, path, required={"type"})
        return MatchRepoDigestOrExact()
    from secpod.signing import _matchers

    return _matchers.parse(kind, obj, path)


__getattr__ = reexports(__name__, dict.fromkeys(_ELSEWHERE, "secpod.signing._matchers"))
__all__ = [
    "ExactReference",
    "ExactRepository",
    "IdentityMatcher",
    "MatchExact",
    "MatchRepoDigestOrExact",
    "MatchRepository",
    "RemapIdentity",
    "parse_identity",
    "parse_named",
]
