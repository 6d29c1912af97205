"""Certificate chains for Fulcio and PKI signatures, checked as Go's crypto/x509 does.

containers/image relies on ``x509.Certificate.Verify`` with the code-signing
extended key usage; this module reproduces what that check means for code
signing certificates (no TLS rules): a path from the leaf through CA
intermediates to a trusted root, each signature valid, each certificate
valid at the given time, path length limits, EKUs that permit code signing,
and no critical extension we do not understand. Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from datetime import datetime
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

from secpod.errors import SignatureRejected

_HANDLED_CRITICAL = {
    ExtensionOID.KEY_USAGE,
    ExtensionOID.BASIC_CONSTRAINTS,
    ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
    ExtensionOID.EXTENDED_KEY_USAGE,
    ExtensionOID.CERTIFICATE_POLICIES,
    ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
    ExtensionOID.SUBJECT_KEY_IDENTIFIER,
    ExtensionOID.CRL_DISTRIBUTION_POINTS,
    ExtensionOID.AUTHORITY_INFORMATION_ACCESS,
}
_MAX_DEPTH = 8
_E = TypeVar("_E", bound=x509.ExtensionType)


def parse_pem_certificates(data: bytes, *, what: str) -> list[x509.Certificate]:
    """All certificates in PEM ``data``. Raises SignatureRejected when there are none."""
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as e:
        raise SignatureRejected(f"{what} is not a PEM certificate list: {e}") from e
    if not certs:
        raise SignatureRejected(f"{what} contains no certificate")
    return certs


def parse_leaf(data: bytes) -> x509.Certificate:
    """The one certificate of a signature's certificate annotation."""
    certs = parse_pem_certificates(data, what="the signing certificate")
    if len(certs) != 1:
        raise SignatureRejected(f"the signing certificate annotation holds {len(certs)} "
                                "certificates, expected one")
    return certs[0]


def _ext(cert: x509.Certificate, cls: type[_E]) -> _E | None:
    try:
        return cert.extensions.get_extension_for_class(cls).value
    except x509.ExtensionNotFound:
        return None


def _describe(cert: x509.Certificate) -> str:
    subject = cert.subject.rfc4514_string()
    return f"certificate {subject!r}" if subject else f"certificate serial {cert.serial_number:x}"


def _check_basic(cert: x509.Certificate, at: datetime) -> None:
    if at < cert.not_valid_before_utc or at > cert.not_valid_after_utc:
        raise SignatureRejected(
            f"{_describe(cert)} is not valid at {at.isoformat()} (valid "
            f"{cert.not_valid_before_utc.isoformat()} to {cert.not_valid_after_utc.isoformat()})")
    for ext in cert.extensions:
        if ext.oid == ExtensionOID.NAME_CONSTRAINTS:
            raise SignatureRejected(f"{_describe(cert)} has name constraints, "
                                    "which secpod does not evaluate")
        if ext.critical and ext.oid not in _HANDLED_CRITICAL:
            raise SignatureRejected(f"{_describe(cert)} has an unhandled critical extension "
                                    f"{ext.oid.dotted_string}")


def _allows_code_signing(cert: x509.Certificate) -> bool:
    ext = _ext(cert, x509.ExtendedKeyUsage)
    if ext is None:
        return True
    usages = list(ext)
    return (ExtendedKeyUsageOID.CODE_SIGNING in usages
            or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in usages)


def _is_ca(cert: x509.Certificate) -> bool:
    ext = _ext(cert, x509.BasicConstraints)
    return ext is not None and ext.ca


def _path_len_ok(cert: x509.Certificate, intermediates_below: int) -> bool:
    ext = _ext(cert, x509.BasicConstraints)
    if ext is None or ext.path_length is None:
        return True
    return intermediates_below <= ext.path_length


def _signed_by(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def verify_chain(leaf: x509.Certificate, *, intermediates: Sequence[x509.Certificate],
                 roots: Sequence[x509.Certificate], at: datetime) -> list[x509.Certificate]:
    """Find a valid path leaf -> intermediates -> root at time ``at``; return it.

    Raises SignatureRejected saying why no path exists.
    """
    if not roots:
        raise SignatureRejected("no trusted root certificates are configured")
    _check_basic(leaf, at)
    if not _allows_code_signing(leaf):
        raise SignatureRejected(f"{_describe(leaf)} is not valid for code signing")
    root_ders = {r.public_bytes(Encoding.DER) for r in roots}
    if leaf.public_bytes(Encoding.DER) in root_ders:
        return [leaf]
    failures: list[str] = []

    def extend(chain: list[x509.Certificate]) -> list[x509.Certificate] | None:
        tip = chain[-1]
        below = len(chain) - 1
        for root in roots:
            if root.subject != tip.issuer or not _signed_by(tip, root):
                continue
            try:
                _check_basic(root, at)
            except SignatureRejected as e:
                failures.append(e.message)
                continue
            if not _path_len_ok(root, below) or not _allows_code_signing(root):
                failures.append(f"{_describe(root)} does not permit this chain")
                continue
            return [*chain, root]
        if len(chain) > _MAX_DEPTH:
            return None
        for cand in intermediates:
            if cand in chain or cand.subject != tip.issuer or not _signed_by(tip, cand):
                continue
            try:
                _check_basic(cand, at)
            except SignatureRejected as e:
                failures.append(e.message)
                continue
            if not _is_ca(cand):
                failures.append(f"{_describe(cand)} is not a CA certificate")
                continue
            if not _path_len_ok(cand, below) or not _allows_code_signing(cand):
                failures.append(f"{_describe(cand)} does not permit this chain")
                continue
            found = extend([*chain, cand])
            if found:
                return found
        return None

    path = extend([leaf])
    if path is None:
        why = "; ".join(dict.fromkeys(failures)) or "no issuer among the trusted certificates"
        raise SignatureRejected(f"the signing certificate does not chain to a trusted root: {why}")
    return path


def emails(cert: x509.Certificate) -> list[str]:
    ext = _ext(cert, x509.SubjectAlternativeName)
    if ext is None:
        return []
    return list(ext.get_values_for_type(x509.RFC822Name))


def _dns_names(cert: x509.Certificate) -> list[str]:
    ext = _ext(cert, x509.SubjectAlternativeName)
    if ext is None:
        return []
    return list(ext.get_values_for_type(x509.DNSName))


def matches_hostname(cert: x509.Certificate, hostname: str) -> bool:
    """Go's ``VerifyHostname`` for DNS names and IP addresses in the SAN."""
    host = hostname.rstrip(".").lower()
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        ip = None
    ext = _ext(cert, x509.SubjectAlternativeName)
    if ip is not None:
        if ext is None:
            return False
        return ip in ext.get_values_for_type(x509.IPAddress)
    for name in _dns_names(cert):
        pattern = name.rstrip(".").lower()
        if pattern == host:
            return True
        if pattern.startswith("*.") and "." in host:
            if host.split(".", 1)[1] == pattern[2:] and host.split(".", 1)[0]:
                return True
    return False


def extension_value(cert: x509.Certificate, dotted_oid: str) -> bytes | None:
    """The raw value bytes of an extension secpod's x509 library does not model."""
    for ext in cert.extensions:
        if ext.oid.dotted_string == dotted_oid:
            value = ext.value
            if isinstance(value, x509.UnrecognizedExtension):
                return value.value
            return None
    return None
