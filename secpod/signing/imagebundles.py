"""Sigstore bundles for images (cosign 3): what ``pull`` keeps, what ``sigstoreSigned``
accepts, and what ``secpod sign --bundle`` writes.

A bundle for an image is a DSSE envelope over an in-toto statement whose subject is the
manifest digest. It names no docker reference (a subject's ``name`` is free text that
cosign's verifiers never match), so a bundle proves "this key (or this Fulcio identity)
signed this digest" and nothing about the image's name: the
policy's ``signedIdentity`` cannot be applied to it. secpod therefore accepts a bundle
only in a scope that opts in to digest-only acceptance, in the bundle settings beside
the trust policy (``policy.json`` -> ``policy.bundles.json``, a file Podman and Skopeo
never read, so the policy itself stays theirs)::

    {"trustedRoot": "trusted_root.json",
     "scopes": {"registry.example/app": {"acceptDigestOnly": true, "allowNoLog": true}}}

``trustedRoot`` (relative to the file's folder; default: Sigstore's public-good root
shipped with secpod) is what log entries, Fulcio chains and timestamps are checked
against. ``allowNoLog`` accepts a key-signed bundle without a transparency-log entry.
A scope key is a docker scope as in the policy; the most specific one that matches the
image's reference applies. Verification itself is :func:`secpod.signing.bundle.verify_bundle`.

A scope may also require attestations (``"requireAttestations": [{"type": ..., "predicate":
{...}}]``, :mod:`secpod.signing.attestations`): each must be met by a bundle of that predicate
type, verified by every ``sigstoreSigned`` requirement of the policy's scope with the same
opt-ins, whose predicate matches (:func:`check_required`).
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

from secpod._record import record
from secpod.errors import SignatureRejected, TrustPolicyError
from secpod.images.reference import Reference
from secpod.signing import _json

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

    from secpod.signing import keys
    from secpod.signing.attestations import AttestationRequirement
    from secpod.signing.bundle import Bundle
    from secpod.signing.requirements import ImageUnderTest, Requirement
    from secpod.signing.sigstore import SigstoreTrustRoot
    from secpod.signing.trustedroot import TrustedRoot

MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
INTOTO = "application/vnd.in-toto+json"
STATEMENT_V1 = "https://in-toto.io/Statement/v1"
PREDICATE_SIGN = "https://sigstore.dev/cosign/sign/v1"
MAX_SETTINGS = 64 * 1024


class BundleSettingsError(TrustPolicyError):
    """The bundle settings beside the policy are malformed or unsafe (exit 2: unusable)."""

    exit_code = 2


def bundle_name(data: bytes) -> str:
    """How a bundle is named in reasons and audit records: the digest of its bytes."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --- what pull keeps ---------------------------------------------------------------------

def statement(b: Bundle) -> tuple[str, set[str]]:
    """A DSSE bundle's in-toto statement: its predicate type and subjects' sha256 (hex).
    Raises SignatureRejected when the payload is not an in-toto statement."""
    if b.dsse_payload_type != INTOTO or b.dsse_payload is None:
        raise SignatureRejected(f"unsupported DSSE payload type {b.dsse_payload_type!r}")
    try:
        doc = _json.expect_object(_json.loads(b.dsse_payload, what="in-toto statement"), "$")
        subjects = _json.expect_list(doc.get("subject"), "$.subject", lambda v, p: _json.expect_str(
            _json.expect_object(_json.expect_object(v, p).get("digest"), _json.child(p, "digest"))
            .get("sha256", ""), _json.child(p, "digest.sha256")), nonempty=True)
        ptype = _json.expect_str(doc.get("predicateType"), "$.predicateType")
    except _json.JSONShapeError as e:
        raise SignatureRejected(f"the DSSE payload is not an in-toto statement: {e}") from e
    return ptype, set(subjects)


def predicate(b: Bundle) -> object:
    """A DSSE bundle's statement's predicate (None when it has none); call after
    :func:`statement` accepted the payload."""
    assert b.dsse_payload is not None
    doc = _json.loads(b.dsse_payload, what="in-toto statement")
    return doc.get("predicate") if isinstance(doc, dict) else None


