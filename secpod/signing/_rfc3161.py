"""RFC 3161 timestamps of a bundle, verified against the trusted root's timestamp authorities.

A bundle's ``timestampVerificationData.rfc3161Timestamps`` hold time-stamp responses (or bare
tokens): CMS SignedData over a TSTInfo whose message imprint is the hash of the bundle's
signature. A timestamp counts when the imprint matches, the signed attributes' message digest
is the TSTInfo's, and the signature verifies with the leaf certificate of a timestamp
authority whose window (end inclusive) and certificate contain the time. Certificates
embedded in the token are never trusted. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from secpod._record import record
from secpod.errors import SignatureRejected

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from secpod.signing.trustedroot import TrustedRoot

_SEQ, _SET, _INT, _OCTETS, _OID, _UTCTIME, _GENTIME = 0x30, 0x31, 0x02, 0x04, 0x06, 0x17, 0x18
_OID_SIGNED_DATA = "1.2.840.113549.1.7.2"
_OID_TSTINFO = "1.2.840.113549.1.9.16.1.4"
_OID_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
_OID_CONTENT_TYPE = "1.2.840.113549.1.9.3"
_HASHES = {"2.16.840.1.101.3.4.2.1": "sha256", "2.16.840.1.101.3.4.2.2": "sha384",
           "2.16.840.1.101.3.4.2.3": "sha512"}
_SIG_HASHES = {"1.2.840.10045.4.3.2": "sha256", "1.2.840.10045.4.3.3": "sha384",
               "1.2.840.10045.4.3.4": "sha512", "1.2.840.113549.1.1.11": "sha256",
               "1.2.840.113549.1.1.12": "sha384", "1.2.840.113549.1.1.13": "sha512",
               # id-ecPublicKey, rsaEncryption: the hash is the digest algorithm's
               "1.2.840.10045.2.1": "", "1.2.840.113549.1.1.1": ""}


class _Malformed(ValueError):
    pass


@record(frozen=True, eq=False)
class _TLV:
    tag: int
    raw: bytes      # the whole element, header included
    value: bytes


def _read(data: bytes, off: int = 0) -> tuple[_TLV, int]:
    if off + 2 > len(data):
        raise _Malformed("truncated DER")
    tag, n, p = data[off], data[off + 1], off + 2
    if tag & 0x1F == 0x1F:
        raise _Malformed("high tag numbers are not used in timestamps")
    if n & 0x80:
        width = n & 0x7F
        if width == 0 or width > 4 or p + width > len(data):
            raise _Malformed("bad DER length")
        n, p = int.from_bytes(data[p:p + width], "big"), p + width
    if p + n > len(data):
        raise _Malformed("truncated DER")
    return _TLV(tag=tag, raw=data[off:p + n], value=data[p:p + n]), p + n


def _items(value: bytes) -> list[_TLV]:
    out, off = [], 0
    while off < len(value):
        tlv, off = _read(value, off)
        out.append(tlv)
    return out


def _expect(tlv: _TLV, tag: int, what: str) -> _TLV:
    if tlv.tag != tag:
        raise _Malformed(f"{what}: expected tag {tag:#x}, got {tlv.tag:#x}")
    return tlv


def _oid(tlv: _TLV) -> str:
    raw = _expect(tlv, _OID, "object identifier").value
    if not raw:
        raise _Malformed("empty object identifier")
    parts, n = [], 0
    for b in raw:
        n = (n << 7) | (b & 0x7F)
        if not b & 0x80:
            parts.append(n)
            n = 0
    first = min(parts[0] // 40, 2)
    return ".".join(str(x) for x in [first, parts[0] - 40 * first, *parts[1:]])


def _civil(digits: str, what: str) -> datetime:
    """``YYYYMMDDHHMMSS`` in UTC (no _strptime: it costs an import)."""
    if len(digits) != 14 or not digits.isdigit():
        raise _Malformed(f"{what} {digits!r} is not YYYYMMDDHHMMSS")
    n = [int(digits[:4])] + [int(digits[i:i + 2]) for i in range(4, 14, 2)]
    return datetime(n[0], n[1], n[2], n[3], n[4], n[5], tzinfo=UTC)


def _gentime(tlv: _TLV) -> datetime:
    text = _expect(tlv, _GENTIME, "genTime").value.decode("ascii")
    if not text.endswith("Z"):
        raise _Malformed(f"genTime {text!r} is not in UTC")
    main, _, frac = text[:-1].partition(".")
    if frac and not frac.isdigit():
        raise _Malformed(f"genTime {text!r} has a malformed fraction")
    t = _civil(main, "genTime")
    return t.replace(microsecond=int((frac + "000000")[:6])) if frac else t


def _time(tlv: _TLV) -> datetime:
    """A certificate's Time: UTCTime (two-digit years: 50-99 are 19xx, RFC 5280 4.1.2.5.1)
    or GeneralizedTime, both in UTC."""
    if tlv.tag == _GENTIME:
        return _gentime(tlv)
    text = _expect(tlv, _UTCTIME, "UTCTime").value.decode("ascii")
    if len(text) != 13 or not text.endswith("Z"):
        raise _Malformed(f"UTCTime {text!r} is not YYMMDDHHMMSSZ")
    century = "19" if text[:2] >= "50" else "20"
    return _civil(century + text[:-1], "UTCTime")


@record(frozen=True, eq=False)
class _Token:
    tstinfo: bytes
    imprint_hash: str
    imprint: bytes
    gen_time: datetime
    digest_hash: str
    signed_attrs: bytes     # re-tagged as a SET: what the signature covers
    message_digest: bytes
    signature_hash: str
    signature: bytes


def _parse(data: bytes) -> _Token:
    top, end = _read(data)
    if end != len(data):
        raise _Malformed("trailing bytes")
    parts = _items(_expect(top, _SEQ, "timestamp").value)
    if parts and parts[0].tag == _SEQ and parts[0].value[:1] == bytes([_INT]):
        status = _items(parts[0].value)
        if status[0].value != b"\x00" and status[0].value != b"\x01":
            raise _Malformed("the time-stamp response's status is not granted")
        if len(parts) < 2:
            raise _Malformed("the time-stamp response has no token")
        parts = _items(_expect(parts[1], _SEQ, "token").value)
    if len(parts) != 2 or _oid(parts[0]) != _OID_SIGNED_DATA:
        raise _Malformed("the token is not CMS SignedData")
    sd = _items(_expect(_items(_expect(parts[1], 0xA0, "content").value)[0], _SEQ,
                        "SignedData").value)
    encap = _items(_expect(sd[2], _SEQ, "encapContentInfo").value)
    if _oid(encap[0]) != _OID_TSTINFO:
        raise _Malformed("the token's content is not a TSTInfo")
    tstinfo = _expect(_items(_expect(encap[1], 0xA0, "eContent").value)[0], _OCTETS,
                      "eContent").value
    tst = _items(_expect(_read(tstinfo)[0], _SEQ, "TSTInfo").value)
    mi = _items(_expect(tst[2], _SEQ, "messageImprint").value)
    mi_alg = _oid(_items(_expect(mi[0], _SEQ, "hashAlgorithm").value)[0])
    signer_infos = _items(_expect(sd[-1], _SET, "signerInfos").value)
    if len(signer_infos) != 1:
        raise _Malformed(f"expected one signer, got {len(signer_infos)}")
    si = _items(_expect(signer_infos[0], _SEQ, "SignerInfo").value)
    digest_alg = _oid(_items(_expect(si[2], _SEQ, "digestAlgorithm").value)[0])
    attrs = _expect(si[3], 0xA0, "signedAttrs")
    message_digest, content_type = None, None
    for attr in _items(attrs.value):
        a = _items(_expect(attr, _SEQ, "attribute").value)
        values = _items(_expect(a[1], _SET, "attribute values").value)
        if _oid(a[0]) == _OID_MESSAGE_DIGEST:
            message_digest = _expect(values[0], _OCTETS, "messageDigest").value
        elif _oid(a[0]) == _OID_CONTENT_TYPE:
            content_type = _oid(values[0])
    if message_digest is None or content_type != _OID_TSTINFO:
        raise _Malformed("the signed attributes lack the message digest or content type")
    sig_alg = _oid(_items(_expect(si[4], _SEQ, "signatureAlgorithm").value)[0])
    if digest_alg not in _HASHES or mi_alg not in _HASHES or sig_alg not in _SIG_HASHES:
        raise _Malformed("unsupported hash or signature algorithm")
    return _Token(
        tstinfo=tstinfo, imprint_hash=_HASHES[mi_alg],
        imprint=_expect(mi[1], _OCTETS, "hashedMessage").value,
        gen_time=_gentime(tst[4]), digest_hash=_HASHES[digest_alg],
        signed_attrs=bytes([_SET]) + attrs.raw[1:], message_digest=message_digest,
        signature_hash=_SIG_HASHES[sig_alg] or _HASHES[digest_alg],
        signature=_expect(si[5], _OCTETS, "signature").value)


def _certificate(der: bytes) -> tuple[datetime, datetime, bytes]:
    """A timestamp authority's certificate (from the trusted root): its validity and its
    SubjectPublicKeyInfo, read from the DER structure (RFC 5280 4.1)."""
    top, end = _read(der)
    if end != len(der):
        raise _Malformed("trailing bytes after the certificate")
    parts = _items(_expect(top, _SEQ, "certificate").value)
    if len(parts) != 3:
        raise _Malformed("a certificate has three parts")
    tbs = _items(_expect(parts[0], _SEQ, "tbsCertificate").value)
    if tbs and tbs[0].tag == 0xA0:  # the version, explicitly tagged
        tbs = tbs[1:]
    # serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo, ...
    validity = _items(_expect(tbs[3], _SEQ, "validity").value)
    if len(validity) != 2:
        raise _Malformed("a validity has two times")
    return _time(validity[0]), _time(validity[1]), _expect(tbs[5], _SEQ, "SPKI").raw


def _verify_with(cert_der: bytes, token: _Token) -> bool:
    """Whether the authority's certificate was valid at the token's time and its key (ECDSA
    or RSA PKCS#1 v1.5) signed the token's signed attributes. Through the system's
    libcrypto (secpod.signing._openssl): a key-signed bundle with a timestamp loads no
    ``cryptography``."""
    from secpod.signing import _openssl

    try:
        not_before, not_after, spki = _certificate(cert_der)
    except (_Malformed, IndexError, ValueError):
        return False
    if not not_before <= token.gen_time <= not_after:
        return False
    try:
        return _openssl.verify(spki, token.signature, token.signed_attrs,
                               digest=token.signature_hash, algorithms=("EC", "RSA"))
    except _openssl.KeyRejected:
        return False


def verify_timestamp(data: bytes, signature: bytes, root: TrustedRoot) -> datetime:
    """The verified time of one RFC 3161 timestamp over ``signature`` (the bundle's
    signature bytes). Raises SignatureRejected saying why it does not count."""
    try:
        token = _parse(data)
    except (_Malformed, IndexError, ValueError) as e:
        raise SignatureRejected(f"malformed RFC 3161 timestamp: {e}") from e
    if hashlib.new(token.imprint_hash, signature).digest() != token.imprint:
        raise SignatureRejected("the RFC 3161 timestamp is not over the bundle's signature")
    if hashlib.new(token.digest_hash, token.tstinfo).digest() != token.message_digest:
        raise SignatureRejected("the RFC 3161 timestamp's signed digest is not its content's")
    t = token.gen_time
    valid = [a for a in root.timestamp_authorities if a.validity.contains(t)]
    if not valid:
        raise SignatureRejected(f"no timestamp authority of the trusted root is valid at the "
                                f"timestamp's time {t.isoformat()}")
    if not any(_verify_with(a.chain[0], token) for a in valid):
        raise SignatureRejected("the RFC 3161 timestamp is not signed by a timestamp "
                                "authority of the trusted root")
    return t
