"""Trust-policy requirement specs that a key-based sigstore policy never uses.

``signedBy`` (GPG simple signing), ``signedBaseLayer``, and the ``fulcio`` and
``pki`` roots of ``sigstoreSigned``. :mod:`secpod.signing.policy` loads this
module only when a policy names one of them (and re-exports the classes), so
that `secpod run` under a key-based policy does not build these records at
start-up. The parsing rules are the same strict ones as in the policy module.
"""

from __future__ import annotations

import base64

from secpod._record import field, record
from secpod.signing import _json
from secpod.signing._json import expect_b64
from secpod.signing.identity import IdentityMatcher, MatchRepoDigestOrExact, parse_identity
from secpod.signing.policy import GPG_KEY_TYPES, _identity, _str_list

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

_C = _json.child


@record(frozen=True)
class SignedBy:
    """GPG simple signing. Exactly one of key_path / key_paths / key_data is set."""

    key_type: str
    key_path: str | None = None
    key_paths: tuple[str, ...] | None = None
    key_data: bytes | None = None
    signed_identity: IdentityMatcher = field(default_factory=MatchRepoDigestOrExact)
    type: str = "signedBy"

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "keyType": self.key_type}
        if self.key_path is not None:
            out["keyPath"] = self.key_path
        if self.key_paths is not None:
            out["keyPaths"] = list(self.key_paths)
        if self.key_data is not None:
            out["keyData"] = base64.b64encode(self.key_data).decode()
        out["signedIdentity"] = self.signed_identity.as_json()
        return out


@record(frozen=True)
class FulcioSpec:
    """``fulcio``: the CA (path or data) and the OIDC identity certificates must carry."""

    ca_path: str | None
    ca_data: bytes | None
    oidc_issuer: str
    subject_email: str

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.ca_path is not None:
            out["caPath"] = self.ca_path
        if self.ca_data is not None:
            out["caData"] = base64.b64encode(self.ca_data).decode()
        out["oidcIssuer"] = self.oidc_issuer
        out["subjectEmail"] = self.subject_email
        return out


@record(frozen=True)
class PKISpec:
    """``pki``: an organisation's CA roots and intermediates, and the required subject."""

    ca_roots_path: str | None
    ca_roots_data: bytes | None
    ca_intermediates_path: str | None = None
    ca_intermediates_data: bytes | None = None
    subject_email: str | None = None
    subject_hostname: str | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        b64 = base64.b64encode
        for key, value in (("caRootsPath", self.ca_roots_path),
                           ("caRootsData", self.ca_roots_data),
                           ("caIntermediatesPath", self.ca_intermediates_path),
                           ("caIntermediatesData", self.ca_intermediates_data),
                           ("subjectEmail", self.subject_email),
                           ("subjectHostname", self.subject_hostname)):
            if value is not None:
                out[key] = b64(value).decode() if isinstance(value, bytes) else value
        return out


@record(frozen=True)
class SignedBaseLayer:
    """Parsed for compatibility; containers/image does not implement it, so it rejects."""

    base_layer_identity: IdentityMatcher
    type: str = "signedBaseLayer"

    def as_json(self) -> dict[str, Any]:
        return {"type": self.type, "baseLayerIdentity": self.base_layer_identity.as_json()}


def signed_by(obj: dict[str, Any], path: str) -> SignedBy:
    _json.expect_fields(obj, path, required={"type", "keyType"},
                        optional={"keyPath", "keyPaths", "keyData", "signedIdentity"})
    key_type = _json.expect_str(obj["keyType"], _C(path, "keyType"))
    if key_type not in GPG_KEY_TYPES:
        raise _json.JSONShapeError(_C(path, "keyType"), f"unknown keyType {key_type!r}")
    sources = [k for k in ("keyPath", "keyPaths", "keyData") if k in obj]
    if len(sources) != 1:
        raise _json.JSONShapeError(path, 'exactly one of "keyPath", "keyPaths" and "keyData" '
                                         "must be specified")
    return SignedBy(
        key_type=key_type,
        key_path=_json.expect_str(obj["keyPath"], _C(path, "keyPath"), nonempty=True)
        if "keyPath" in obj else None,
        key_paths=_str_list(obj["keyPaths"], _C(path, "keyPaths")) if "keyPaths" in obj else None,
        key_data=expect_b64(obj["keyData"], _C(path, "keyData")) if "keyData" in obj else None,
        signed_identity=_identity(obj, path),
    )


def signed_base_layer(obj: dict[str, Any], path: str) -> SignedBaseLayer:
    _json.expect_fields(obj, path, required={"type", "baseLayerIdentity"})
    return SignedBaseLayer(parse_identity(obj["baseLayerIdentity"],
                                          _C(path, "baseLayerIdentity")))


def fulcio(value: Any, path: str) -> FulcioSpec:
    obj = _json.expect_object(value, path)
    _json.expect_fields(obj, path, required={"oidcIssuer", "subjectEmail"},
                        optional={"caPath", "caData"})
    if ("caPath" in obj) == ("caData" in obj):
        raise _json.JSONShapeError(path, 'exactly one of "caPath" and "caData" must be specified')
    return FulcioSpec(
        ca_path=_json.expect_str(obj["caPath"], _C(path, "caPath"), nonempty=True)
        if "caPath" in obj else None,
        ca_data=expect_b64(obj["caData"], _C(path, "caData")) if "caData" in obj else None,
        oidc_issuer=_json.expect_str(obj["oidcIssuer"], _C(path, "oidcIssuer"), nonempty=True),
        subject_email=_json.expect_str(obj["subjectEmail"], _C(path, "subjectEmail"),
                                       nonempty=True),
    )


def pki(value: Any, path: str) -> PKISpec:
    obj = _json.expect_object(value, path)
    _json.expect_fields(obj, path, optional={
        "caRootsPath", "caRootsData", "caIntermediatesPath", "caIntermediatesData",
        "subjectEmail", "subjectHostname"})
    if ("caRootsPath" in obj) == ("caRootsData" in obj):
        raise _json.JSONShapeError(path, 'exactly one of "caRootsPath" and "caRootsData" must '
                                         "be specified")
    if "caIntermediatesPath" in obj and "caIntermediatesData" in obj:
        raise _json.JSONShapeError(path, 'at most one of "caIntermediatesPath" and '
                                         '"caIntermediatesData" may be specified')
    if "subjectEmail" not in obj and "subjectHostname" not in obj:
        raise _json.JSONShapeError(path, 'at least one of "subjectEmail" and "subjectHostname" '
                                         "must be specified")

    def s(key: str) -> str | None:
        return _json.expect_str(obj[key], _C(path, key), nonempty=True) if key in obj else None

    def b(key: str) -> bytes | None:
        return expect_b64(obj[key], _C(path, key)) if key in obj else None

    return PKISpec(ca_roots_path=s("caRootsPath"), ca_roots_data=b("caRootsData"),
                   ca_intermediates_path=s("caIntermediatesPath"),
                   ca_intermediates_data=b("caIntermediatesData"),
                   subject_email=s("subjectEmail"), subject_hostname=s("subjectHostname"))