def screen(data: bytes, manifest_digest: str) -> Bundle:
    """The check ``pull`` makes before it stores a bundle: it parses, and what it signs is
    ``manifest_digest``. Raises BundleFormatError (unusable: exit 2) or SignatureRejected
    (a bundle for something else)."""
    from secpod.signing import bundle

    b = bundle.parse_bundle(data)
    want = manifest_digest.split(":", 1)[1]
    if b.dsse_payload is not None:
        _, subjects = statement(b)
        if want not in subjects:
            raise SignatureRejected(f"its statement's subject is not {manifest_digest}")
    elif b.message_digest is not None and b.message_digest.hex() != want:
        raise SignatureRejected(f"its message digest is not {manifest_digest}")
    return b


# --- the settings beside the policy ------------------------------------------------------

@record(frozen=True, eq=False)
class ScopeOptions:
    """A scope's bundle opt-ins; ``scope`` is the settings key that matched (None: none)."""

    accept_digest_only: bool = False
    allow_no_log: bool = False
    scope: str | None = None
    require_attestations: tuple[AttestationRequirement, ...] = ()


@record(frozen=True, eq=False)
class BundleSettings:
    path: Path | None
    trusted_root: Path | None
    scopes: dict[str, ScopeOptions]

    def for_reference(self, ref: Reference | None) -> ScopeOptions:
        if ref is None:
            return ScopeOptions()
        from secpod.signing.policy import docker_scopes

        for scope in docker_scopes(ref):
            if scope in self.scopes:
                return self.scopes[scope]
        return ScopeOptions()


def settings_path(policy_path: Path | None) -> Path | None:
    """``DIR/NAME.json`` -> ``DIR/NAME.bundles.json``; None for the built-in policy."""
    from secpod.signing.trust import bundle_settings_path

    return bundle_settings_path(policy_path)


_FLAGS = ("acceptDigestOnly", "allowNoLog")


def _scope(value: object, p: str, scope: str) -> ScopeOptions:
    obj = _json.expect_object(value, p)
    _json.expect_fields(obj, p, optional={*_FLAGS, "requireAttestations"})
    flags = {}
    for key in _FLAGS:
        v = obj.get(key, False)
        if not isinstance(v, bool):
            raise _json.JSONShapeError(_json.child(p, key), "expected true or false")
        flags[key] = v
    required: tuple[AttestationRequirement, ...] = ()
    if "requireAttestations" in obj:
        from secpod.signing.attestations import parse_requirement

        where = _json.child(p, "requireAttestations")
        if not flags["acceptDigestOnly"]:
            raise _json.JSONShapeError(where, 'needs "acceptDigestOnly": true in the same '
                                       "scope (an attestation is a bundle, which signs the "
                                       "manifest digest only)")
        required = tuple(_json.expect_list(obj["requireAttestations"], where,
                                           parse_requirement, nonempty=True))
    return ScopeOptions(accept_digest_only=flags["acceptDigestOnly"],
                        allow_no_log=flags["allowNoLog"], scope=scope,
                        require_attestations=required)


def parse_settings(data: bytes, path: Path) -> BundleSettings:
    """Parse a bundle settings file. Raises TrustPolicyError naming the JSON path."""
    try:
        doc = _json.expect_object(_json.loads(data, what="bundle settings"), "$")
        _json.expect_fields(doc, "$", optional={"trustedRoot", "scopes"})
        root = None
        if "trustedRoot" in doc:
            root = path.parent / _json.expect_str(doc["trustedRoot"], "$.trustedRoot",
                                                  nonempty=True)
        scopes = {scope: _scope(value, f"$.scopes[{json.dumps(scope)}]", scope)
                  for scope, value in _json.expect_object(doc.get("scopes", {}),
                                                          "$.scopes").items()}
    except _json.JSONShapeError as e:
        raise BundleSettingsError(f"invalid bundle settings {path}: {e}",
                                  hint='see docs/signing.md, "Bundles in the trust policy"'
                                  ) from e
    return BundleSettings(path=path, trusted_root=root, scopes=scopes)


