"""Policy requirements as objects: each has one method, ``check``, that raises on refusal.

:func:`prepare` turns a parsed requirement (:mod:`secpod.signing.policy`) into
one of these, reading the key and certificate files it names (the only I/O
besides the ``gpg`` subprocess); ``check`` then evaluates an
:class:`ImageUnderTest` and returns one line saying why it accepted, or
raises SignatureRejected saying why not.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from secpod._lazy import reexports
from secpod._record import field, record
from secpod.errors import SignatureRejected, VerificationError
from secpod.images.reference import Reference
from secpod.signing import policy
from secpod.signing.identity import IdentityMatcher
from secpod.signing.store import is_sigstore_blob

# typing is for mypy only: not imported at run time. The Protocol classes here only
# describe types: at run time they are plain classes that nothing checks against.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol

    # The X.509 and key machinery loads only when a sigstore requirement applies, and
    # gpg only for signedBy.
    from cryptography import x509

    from secpod.signing import keys, sigstore
    from secpod.signing._signedby import GPGSignedBy as GPGSignedBy
    from secpod.signing._signedby import UnimplementedKeyType as UnimplementedKeyType
    from secpod.signing.imagebundles import BundleContext
else:
    Protocol = object

MAX_KEY_FILE = 1024 * 1024

# The signedBy requirements live in _signedby, loaded when a policy has one: a
# key-based sigstore policy never builds their classes at start-up.
_SIGNEDBY = ("GPGSignedBy", "UnimplementedKeyType")


__getattr__ = reexports(__name__, dict.fromkeys(_SIGNEDBY, "secpod.signing._signedby"))
# eq=False: instances are never compared; spares the generated __eq__ and
# __hash__ that every start-up would compile.
@record(frozen=True, eq=False)
class ImageUnderTest:
    """What a requirement sees: the claimed reference, the manifest, raw signatures and
    Sigstore bundles (with what judging them needs: ``bundle_context``, made only when
    there are bundles or the bundle settings may require attestations). ``attestation``
    asks for an in-toto attestation of that predicate type instead of a signature, whose
    predicate has ``predicate_match``'s exact values. Requirements add each signature and
    bundle they look at, with their verdict, to ``evidence`` (the audit record's list)."""

    reference: Reference | None
    manifest: bytes | None
    signatures: tuple[bytes, ...] = ()
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    bundles: tuple[bytes, ...] = ()
    bundle_context: BundleContext | None = None
    evidence: list[dict[str, object]] = field(default_factory=list)
    attestation: str | None = None  # a predicate type: an in-toto attestation is asked for
    predicate_match: tuple[tuple[str, str], ...] = ()  # its predicate's (path, exact value)


class Requirement(Protocol):
    """One policy requirement. ``check`` returns why it accepts, or raises SignatureRejected."""

    @property
    def type(self) -> str: ...

    def check(self, image: ImageUnderTest) -> str: ...


class UnsafeAcceptAnything:
    """``insecureAcceptAnything``: accepts every image without looking at signatures."""

    type = "insecureAcceptAnything"

    def check(self, image: ImageUnderTest) -> str:
        # The warning is the reason itself: it reaches the user and the audit record.
        return "insecureAcceptAnything: accepted WITHOUT checking any signature"


class RejectAll:
    """``reject``: refuses every image."""

    type = "reject"

    def check(self, image: ImageUnderTest) -> str:
        raise SignatureRejected("the policy rejects every image in this scope (reject)")


class SignedBaseLayerUnsupported:
    """``signedBaseLayer``: containers/image has never implemented it; it always refuses."""

    type = "signedBaseLayer"

    def check(self, image: ImageUnderTest) -> str:
        raise SignatureRejected("signedBaseLayer is not implemented (as in containers/image)")


def _summary(rejections: list[str], *, none: str) -> SignatureRejected:
    if not rejections:
        return SignatureRejected(none)
    if len(rejections) == 1:
        return SignatureRejected(rejections[0])
    return SignatureRejected("none of the signatures were accepted, reasons: "
                             + "; ".join(rejections))


@record(frozen=True)
class SigstoreSigned:
    """``sigstoreSigned``: one sigstore signature valid under the trust root suffices."""

    root: sigstore.SigstoreTrustRoot
    identity: IdentityMatcher
    type: str = "sigstoreSigned"

    def check(self, image: ImageUnderTest) -> str:
        import hashlib

        from secpod.signing import sigstore

        rejections: list[str] = []
        non_sigstore = 0
        non_signature = 0
        # An attestation is asked for: only bundles can carry one.
        for blob in image.signatures if image.attestation is None else ():
            if not is_sigstore_blob(blob):
                non_sigstore += 1
                continue
            name = "sha256:" + hashlib.sha256(blob).hexdigest()
            try:
                att = sigstore.parse_attachment(blob)
                if att.mime_type != sigstore.SIGNATURE_MIME_TYPE:
                    non_signature += 1
                    continue
                claims = sigstore.verify_attachment(
                    att, self.root, manifest=image.manifest, intended=image.reference,
                    identity=self.identity, now=image.now)
            except SignatureRejected as e:
                image.evidence.append({"kind": "signature", "digest": name,
                                       "verdict": "rejected", "reason": e.message})
                rejections.append(e.message)
                continue
            image.evidence.append({"kind": "signature", "digest": name, "verdict": "accepted",
                                   "identity": claims.docker_reference})
            return f"sigstoreSigned: signature for {claims.docker_reference} accepted"
        if image.bundles and image.bundle_context is not None:
            # Only an image with bundles loads their verifier (not a strict run's path).
            from secpod.signing import imagebundles

            try:
                return imagebundles.check(self.root, image, image.bundle_context)
            except SignatureRejected as e:
                rejections.append(e.message)
        if image.attestation is not None:
            raise _summary(rejections, none=f"an attestation of type {image.attestation} was "
                           "required, but the image has no Sigstore bundle")
        none = "a signature was required, but no signature exists"
        if non_sigstore or non_signature:
            none += (f" ({non_sigstore} non-sigstore signatures, {non_signature} sigstore "
                     "non-signature attachments)")
        raise _summary(rejections, none=none)


def _read(path: str, what: str) -> bytes:
    from secpod._files import TooLarge, read_limited

    try:
        return read_limited(Path(path), MAX_KEY_FILE)
    except TooLarge as e:
        raise VerificationError(f"{what} {path} is too large") from e
    except OSError as e:
        raise VerificationError(f"cannot read {what} {path}: {e.strerror}",
                                hint="fix the path in the trust policy") from e


def _public_keys(paths: Sequence[str], datas: Sequence[bytes], what: str
                 ) -> tuple[keys.PublicKey, ...]:
    from secpod.signing import keys

    out = [keys.load_public_key(_read(p, what), source=p) for p in paths]
    out += [keys.load_public_key(d, source=f"{what} data") for d in datas]
    return tuple(out)


def _certs(path: str | None, data: bytes | None, what: str) -> tuple[x509.Certificate, ...]:
    from secpod.signing import x509chain

    raw = _read(path, what) if path is not None else data
    if raw is None:
        return ()
    try:
        return tuple(x509chain.parse_pem_certificates(raw, what=what))
    except SignatureRejected as e:
        raise VerificationError(f"{what} {path or '(data)'}: {e.message}",
                                hint="fix the certificate file in the trust policy") from e


def _sigstore_root(spec: policy.SigstoreSigned) -> sigstore.SigstoreTrustRoot:
    from secpod.signing import sigstore

    paths = [spec.key_path] if spec.key_path else list(spec.key_paths or ())
    datas = [spec.key_data] if spec.key_data is not None else list(spec.key_datas or ())
    public = _public_keys(paths, datas, "public key")
    rpaths = ([spec.rekor_public_key_path] if spec.rekor_public_key_path
              else list(spec.rekor_public_key_paths or ()))
    rdatas = ([spec.rekor_public_key_data] if spec.rekor_public_key_data is not None
              else list(spec.rekor_public_key_datas or ()))
    rekor = _public_keys(rpaths, rdatas, "Rekor public key")
    if any(k.info.algorithm != "EC" for k in rekor):
        raise VerificationError("Rekor public keys must be ECDSA keys")
    fulcio = None
    if spec.fulcio is not None:
        fulcio = sigstore.FulcioRoot(
            ca_certificates=_certs(spec.fulcio.ca_path, spec.fulcio.ca_data, "Fulcio CA"),
            oidc_issuer=spec.fulcio.oidc_issuer, subject_email=spec.fulcio.subject_email)
    pki = None
    if spec.pki is not None:
        pki = sigstore.PKIRoot(
            roots=_certs(spec.pki.ca_roots_path, spec.pki.ca_roots_data, "PKI root CA"),
            intermediates=_certs(spec.pki.ca_intermediates_path, spec.pki.ca_intermediates_data,
                                 "PKI intermediate CA"),
            subject_email=spec.pki.subject_email, subject_hostname=spec.pki.subject_hostname)
    return sigstore.SigstoreTrustRoot(public_keys=public, fulcio=fulcio, pki=pki,
                                      rekor_keys=rekor)


def prepare(spec: policy.RequirementSpec) -> Requirement:
    """Load what a requirement needs (key files, certificates).

    Raises VerificationError when a named file cannot be read, and
    KeyFormatError when a key is not a public key secpod reads.
    """
    if isinstance(spec, policy.InsecureAcceptAnything):
        return UnsafeAcceptAnything()
    if isinstance(spec, policy.RejectRequirement):
        return RejectAll()
    if isinstance(spec, policy.SigstoreSigned):
        return SigstoreSigned(root=_sigstore_root(spec), identity=spec.signed_identity)
    # The other two classes live in _policy_rare (loaded only for policies that name them).
    from secpod.signing import _policy_rare, _signedby

    if isinstance(spec, _policy_rare.SignedBaseLayer):
        return SignedBaseLayerUnsupported()
    if spec.key_type != "GPGKeys":
        return _signedby.UnimplementedKeyType(spec.key_type)
    if spec.key_data is not None:
        rings: tuple[bytes, ...] = (spec.key_data,)
    else:
        paths = [spec.key_path] if spec.key_path else list(spec.key_paths or ())
        rings = tuple(_read(p, "GPG keyring") for p in paths)
    return _signedby.GPGSignedBy(keyrings=rings, identity=spec.signed_identity)
