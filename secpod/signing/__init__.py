"""Image signing and trust: cosign-compatible keys and signatures, GPG simple
signing, and the containers-policy.json trust policy.

The runner calls :func:`evaluate_image`; the CLI uses the rest. Verification
of a sigstore signature (:func:`verify_attachment`) is pure: bytes and a trust
root in, claims or an exception out. "The signature is not acceptable" is
:class:`~secpod.errors.SignatureRejected`; "the check could not run" is
:class:`~secpod.errors.VerificationError`.
"""

from __future__ import annotations

from secpod._lazy import reexports

# Lazy: `secpod verify` and the runner import only what they use (CLI start-up time).
_WHERE = {
    "decrypt_private_key": "keys", "generate_key_pair": "keys", "load_public_key": "keys",
    "load_private_key": "keys",
    "read_passphrase": "keys",
    "SignedClaims": "payload", "manifest_digest": "payload",
    "Policy": "policy", "parse_policy": "policy",
    "sign_gpg": "sign", "sign_sigstore": "sign",
    "SigstoreAttachment": "sigstore", "SigstoreTrustRoot": "sigstore",
    "parse_attachment": "sigstore", "verify_attachment": "sigstore",
    "DirImage": "store", "add_dir_signature": "store", "add_signature": "store",
    "read_dir": "store", "signatures_for": "store",
    "EffectivePolicy": "trust", "TrustDecision": "trust", "decide": "trust",
    "effective_policy": "trust", "evaluate_image": "trust", "image_reference": "trust",
    "set_trust": "trust",
    "user_policy_path": "trust",
}

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from secpod.signing.keys import (
        decrypt_private_key,
        generate_key_pair,
        load_private_key,
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
        image_reference,
        set_trust,
        user_policy_path,
    )


__getattr__ = reexports(__name__, {n: f"secpod.signing.{m}" for n, m in _WHERE.items()})
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
    "load_private_key",
    "effective_policy",
    "evaluate_image",
    "generate_key_pair",
    "image_reference",
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