def load_settings(policy_path: Path | None, *, admin: bool = False) -> BundleSettings:
    """The bundle settings beside ``policy_path`` (none there: no opt-ins, the public-good
    root). Beside the administrator's policy the file is held to the same rule as the
    policy. Raises BundleSettingsError (malformed, oversized, unreadable) or the floor's
    AdminPolicyError (an unsafe file beside the administrator's policy)."""
    path = settings_path(policy_path)
    if path is None or not path.exists():
        return BundleSettings(path=path, trusted_root=None, scopes={})
    if admin:
        from secpod.policies.floor import check_admin_file

        check_admin_file(path)
    from secpod._files import TooLarge, read_limited

    try:
        data = read_limited(path, MAX_SETTINGS)
    except TooLarge as e:
        raise BundleSettingsError(f"the bundle settings {path} are larger than "
                                  f"{MAX_SETTINGS} bytes") from e
    except OSError as e:
        raise BundleSettingsError(f"cannot read the bundle settings {path}: {e.strerror}"
                                  ) from e
    return parse_settings(data, path)


@record(frozen=True, eq=False)
class BundleContext:
    """What the ``sigstoreSigned`` requirement needs to judge an image's bundles."""

    settings: BundleSettings
    options: ScopeOptions
    roots: dict[str, TrustedRoot]

    def trusted_root(self) -> TrustedRoot:
        if "root" not in self.roots:
            from secpod.signing.trustedroot import load_trusted_root

            self.roots["root"] = load_trusted_root(self.settings.trusted_root)
        return self.roots["root"]


def context(policy_path: Path | None, ref: Reference | None, *,
            admin: bool = False) -> BundleContext:
    settings = load_settings(policy_path, admin=admin)
    return BundleContext(settings=settings, options=settings.for_reference(ref), roots={})


# --- what sigstoreSigned accepts ---------------------------------------------------------

def _where(ctx: BundleContext) -> str:
    return str(ctx.settings.path) if ctx.settings.path else (
        "the bundle settings beside your policy.json (NAME.bundles.json)")


def _one(data: bytes, root: SigstoreTrustRoot, image: ImageUnderTest,
         ctx: BundleContext) -> str:
    """Why one bundle is accepted (the signer), or SignatureRejected. An attestation's
    predicate is judged only once its signature verifies: what it says is then the
    signer's word, and the reason quotes it."""
    signer = _verified(data, root, image, ctx)
    if image.predicate_match:
        from secpod.signing import attestations, bundle

        why = attestations.mismatch(predicate(bundle.parse_bundle(data)), image.predicate_match)
        if why is not None:
            raise SignatureRejected(f"signed by {signer}, but {why}")
    return signer


def _verified(data: bytes, root: SigstoreTrustRoot, image: ImageUnderTest,
              ctx: BundleContext) -> str:
    """The signer of one bundle that verifies under the requirement, or SignatureRejected."""
    from secpod.signing import bundle

    opts = ctx.options
    if not opts.accept_digest_only:
        raise SignatureRejected(
            "a Sigstore bundle signs the manifest digest only, not a docker reference, so "
            "signedIdentity cannot be checked; digest-only acceptance is off for this scope "
            f"(set \"acceptDigestOnly\": true for it in {_where(ctx)})")
    if image.manifest is None:
        raise SignatureRejected("the image has no manifest to check the bundle against")
    b = bundle.parse_bundle(data)
    _check_kind(b, image.attestation)
    if not b.entries and not opts.allow_no_log:
        raise SignatureRejected(
            "the bundle has no transparency-log entry, and entries without one are not "
            f"accepted in this scope (set \"allowNoLog\": true for it in {_where(ctx)})")
    artifact = bundle.Artifact.of(image.manifest)
    if root.pki is not None:
        if not b.certificates:
            raise SignatureRejected("the bundle is signed by a key; the requirement names a "
                                    "pki root")
        key = _pki_key(b, root, image)
        bundle.verify_bundle(data, artifact, ctx.trusted_root() if b.entries or b.timestamps
                             else _empty_root(), certificate_key=key, now=image.now,
                             require_log=not opts.allow_no_log)
        subject = root.pki.subject_email or root.pki.subject_hostname
        return f"pki certificate for {subject}"
    if root.fulcio is not None:
        bundle.verify_bundle(data, artifact, ctx.trusted_root(),
                             identity=root.fulcio.subject_email, issuer=root.fulcio.oidc_issuer,
                             now=image.now, require_log=not opts.allow_no_log)
        return f"Fulcio identity {root.fulcio.subject_email} ({root.fulcio.oidc_issuer})"
    if b.certificates:
        raise SignatureRejected("the bundle is signed by a certificate; the requirement "
                                "names keys")
    reasons: list[str] = []
    # A key-signed bundle without log entries or timestamps never consults the root.
    trusted = ctx.trusted_root() if b.entries or b.timestamps else _empty_root()
    for k in root.public_keys:
        try:
            bundle.verify_bundle(data, artifact, trusted, key=k, now=image.now,
                                 require_log=not opts.allow_no_log)
        except SignatureRejected as e:
            reasons.append(e.message)
            continue
        return f"key {_key_id(k)}"
    if len(set(reasons)) == 1:
        raise SignatureRejected(reasons[0])
    raise SignatureRejected("no key of the requirement verifies it: " + "; ".join(reasons))


