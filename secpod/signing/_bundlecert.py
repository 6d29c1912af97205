"""The certificate half of bundle verification: a Fulcio leaf against the trusted root.

A certificate-signed bundle carries its leaf (``verificationMaterial.certificate``, or the
first of ``x509CertificateChain``). It is accepted when it chains to one of the trusted
root's ``certificateAuthorities`` at the signing time (the authority's window included,
end inclusive), carries a valid SCT from one of its ``ctlogs``, is valid at every verified
signing time, and names the expected identity (Subject Alternative Name) and OIDC issuer
(Fulcio's extension), each matched exactly. Reuses :mod:`secpod.signing.x509chain` for the
path and :mod:`secpod.signing._certroots` for the issuer extension. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from secpod._record import record
from secpod.errors import SignatureRejected
from secpod.signing import _certroots, _openssl, x509chain
from secpod.signing.trustedroot import TrustedRoot, TrustedRootError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@record(frozen=True, eq=False)
class SigningCertificate:
    """The bundle's leaf and the certificates it came with (DER, leaf first)."""

    leaf: x509.Certificate
    leaf_der: bytes
    spki_der: bytes
    extra: tuple[x509.Certificate, ...]


def _utc(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def signing_certificate(ders: Sequence[bytes], root: TrustedRoot) -> SigningCertificate:
    """Parse the bundle's certificates. Raises TrustedRootError when the root has no
    certificate authority, SignatureRejected for a chain that loops or holds a root."""
    if not root.certificate_authorities:
        raise TrustedRootError(f"{root.source}: the trusted root has no certificate "
                               "authorities", hint="a certificate-signed bundle can only be "
                                                   "checked against Fulcio's CA certificates")
    certs: list[x509.Certificate] = []
    for i, der in enumerate(ders):
        try:
            certs.append(x509.load_der_x509_certificate(der))
        except ValueError as e:
            raise SignatureRejected(f"certificate {i} of the bundle is not a DER X.509 "
                                    f"certificate: {e}") from e
    if len(set(ders)) != len(ders) or len({c.subject for c in certs}) != len(certs):
        raise SignatureRejected("the bundle's certificate chain loops: a certificate or "
                                "subject appears twice")
    for c in certs[1:]:
        if c.subject == c.issuer:
            raise SignatureRejected(f"the bundle's certificate chain holds a root certificate "
                                    f"({c.subject.rfc4514_string()!r}); only the trusted "
                                    "root's CAs are roots")
    leaf = certs[0]
    spki = leaf.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return SigningCertificate(leaf=leaf, leaf_der=ders[0], spki_der=spki,
                              extra=tuple(certs[1:]))


def verify_certificate(cert: SigningCertificate, root: TrustedRoot, *, identity: str,
                       issuer: str, times: Sequence[datetime]) -> None:
    """Chain, validity at each signing time, SCT, identity and issuer.
    Raises SignatureRejected naming the failed check."""
    leaf = cert.leaf
    start, end = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    for t in times:
        if not start <= t <= end:
            raise SignatureRejected(
                f"the signing time {t.isoformat()} is outside the certificate's validity "
                f"({start.isoformat()} to {end.isoformat()})")
    path: list[x509.Certificate] = []
    for t in times:
        path = _chain(cert, root, t)
    _check_scts(leaf, path[1] if len(path) > 1 else leaf, root)
    sans = _sans(leaf)
    if identity not in sans:
        raise SignatureRejected(f"the certificate's identity is not {identity!r} "
                                f"(Subject Alternative Name: {', '.join(sans) or 'none'})")
    got = _certroots.oidc_issuer(leaf)
    if got is None:
        raise SignatureRejected("the certificate has no Fulcio OIDC issuer extension")
    if got != issuer:
        raise SignatureRejected(f"the certificate's OIDC issuer is {got!r}, not {issuer!r}")


def _chain(cert: SigningCertificate, root: TrustedRoot, at: datetime) -> list[x509.Certificate]:
    authorities = [a for a in root.certificate_authorities if a.validity.contains(at)]
    if not authorities:
        raise SignatureRejected(f"no certificate authority of the trusted root is valid at "
                                f"the signing time {at.isoformat()}")
    roots: list[x509.Certificate] = []
    intermediates: list[x509.Certificate] = list(cert.extra)
    for a in authorities:
        chain = [x509.load_der_x509_certificate(d) for d in a.chain]
        roots.append(chain[-1])
        intermediates.extend(chain[:-1])
    try:
        return x509chain.verify_chain(cert.leaf, intermediates=intermediates, roots=roots, at=at)
    except SignatureRejected as e:
        raise SignatureRejected(f"certificate chain: {e.message}") from e


def _sans(cert: x509.Certificate) -> list[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [*ext.get_values_for_type(x509.UniformResourceIdentifier),
            *ext.get_values_for_type(x509.RFC822Name),
            *ext.get_values_for_type(x509.DNSName)]


def _check_scts(leaf: x509.Certificate, issuer: x509.Certificate, root: TrustedRoot) -> None:
    """RFC 6962: at least one embedded precertificate SCT verifies with a CT log key of the
    trusted root, valid at the SCT's time."""
    try:
        scts = list(leaf.extensions.get_extension_for_class(
            x509.PrecertificateSignedCertificateTimestamps).value)
    except x509.ExtensionNotFound:
        raise SignatureRejected("the certificate has no signed certificate timestamp (SCT)",
                                hint="Fulcio certificates embed an SCT from a CT log") from None
    issuer_hash = hashlib.sha256(issuer.public_key().public_bytes(
        Encoding.DER, PublicFormat.SubjectPublicKeyInfo)).digest()
    tbs = leaf.tbs_precertificate_bytes
    why = "no SCT is from a CT log of the trusted root"
    for sct in scts:
        log = next((c for c in root.ctlogs if c.log_id == sct.log_id), None)
        if log is None:
            continue
        when = _utc(sct.timestamp)
        if not log.validity.contains(when):
            why = f"the CT log's key is not valid at the SCT's time {when.isoformat()}"
            continue
        ms = (when - _EPOCH) // timedelta(milliseconds=1)
        ext = sct.extension_bytes
        signed = (b"\x00\x00" + ms.to_bytes(8, "big") + b"\x00\x01" + issuer_hash
                  + len(tbs).to_bytes(3, "big") + tbs + len(ext).to_bytes(2, "big") + ext)
        try:
            ok = _openssl.verify(log.key_der, sct.signature, signed)
        except _openssl.KeyRejected as e:
            why = f"the trusted root's CT log key cannot be used: {e}"
            continue
        if ok:
            return
        why = "the SCT's signature does not verify with the CT log's key"
    raise SignatureRejected(f"signed certificate timestamp: {why}")
