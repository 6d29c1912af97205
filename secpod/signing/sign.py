"""Making signatures: cosign-format sigstore attachments and GPG simple signing."""

from __future__ import annotations

import time

from secpod import __version__
from secpod.signing import gpg, keys, sigstore
from secpod.signing.payload import GPG_PAYLOAD_TYPE, make_payload

CREATOR = f"secpod {__version__}"


def sign_sigstore(private_key: keys.PrivateKey, docker_reference: str,
                  manifest_digest: str) -> bytes:
    """A sigstore attachment (``dir:`` byte format) signing ``manifest_digest`` as the reference."""
    return sigstore.make_signature(private_key, docker_reference, manifest_digest,
                                   creator=CREATOR, timestamp=int(time.time()))


def sign_gpg(fingerprint: str, docker_reference: str, manifest_digest: str, *,
             gnupghome: str | None = None) -> bytes:
    """A GPG simple signing (binary OpenPGP message) by the user's key ``fingerprint``.

    Raises SigningError when gpg cannot sign.
    """
    payload = make_payload(docker_reference, manifest_digest, payload_type=GPG_PAYLOAD_TYPE,
                           creator=CREATOR, timestamp=int(time.time()))
    return gpg.sign(payload, fingerprint, gnupghome=gnupghome)