def _pki_key(b: Bundle, root: SigstoreTrustRoot, image: ImageUnderTest) -> keys.PublicKey:
    """The leaf's key once it chains to the policy's PKI roots now and names the required
    subject (containers/image's pki check, reused)."""
    from cryptography import x509

    from secpod.signing import _certroots

    assert root.pki is not None
    pem = (b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(b.certificates[0])
           + b"-----END CERTIFICATE-----\n")
    try:
        given = [x509.load_der_x509_certificate(d) for d in b.certificates[1:]]
    except ValueError as e:
        raise SignatureRejected(f"a certificate of the bundle's chain is not DER X.509: {e}"
                                ) from e
    # Only intermediates from the bundle: the roots are the policy's alone.
    return _certroots.pki_key(root.pki, pem, [c for c in given if c.subject != c.issuer],
                              image.now)


def _check_kind(b: Bundle, attestation: str | None) -> None:
    """An image signature is a statement of predicate type ``.../cosign/sign/v1`` (or a
    message signature over the manifest); an attestation is one of the type asked for.
    One never stands in for the other."""
    if b.dsse_payload is None:
        if attestation is not None:
            raise SignatureRejected("a message signature, not an in-toto attestation")
        return
    ptype, _ = statement(b)
    want = attestation or PREDICATE_SIGN
    if ptype != want:
        what = "an image signature" if attestation is None else "an attestation of that type"
        raise SignatureRejected(f"its predicate type is {ptype!r}: not {what} ({want})")


def _key_id(key: keys.PublicKey) -> str:
    return "sha256:" + hashlib.sha256(key.der).hexdigest()[:16]


def _empty_root() -> TrustedRoot:
    from secpod.signing.trustedroot import TrustedRoot

    return TrustedRoot(tlogs=(), certificate_authorities=(), ctlogs=(),
                       timestamp_authorities=(), source="(none: the bundle has no log entry)")


def check(root: SigstoreTrustRoot, image: ImageUnderTest, ctx: BundleContext) -> str:
    """Why the image's bundles satisfy ``sigstoreSigned`` (one valid bundle suffices), or
    SignatureRejected naming each bundle's reason. Every bundle looked at is added to
    ``image.evidence``. An unusable trusted root is no bundle's fault: TrustedRootError
    (exit 2) is raised, not a rejection."""
    from secpod.errors import MalformedInput
    from secpod.signing.trustedroot import TrustedRootError

    rejections: list[str] = []
    for data in image.bundles:
        name = bundle_name(data)
        try:
            signer = _one(data, root, image, ctx)
        except TrustedRootError:
            raise
        except (SignatureRejected, MalformedInput) as e:
            seen: dict[str, object] = {"kind": "bundle", "digest": name, "verdict": "rejected",
                                       "reason": e.message}
            if image.attestation is not None:
                seen["predicate_type"] = image.attestation
            image.evidence.append(seen)
            rejections.append(f"bundle {name[:19]}: {e.message}")
            continue
        used: dict[str, object] = {"kind": "bundle", "digest": name, "verdict": "accepted",
                                   "signer": signer, "scope": ctx.options.scope,
                                   "no_log": ctx.options.allow_no_log,
                                   "predicate_type": image.attestation or PREDICATE_SIGN}
        if image.predicate_match:
            used["predicate"] = dict(image.predicate_match)
        image.evidence.append(used)
        what = f"attestation {image.attestation}" if image.attestation else "bundle"
        return (f"sigstoreSigned: {what} {name} by {signer} accepted for the digest only "
                f"(acceptDigestOnly in scope {ctx.options.scope!r})")
    raise SignatureRejected("; ".join(rejections))


