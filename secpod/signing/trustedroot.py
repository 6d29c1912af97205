"""Sigstore trusted roots (``trusted_root.json``, protobuf-specs TrustedRoot, JSON form).

What a bundle is checked against: transparency logs (Rekor), certificate
authorities (Fulcio), CT logs and timestamp authorities, each with a validity
window. A window's start is required; its end, when given, is inclusive.
Sigstore's public-good root ships as data (``data/public-good-trusted_root.json``).
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from pathlib import Path

from secpod._record import record
from secpod.errors import MalformedInput
from secpod.signing import _json

MEDIA_TYPES = ("application/vnd.dev.sigstore.trustedroot+json;version=0.1",
               "application/vnd.dev.sigstore.trustedroot.v0.2+json")
PUBLIC_GOOD = Path(__file__).with_name("data") / "public-good-trusted_root.json"
MAX_SIZE = 1 << 20


class TrustedRootError(MalformedInput):
    """The trusted root is malformed or unusable (exit 2: the check cannot run)."""

    exit_code = 2


@record(frozen=True, eq=False)
class Validity:
    start: datetime
    end: datetime | None

    def contains(self, t: datetime) -> bool:
        return self.start <= t and (self.end is None or t <= self.end)


@record(frozen=True, eq=False)
class LogInstance:
    """A transparency log or CT log: its key (DER SubjectPublicKeyInfo) and log id."""

    base_url: str
    log_id: bytes
    key_der: bytes
    key_details: str
    validity: Validity


@record(frozen=True, eq=False)
class Authority:
    """A certificate or timestamp authority: its chain (DER, leaf first) and window."""

    uri: str
    chain: tuple[bytes, ...]
    validity: Validity


@record(frozen=True, eq=False)
class TrustedRoot:
    tlogs: tuple[LogInstance, ...]
    certificate_authorities: tuple[Authority, ...]
    ctlogs: tuple[LogInstance, ...]
    timestamp_authorities: tuple[Authority, ...]
    source: str

    def tlog(self, log_id: bytes) -> LogInstance | None:
        return next((t for t in self.tlogs if t.log_id == log_id), None)


def _time(value: object, path: str) -> datetime:
    text = _json.expect_str(value, path)
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as e:
        raise _json.JSONShapeError(path, f"{text!r} is not an RFC 3339 time") from e
    if t.tzinfo is None:
        raise _json.JSONShapeError(path, "the time has no zone")
    return t.astimezone(UTC)


def _validity(value: object, path: str) -> Validity:
    obj = _json.expect_object(value, path)
    if "start" not in obj:
        raise _json.JSONShapeError(_json.child(path, "start"),
                                   "missing required start of the validity window")
    end = obj.get("end")
    return Validity(start=_time(obj["start"], _json.child(path, "start")),
                    end=None if end is None else _time(end, _json.child(path, "end")))


def _b64(value: object, path: str) -> bytes:
    return _json.expect_b64(value, path)


def _log(value: object, path: str) -> LogInstance:
    obj = _json.expect_object(value, path)
    pk = _json.expect_object(obj.get("publicKey"), _json.child(path, "publicKey"))
    pk_path = _json.child(path, "publicKey")
    if "validFor" not in pk:
        raise _json.JSONShapeError(_json.child(pk_path, "validFor"), "missing validity window")
    log_id = _json.expect_object(obj.get("logId"), _json.child(path, "logId"))
    return LogInstance(
        base_url=_json.expect_str(obj.get("baseUrl", ""), _json.child(path, "baseUrl")),
        log_id=_b64(log_id.get("keyId"), _json.child(path, "logId.keyId")),
        key_der=_b64(pk.get("rawBytes"), _json.child(pk_path, "rawBytes")),
        key_details=_json.expect_str(pk.get("keyDetails", ""), _json.child(pk_path, "keyDetails")),
        validity=_validity(pk["validFor"], _json.child(pk_path, "validFor")))


def _authority(value: object, path: str) -> Authority:
    obj = _json.expect_object(value, path)
    chain = _json.expect_object(obj.get("certChain"), _json.child(path, "certChain"))
    certs = _json.expect_list(chain.get("certificates"),
                              _json.child(path, "certChain.certificates"),
                              lambda c, p: _b64(_json.expect_object(c, p).get("rawBytes"),
                                                _json.child(p, "rawBytes")), nonempty=True)
    if "validFor" not in obj:
        raise _json.JSONShapeError(_json.child(path, "validFor"), "missing validity window")
    return Authority(uri=_json.expect_str(obj.get("uri", ""), _json.child(path, "uri")),
                     chain=tuple(certs), validity=_validity(obj["validFor"],
                                                            _json.child(path, "validFor")))


def parse_trusted_root(data: bytes, *, source: str) -> TrustedRoot:
    """Parse a ``trusted_root.json``. Raises TrustedRootError naming the field at fault,
    and when the root has no transparency log (nothing could then be verified)."""
    if len(data) > MAX_SIZE:
        raise TrustedRootError(f"{source}: the trusted root is larger than {MAX_SIZE} bytes")
    try:
        doc = _json.expect_object(_json.loads(data, what="trusted root"), "$")
        media = _json.expect_str(doc.get("mediaType", ""), "$.mediaType")
        if media not in MEDIA_TYPES:
            raise _json.JSONShapeError("$.mediaType", f"unknown trusted root media type {media!r}")
        root = TrustedRoot(
            tlogs=tuple(_json.expect_list(doc.get("tlogs", []), "$.tlogs", _log)),
            certificate_authorities=tuple(_json.expect_list(
                doc.get("certificateAuthorities", []), "$.certificateAuthorities", _authority)),
            ctlogs=tuple(_json.expect_list(doc.get("ctlogs", []), "$.ctlogs", _log)),
            timestamp_authorities=tuple(_json.expect_list(
                doc.get("timestampAuthorities", []), "$.timestampAuthorities", _authority)),
            source=source)
    except (_json.JSONShapeError, binascii.Error) as e:
        raise TrustedRootError(f"{source}: malformed trusted root: {e}",
                               hint="give a trusted_root.json in Sigstore's format") from e
    if not root.tlogs:
        raise TrustedRootError(f"{source}: the trusted root has no transparency logs",
                               hint="a bundle's log entry can only be checked against a log key")
    return root


def load_trusted_root(path: Path | None) -> TrustedRoot:
    """The root in ``path``, or Sigstore's public-good root shipped with secpod."""
    src = path or PUBLIC_GOOD
    from secpod._files import read_limited

    try:
        data = read_limited(src, MAX_SIZE)
    except OSError as e:
        raise TrustedRootError(f"cannot read the trusted root {src}: {e.strerror}") from e
    return parse_trusted_root(data, source=str(src))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
