"""Certificate trust roots of sigstore signatures: Fulcio and an organisation's PKI.

Loaded only when a ``sigstoreSigned`` requirement names ``fulcio`` or ``pki``
(:mod:`secpod.signing.sigstore` re-exports :class:`FulcioRoot` and
:class:`PKIRoot`): a check against public keys never parses a certificate.
"""

from __future__ import annotations

from datetime import datetime

from secpod._record import record
from secpod.errors import KeyFormatError, SignatureRejected
from secpod.signing import keys, x509chain
from secpod.signing.sigstore import ANNOTATION_CHAIN

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from collections.abc import Mapping

    from cryptography import x509

# Fulcio's OIDC issuer: the deprecated raw-string extension and its DER successor.
_OID_ISSUER_V1 = "1.3.6.1.4.1.57264.1.1"
_OID_ISSUER_V2 = "1.3.6.1.4.1.57264.1.8"


@record(frozen=True)
class FulcioRoot:
    """Fulcio CA certificates and the OIDC identity a certificate must carry."""

    ca_certificates: tuple[x509.Certificate, ...]
    oidc_issuer: str
    subject_email: str


@record(frozen=True)
class PKIRoot:
    """An organisation's own CA: roots, optional intermediates, required subject."""

    roots: tuple[x509.Certificate, ...]
    intermediates: tuple[x509.Certificate, ...] = ()
    subject_email: str | None = None
    subject_hostname: str | None = None


def chain_intermediates(annotations: Mapping[str, str]) -> list[x509.Certificate]:
    """The intermediates of an attachment's certificate chain annotation (without its root)."""
    chain = annotations.get(ANNOTATION_CHAIN)
    if not chain:
        return []
    certs = x509chain.parse_pem_certificates(chain.encode(), what="the certificate chain")
    # The last certificate is the root; only the policy decides which roots count.
    return certs[:-1]


def oidc_issuer(cert: x509.Certificate) -> str | None:
    v1 = x509chain.extension_value(cert, _OID_ISSUER_V1)
    v2 = x509chain.extension_value(cert, _OID_ISSUER_V2)
    issuer_v1 = v1.decode("utf-8", "replace") if v1 is not None else None
    issuer_v2: str | None = None
    if v2 is not None:
        # DER UTF8String: tag 0x0c, short or long length form.
        if len(v2) < 2 or v2[0] != 0x0C:
            raise SignatureRejected("the certificate's OIDC issuer extension is malformed")
        n, off = v2[1], 2
        if n & 0x80:
            width = n & 0x7F
            n, off = int.from_bytes(v2[2:2 + width], "big"), 2 + width
        if off + n != len(v2):
            raise SignatureRejected("the certificate's OIDC issuer extension is malformed")
        issuer_v2 = v2[off:].decode("utf-8", "replace")
    if issuer_v1 is not None and issuer_v2 is not None and issuer_v1 != issuer_v2:
        raise SignatureRejected(f"inconsistent OIDC issuer extension values {issuer_v1!r} and "
                                f"{issuer_v2!r}")
    return issuer_v2 if issuer_v2 is not None else issuer_v1


def fulcio_key(root: FulcioRoot, cert_pem: bytes, intermediates: list[x509.Certificate],
               at: datetime) -> keys.PublicKey:
    """The signing key of a Fulcio certificate valid ``at`` the logged time, for the required
    issuer and email. Raises SignatureRejected naming the failed check."""
    leaf = x509chain.parse_leaf(cert_pem)
    x509chain.verify_chain(leaf, intermediates=intermediates, roots=root.ca_certificates, at=at)
    issuer = oidc_issuer(leaf)
    if issuer is None:
        raise SignatureRejected("the Fulcio certificate has no OIDC issuer extension")
    if issuer != root.oidc_issuer:
        raise SignatureRejected(f"required OIDC issuer {root.oidc_issuer!r}, got {issuer!r}")
    got = x509chain.emails(leaf)
    if root.subject_email not in got:
        raise SignatureRejected(f"required email {root.subject_email!r} not found (got {got!r})")
    return _cert_key(leaf)


def pki_key(root: PKIRoot, cert_pem: bytes, intermediates: list[x509.Certificate],
            now: datetime) -> keys.PublicKey:
    """The signing key of a certificate that chains to the PKI roots and names the required
    subject. Raises SignatureRejected naming the failed check."""
    leaf = x509chain.parse_leaf(cert_pem)
    x509chain.verify_chain(leaf, intermediates=[*root.intermediates, *intermediates],
                           roots=root.roots, at=now)
    if root.subject_hostname and not x509chain.matches_hostname(leaf, root.subject_hostname):
        raise SignatureRejected(f"the certificate is not valid for host "
                                f"{root.subject_hostname!r}")
    if root.subject_email and root.subject_email not in x509chain.emails(leaf):
        raise SignatureRejected(f"required email {root.subject_email!r} not found "
                                f"(got {x509chain.emails(leaf)!r})")
    return _cert_key(leaf)


def _cert_key(cert: x509.Certificate) -> keys.PublicKey:
    # As SubjectPublicKeyInfo DER: the signature over the payload is then checked by the
    # same OpenSSL call as a key policy's.
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    try:
        der = cert.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
        return keys.public_key_from_der(der, source="the signing certificate")
    except (ValueError, UnsupportedAlgorithm) as e:
        raise SignatureRejected(f"the signing certificate's key cannot be used: {e}") from e
    except KeyFormatError as e:
        raise SignatureRejected(e.message) from e