# --- attestations ------------------------------------------------------------------------

def check_required(reqs: list[Requirement], image: ImageUnderTest,
                   ctx: BundleContext) -> tuple[bool, list[str]]:
    """Judge the scope's ``requireAttestations`` (``ctx.options``): each must be met by one
    bundle of its predicate type whose predicate matches, verified by every requirement of
    ``reqs`` (the policy scope's ``sigstoreSigned`` ones; none: nothing can verify it, a
    rejection). Returns whether all are met and one reason per requirement; every bundle
    looked at is added to ``image.evidence``. Raises what ``check`` raises for unusable
    input (TrustedRootError), never SignatureRejected."""
    from secpod._record import replace

    accepted = True
    reasons: list[str] = []
    for need in ctx.options.require_attestations:
        head = f"requireAttestations {need.describe()} (scope {ctx.options.scope!r})"
        if not reqs:
            accepted = False
            reasons.append(f"{head}: rejected: the policy's requirements name no "
                           "sigstoreSigned key or identity to verify an attestation with")
            continue
        probe = replace(image, signatures=(), attestation=need.predicate_type,
                        predicate_match=need.matches)
        for req in reqs:
            try:
                reasons.append(f"{head}: {req.check(probe)}")
            except SignatureRejected as e:
                accepted = False
                reasons.append(f"{head}: rejected: {e.message}")
    return accepted, reasons


# cosign's --type names (cosign/pkg/types), and what they stand for.
ATTESTATION_TYPES = {
    "slsaprovenance": "https://slsa.dev/provenance/v0.2",
    "slsaprovenance02": "https://slsa.dev/provenance/v0.2",
    "slsaprovenance1": "https://slsa.dev/provenance/v1",
    "spdx": "https://spdx.dev/Document",
    "spdxjson": "https://spdx.dev/Document",
    "cyclonedx": "https://cyclonedx.org/bom",
    "openvex": "https://openvex.dev/ns",
    "vuln": "https://cosign.sigstore.dev/attestation/vuln/v1",
    "link": "https://in-toto.io/Link/v1",
    "custom": "https://cosign.sigstore.dev/attestation/v1",
}


def predicate_type(name: str) -> str:
    """cosign's attestation type name, or a predicate type URI as given. Raises
    UsageError for anything else."""
    if name in ATTESTATION_TYPES:
        return ATTESTATION_TYPES[name]
    if name.startswith(("https://", "http://")) and len(name) < 512:
        return name
    from secpod.errors import UsageError

    raise UsageError(f"unknown attestation type {name!r}",
                     hint="use " + ", ".join(sorted(ATTESTATION_TYPES)) + ", or a predicate "
                     "type URI")


# --- what sign --bundle writes -----------------------------------------------------------

def make_bundle(private_key: keys.PrivateKey, manifest_digest: str, name: str, *,
                predicate_type: str = PREDICATE_SIGN,
                predicate: dict[str, Any] | None = None) -> bytes:
    """A cosign 3 image signature: an in-toto statement (subject: ``name`` at
    ``manifest_digest``; predicate type ``https://sigstore.dev/cosign/sign/v1``, or an
    attestation's) in a DSSE envelope signed by ``private_key``, as a v0.3 bundle without
    a log entry."""
    from cryptography.hazmat.primitives import serialization

    from secpod.signing import keys
    from secpod.signing.bundle import pae

    alg, _, hexd = manifest_digest.partition(":")
    stmt = json.dumps({"_type": STATEMENT_V1,
                       "subject": [{"name": name, "digest": {alg: hexd}}],
                       "predicateType": predicate_type, "predicate": predicate or {}},
                      separators=(",", ":")).encode()
    sig = keys.sign(private_key, pae(INTOTO, stmt))
    der = private_key.public_key().public_bytes(serialization.Encoding.DER,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
    b64 = base64.b64encode
    doc: dict[str, Any] = {
        "mediaType": MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": b64(hashlib.sha256(der).digest())
                                               .decode()}, "tlogEntries": []},
        "dsseEnvelope": {"payload": b64(stmt).decode(), "payloadType": INTOTO,
                         "signatures": [{"sig": b64(sig).decode()}]}}
    return json.dumps(doc, separators=(",", ":")).encode()
