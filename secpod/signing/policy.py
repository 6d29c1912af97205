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
import json
from collections.abc import Mapping
from types import ModuleType

from secpod._lazy import reexports
from secpod._record import field, record
from secpod.errors import TrustPolicyError
from secpod.images.reference import Reference
from secpod.signing import _json
from secpod.signing._json import expect_b64
from secpod.signing.identity import IdentityMatcher, MatchRepoDigestOrExact, parse_identity

GPG_KEY_TYPES = ("GPGKeys", "signedByGPGKeys", "X509Certificates", "signedByX509CAs")
_C = _json.child


@record(frozen=True)
class InsecureAcceptAnything:
    """``insecureAcceptAnything``: any image, no signature looked at."""

    type: str = "insecureAcceptAnything"

    def as_json(self) -> dict[str, Any]:
        return {"type": self.type}


@record(frozen=True)
class RejectRequirement:
    """``reject``: no image."""

    type: str = "reject"

    def as_json(self) -> dict[str, Any]:
        return {"type": self.type}


@record(frozen=True)
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


TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any, TypeAlias

    from secpod.signing._policy_rare import FulcioSpec as FulcioSpec
    from secpod.signing._policy_rare import PKISpec as PKISpec
    from secpod.signing._policy_rare import SignedBaseLayer as SignedBaseLayer
    from secpod.signing._policy_rare import SignedBy as SignedBy

    RequirementSpec: TypeAlias = (InsecureAcceptAnything | RejectRequirement | SignedBy
                                  | SigstoreSigned | SignedBaseLayer)

# signedBy (GPG), signedBaseLayer and sigstoreSigned's fulcio and pki live in
# _policy_rare, loaded when a policy names one of them: a key-based sigstore
# policy (the common case, and every `secpod run` under it) never builds them.
_RARE = ("SignedBy", "FulcioSpec", "PKISpec", "SignedBaseLayer")


_rare_names = reexports(__name__, dict.fromkeys(_RARE, "secpod.signing._policy_rare"))


def __getattr__(name: str) -> Any:
    if name != "RequirementSpec":
        return _rare_names(name)
    from secpod.signing import _policy_rare as r

    return (InsecureAcceptAnything | RejectRequirement | r.SignedBy | SigstoreSigned
            | r.SignedBaseLayer)


@record(frozen=True)
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


def _str_list(value: Any, path: str) -> tuple[str, ...]:
    return tuple(_json.expect_list(value, path, lambda v, p: _json.expect_str(v, p, nonempty=True),
                                   nonempty=True))


def _b64_list(value: Any, path: str) -> tuple[bytes, ...]:
    return tuple(_json.expect_list(value, path, expect_b64, nonempty=True))


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
    if kind == "sigstoreSigned":
        return _sigstore_signed(obj, path)
    if kind == "signedBy":
        from secpod.signing import _policy_rare

        return _policy_rare.signed_by(obj, path)
    if kind == "signedBaseLayer":
        from secpod.signing import _policy_rare

        return _policy_rare.signed_base_layer(obj, path)
    raise _json.JSONShapeError(_C(path, "type"), f"unknown policy requirement type {kind!r}")


def _rare() -> ModuleType:
    from secpod.signing import _policy_rare

    return _policy_rare


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
        key_data=expect_b64(obj["keyData"], _C(path, "keyData")) if "keyData" in obj else None,
        key_datas=_b64_list(obj["keyDatas"], _C(path, "keyDatas")) if "keyDatas" in obj else None,
        fulcio=_rare().fulcio(obj["fulcio"], _C(path, "fulcio")) if "fulcio" in obj else None,
        pki=_rare().pki(obj["pki"], _C(path, "pki")) if "pki" in obj else None,
        rekor_public_key_path=s("rekorPublicKeyPath"),
        rekor_public_key_paths=_str_list(obj["rekorPublicKeyPaths"],
                                         _C(path, "rekorPublicKeyPaths"))
        if "rekorPublicKeyPaths" in obj else None,
        rekor_public_key_data=expect_b64(obj["rekorPublicKeyData"], _C(path, "rekorPublicKeyData"))
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
