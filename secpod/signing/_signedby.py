"""The ``signedBy`` requirements (GPG simple signing, and key types never implemented).

Loaded by :func:`secpod.signing.requirements.prepare` only for a policy with a
``signedBy`` requirement, and re-exported by that module.
"""

from __future__ import annotations

from secpod._record import record
from secpod.errors import SignatureRejected
from secpod.signing.identity import IdentityMatcher
from secpod.signing.requirements import ImageUnderTest, _summary
from secpod.signing.store import is_sigstore_blob


@record(frozen=True)
class GPGSignedBy:
    """``signedBy`` with keyType GPGKeys: one GPG simple signing by a listed key suffices."""

    keyrings: tuple[bytes, ...]
    identity: IdentityMatcher
    type: str = "signedBy"

    def check(self, image: ImageUnderTest) -> str:
        import hashlib

        from secpod.signing import gpg
        from secpod.signing.payload import (
            GPG_PAYLOAD_TYPE,
            check_manifest_digest,
            parse_payload,
        )

        rejections: list[str] = []
        for blob in image.signatures:
            if is_sigstore_blob(blob):
                continue
            name = "sha256:" + hashlib.sha256(blob).hexdigest()
            try:
                result = gpg.verify(blob, self.keyrings)
                claims = parse_payload(result.plaintext, payload_type=GPG_PAYLOAD_TYPE)
                check_manifest_digest(image.manifest, claims.manifest_digest)
                if not self.identity.matches(image.reference, claims.docker_reference):
                    raise SignatureRejected(
                        f"signature for identity {claims.docker_reference!r} is not accepted "
                        f"({self.identity.type})")
            except SignatureRejected as e:
                image.evidence.append({"kind": "gpg-signature", "digest": name,
                                       "verdict": "rejected", "reason": e.message})
                rejections.append(e.message)
                continue
            image.evidence.append({"kind": "gpg-signature", "digest": name,
                                   "verdict": "accepted", "signer": result.fingerprint,
                                   "identity": claims.docker_reference})
            return (f"signedBy: GPG signature by {result.fingerprint} for "
                    f"{claims.docker_reference} accepted")
        raise _summary(rejections, none="a signature was required, but no GPG signature exists")


@record(frozen=True)
class UnimplementedKeyType:
    """``signedBy`` with a keyType containers/image parses but never implemented."""

    key_type: str
    type: str = "signedBy"

    def check(self, image: ImageUnderTest) -> str:
        raise SignatureRejected(f'unimplemented "keyType" value {self.key_type!r}')
