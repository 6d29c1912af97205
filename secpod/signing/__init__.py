"""Image signing and trust: cosign-compatible keys and signatures, GPG simple
signing, and the containers-policy.json trust policy.

The runner calls :func:`evaluate_image`; the CLI uses the rest. Verification
of a sigstore signature (:func:`verify_attachment`) is pure: bytes and a trust
root in, claims or an exception out. "The signature is not acceptable" is
:class:`~secpod.errors.SignatureRejected`; "the check could not run" is
:class:`~secpod.errors.VerificationError`.
"""

from __future__ import annotations

from secpod.signing.keys import (
    decrypt_private_key,
    generate_key_pair,
    load_public_key,
    read_passphrase,
)
from secpod.signing.payload import SignedClaims, manifest_digest
from secpod.signing.policy import Policy, parse_policy
from secpod.signing.sign import sign_gpg, sign_sigstore
from secpod.signing.sigstore import (
    SigstoreAttachment,
    SigstoreTrustRoot,
    parse_attachment,
    verify_attachment,
)
from secpod.signing.store import (
    DirImage,
    add_dir_signature,
    add_signature,
    read_dir,
    signatures_for,
)
from secpod.signing.trust import (
    EffectivePolicy,
    TrustDecision,
    decide,
    effective_policy,
    evaluate_image,
    set_trust,
    user_policy_path,
)

__all__ = [
    "DirImage",
    "EffectivePolicy",
    "Policy",
    "SignedClaims",
    "SigstoreAttachment",
    "SigstoreTrustRoot",
    "TrustDecision",
    "add_dir_signature",
    "add_signature",
    "decide",
    "decrypt_private_key",
    "effective_policy",
    "evaluate_image",
    "generate_key_pair",
    "load_public_key",
    "manifest_digest",
    "parse_attachment",
    "parse_policy",
    "read_dir",
    "read_passphrase",
    "set_trust",
    "sign_gpg",
    "sign_sigstore",
    "signatures_for",
    "user_policy_path",
    "verify_attachment",
]
