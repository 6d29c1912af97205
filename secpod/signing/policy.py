"""The trust policy: containers-policy.json(5), parsed strictly.

Parsing is pure (bytes in, :class:`Policy` out) and as strict as
containers/image: an unknown or duplicate field, a missing ``default``, an
empty requirement list, or an invalid combination of key sources rejects
the whole file with :class:`~secpod.errors.TrustPolicyError` naming the JSON
path. Key files named by the policy are read only when a requirement is
evaluated (:mod:`secpod.signing.requirements`).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from secpod.errors import TrustPolicyError
from secpod.images.reference import Reference
from secpod.signing import _json
from secpod.signing.identity import IdentityMatcher, MatchRepoDigestOrExact, parse_identity

GPG_KEY_TYPES = ("GPGKeys", "signedByGPGKeys", "X509Certificates", "signedByX509CAs")
_C = _json.child


@dataclass(frozen=True)
class InsecureAcceptAnything:
    """``insecureAcceptAnything``: any image, no signature looked at."""

    type: str = "insecureAcceptAnything"

    def as_json(self) -> dict[str, Any]:
        return {"type": self.type}


@dataclass(frozen=True)
class RejectRequirement:
    """``reject``: no image."""

    type: str = "reject"

    def as_json(self) -> dict[str, Any]:
        return {"type": self.type}


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class SigstoreSigned:
    """Sigstore signatures: exactly one of keys, fulcio or pki; Rekor keys optional."""

    key_path: str | None = None
    key_paths: tuple[str, ...] | None = None
    key_data: bytes | None = None
    key_datas: tuple[bytes, ...] | None = None
    fulcio: FulcioSpec | None = None
    pki: PKISpec | None = None
    rekor_public_key_path: str | None = None
    rekor_public_key_paths: tuple[str, ...] | None = None
    rekor_public_key_data: bytes | None = None
    rekor_public_key_datas: tuple[bytes, ...] | None = None
    signed_identity: IdentityMatcher = field(default_factory=MatchRepoDigestOrExact)
    type: str = "sigstoreSigned"

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        b64 = base64.b64encode
        for key, value in (("keyPath", self.key_path), ("keyPaths", self.key_paths),
                           ("keyData", self.key_data), ("keyDatas", self.key_datas),
                           ("rekorPublicKeyPath", self.rekor_public_key_path),
                           ("rekorPublicKeyPaths", self.rekor_public_key_paths),
                           ("rekorPublicKeyData", self.rekor_public_key_data),
                           ("rekorPublicKeyDatas", self.rekor_public_key_datas)):
            if value is None:
                continue
            if isinstance(value, bytes):
                out[key] = b64(value).decode()
            elif isinstance(value, tuple):
                out[key] = [b64(v).decode() if isinstance(v, bytes) else v for v in value]
            else:
                out[key] = value
        if self.fulcio is not None:
            out["fulcio"] = self.fulcio.as_json()
        if self.pki is not None:
            out["pki"] = self.pki.as_json()
        out["signedIdentity"] = self.signed_identity.as_json()
        return out


@dataclass(frozen=True)
class SignedBaseLayer:
    """Parsed for compatibility; containers/image does not implement it, so it rejects."""

    base_layer_identity: IdentityMatcher
    type: str = "signedBaseLayer"

    def as_json(self) -> dict[str, Any]:
        return {"type": self.type, "baseLayerIdentity": self.base_layer_identity.as_json()}


RequirementSpec = (InsecureAcceptAnything | RejectRequirement | SignedBy | SigstoreSigned
                   | SignedBaseLayer)


@dataclass(frozen=True)
class Policy:
    """A parsed policy: ``default`` and per-transport scopes, each a non-empty list."""

    default: tuple[RequirementSpec, ...]
    transports: Mapping[str, Mapping[str, tuple[RequirementSpec, ...]]] = field(
        default_factory=dict)

    def requirements_for(self, ref: Reference) -> tuple[str, tuple[RequirementSpec, ...]]:
        """The scope that applies to a docker reference and its requirements.

        Most specific first: the exact reference (tag, else digest), the
        repository, each parent namespace up to the host[:port], then ``*.domain``
        wildcards from the longest, then the transport's ``""`` scope, then
        ``default`` (returned with scope ``""``).
        """
        scopes = self.transports.get("docker")
        if scopes:
            for scope in docker_scopes(ref):
                if scope in scopes:
                    return scope, scopes[scope]
            if "" in scopes:
                return "docker:", scopes[""]
        return "", self.default

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"default": [r.as_json() for r in self.default]}
        if self.transports:
            out["transports"] = {
                t: {s: [r.as_json() for r in reqs] for s, reqs in scopes.items()}
                for t, scopes in self.transports.items()}
        return out

    def dumps(self) -> bytes:
        return (json.dumps(self.as_json(), indent=4) + "\n").encode()


def docker_scopes(ref: Reference) -> list[str]:
    """Scope names a docker reference matches, most specific first (containers/image order)."""
    out: list[str] = []
    name = ref.repository
    if ref.tag is not None:
        out.append(f"{name}:{ref.tag}")
    if ref.digest is not None:
        out.append(f"{name}@{ref.digest}")
    while True:
        out.append(name)
        if "/" not in name:
            break
        name = name.rsplit("/", 1)[0]
    host = name.split(":", 1)[0]
    while "." in host:
        host = host.split(".", 1)[1]
        out.append(f"*.{host}")
    return out


def _b64(value: Any, path: str) -> bytes:
    text = _json.expect_str(value, path)
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as e:
        raise _json.JSONShapeError(path, "is not valid base64") from e


def _str_list(value: Any, path: str) -> tuple[str, ...]:
    return tuple(_json.expect_list(value, path, lambda v, p: _json.expect_str(v, p, nonempty=True),
                                   nonempty=True))


def _b64_list(value: Any, path: str) -> tuple[bytes, ...]:
    return tuple(_json.expect_list(value, path, _b64, nonempty=True))


def _identity(obj: dict[str, Any], path: str) -> IdentityMatcher:
    if "signedIdentity" in obj:
        return parse_identity(obj["signedIdentity"], _C(path, "signedIdentity"))
    return MatchRepoDigestOrExact()


def _requirement(value: Any, path: str) -> RequirementSpec:
    obj = _json.expect_object(value, path)
    if "type" not in obj:
        raise _json.JSONShapeError(_C(path, "type"), "missing required field")
    kind = _json.expect_str(obj["type"], _C(path, "type"))
    if kind == "insecureAcceptAnything":
        _json.expect_fields(obj, path, required={"type"})
        return InsecureAcceptAnything()
    if kind == "reject":
        _json.expect_fields(obj, path, required={"type"})
        return RejectRequirement()
    if kind == "signedBy":
        return _signed_by(obj, path)
    if kind == "sigstoreSigned":
        return _sigstore_signed(obj, path)
    if kind == "signedBaseLayer":
        _json.expect_fields(obj, path, required={"type", "baseLayerIdentity"})
        return SignedBaseLayer(parse_identity(obj["baseLayerIdentity"],
                                              _C(path, "baseLayerIdentity")))
    raise _json.JSONShapeError(_C(path, "type"), f"unknown policy requirement type {kind!r}")


def _signed_by(obj: dict[str, Any], path: str) -> SignedBy:
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
        key_data=_b64(obj["keyData"], _C(path, "keyData")) if "keyData" in obj else None,
        signed_identity=_identity(obj, path),
    )


def _fulcio(value: Any, path: str) -> FulcioSpec:
    obj = _json.expect_object(value, path)
    _json.expect_fields(obj, path, required={"oidcIssuer", "subjectEmail"},
                        optional={"caPath", "caData"})
    if ("caPath" in obj) == ("caData" in obj):
        raise _json.JSONShapeError(path, 'exactly one of "caPath" and "caData" must be specified')
    return FulcioSpec(
        ca_path=_json.expect_str(obj["caPath"], _C(path, "caPath"), nonempty=True)
        if "caPath" in obj else None,
        ca_data=_b64(obj["caData"], _C(path, "caData")) if "caData" in obj else None,
        oidc_issuer=_json.expect_str(obj["oidcIssuer"], _C(path, "oidcIssuer"), nonempty=True),
        subject_email=_json.expect_str(obj["subjectEmail"], _C(path, "subjectEmail"),
                                       nonempty=True),
    )


def _pki(value: Any, path: str) -> PKISpec:
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
        return _b64(obj[key], _C(path, key)) if key in obj else None

    return PKISpec(ca_roots_path=s("caRootsPath"), ca_roots_data=b("caRootsData"),
                   ca_intermediates_path=s("caIntermediatesPath"),
                   ca_intermediates_data=b("caIntermediatesData"),
                   subject_email=s("subjectEmail"), subject_hostname=s("subjectHostname"))


def _sigstore_signed(obj: dict[str, Any], path: str) -> SigstoreSigned:
    _json.expect_fields(obj, path, required={"type"}, optional={
        "keyPath", "keyPaths", "keyData", "keyDatas", "fulcio", "pki", "rekorPublicKeyPath",
        "rekorPublicKeyPaths", "rekorPublicKeyData", "rekorPublicKeyDatas", "signedIdentity"})
    sources = [k for k in ("keyPath", "keyPaths", "keyData", "keyDatas", "fulcio", "pki")
               if k in obj]
    if len(sources) != 1:
        raise _json.JSONShapeError(path, "exactly one of keyPath, keyPaths, keyData, keyDatas, "
                                         "fulcio and pki must be specified")
    rekor = [k for k in ("rekorPublicKeyPath", "rekorPublicKeyPaths", "rekorPublicKeyData",
                         "rekorPublicKeyDatas") if k in obj]
    if len(rekor) > 1:
        raise _json.JSONShapeError(path, "at most one of rekorPublicKeyPath, rekorPublicKeyPaths,"
                                         " rekorPublicKeyData and rekorPublicKeyDatas may be "
                                         "specified")
    if "fulcio" in obj and not rekor:
        raise _json.JSONShapeError(path, "a Rekor public key must be specified when fulcio is "
                                         "used")
    if "pki" in obj and rekor:
        raise _json.JSONShapeError(path, "Rekor public keys are not supported with pki")

    def s(key: str) -> str | None:
        return _json.expect_str(obj[key], _C(path, key), nonempty=True) if key in obj else None

    return SigstoreSigned(
        key_path=s("keyPath"),
        key_paths=_str_list(obj["keyPaths"], _C(path, "keyPaths")) if "keyPaths" in obj else None,
        key_data=_b64(obj["keyData"], _C(path, "keyData")) if "keyData" in obj else None,
        key_datas=_b64_list(obj["keyDatas"], _C(path, "keyDatas")) if "keyDatas" in obj else None,
        fulcio=_fulcio(obj["fulcio"], _C(path, "fulcio")) if "fulcio" in obj else None,
        pki=_pki(obj["pki"], _C(path, "pki")) if "pki" in obj else None,
        rekor_public_key_path=s("rekorPublicKeyPath"),
        rekor_public_key_paths=_str_list(obj["rekorPublicKeyPaths"],
                                         _C(path, "rekorPublicKeyPaths"))
        if "rekorPublicKeyPaths" in obj else None,
        rekor_public_key_data=_b64(obj["rekorPublicKeyData"], _C(path, "rekorPublicKeyData"))
        if "rekorPublicKeyData" in obj else None,
        rekor_public_key_datas=_b64_list(obj["rekorPublicKeyDatas"],
                                         _C(path, "rekorPublicKeyDatas"))
        if "rekorPublicKeyDatas" in obj else None,
        signed_identity=_identity(obj, path),
    )


def _requirements(value: Any, path: str) -> tuple[RequirementSpec, ...]:
    reqs = _json.expect_list(value, path, _requirement)
    if not reqs:
        raise _json.JSONShapeError(path, "the requirement list must not be empty")
    return tuple(reqs)


def _validate_scope(transport: str, scope: str, path: str) -> None:
    if scope == "":
        return
    if transport in ("dir", "oci", "oci-archive", "docker-archive", "sif", "tarball"):
        if not scope.startswith("/"):
            raise _json.JSONShapeError(path, f"scope {scope!r} must be an absolute path")
    elif transport == "docker":
        if scope != scope.strip() or any(c.isspace() for c in scope) or scope.startswith("*.") \
                and ("/" in scope or ":" in scope):
            raise _json.JSONShapeError(path, f"invalid docker scope {scope!r}")


def parse_policy(data: bytes, *, source: str) -> Policy:
    """Parse a containers-policy.json document.

    Raises TrustPolicyError naming ``source`` and the JSON path of the problem.
    """
    try:
        doc = _json.loads(data, what="the trust policy")
        top = _json.expect_object(doc, "$")
        _json.expect_fields(top, "$", required={"default"}, optional={"transports"})
        default = _requirements(top["default"], "$.default")
        transports: dict[str, dict[str, tuple[RequirementSpec, ...]]] = {}
        if "transports" in top:
            tmap = _json.expect_object(top["transports"], "$.transports")
            for tname, scopes in tmap.items():
                tpath = _C("$.transports", tname)
                smap = _json.expect_object(scopes, tpath)
                transports[tname] = {}
                for scope, reqs in smap.items():
                    spath = f"{tpath}[{json.dumps(scope)}]"
                    _validate_scope(tname, scope, spath)
                    transports[tname][scope] = _requirements(reqs, spath)
    except _json.JSONShapeError as e:
        raise TrustPolicyError(f"invalid trust policy {source}: {e}",
                               hint="fix the file; its format is containers-policy.json(5)") from e
    return Policy(default=default, transports=transports)


BUILTIN_DEFAULT = Policy(default=(InsecureAcceptAnything(),))
