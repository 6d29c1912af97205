"""Signature checks and Ed25519 signing through the system's OpenSSL libcrypto (ctypes).

Why not ``cryptography``: importing it costs a ``secpod run`` 20-28 ms (its Rust
extension, then the OpenSSL backend that ``ec.ECDSA`` pulls in), and a run needs
exactly two operations: verify an image signature with a trust-policy key, and sign
the audit checkpoint with the log's Ed25519 key. Python's own ``_hashlib`` has
already loaded libcrypto, so opening it again here is free.

What this module offers, and nothing more:

- :func:`load_spki`: parse a DER SubjectPublicKeyInfo, say what kind of key it is;
- :func:`check_allowed`: the one allow list of keys secpod verifies or signs with;
- :func:`verify`: ECDSA and RSA (PKCS#1 v1.5) with SHA-256 (or SHA-384, SHA-512 when
  asked: RFC 3161 timestamps), or Ed25519 (pure);
- :func:`ed25519_sign`, :func:`ed25519_public_key`, :func:`ed25519_verify` over raw keys.

Every key these functions use passes :func:`check_allowed` first: the trust policy's
keys, certificates' keys (through :mod:`secpod.signing.keys`) and the audit log's
Ed25519 note keys (:mod:`secpod.audit._note`) alike.

Every OpenSSL object is freed in ``finally``, and OpenSSL's thread-local error queue
is emptied after every failure so nothing stale reaches ``ssl`` or ``hashlib``.
Private keys, key generation and certificates stay with ``cryptography`` (they are
not on the run path).
"""

from __future__ import annotations

import ctypes
from ctypes import POINTER, byref, c_char_p, c_int, c_long, c_size_t, c_ulong, c_void_p

from secpod._record import record
from secpod.errors import HostError

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

__all__ = ["ALLOWED_CURVES", "ALLOWED_KEYS", "MIN_RSA_BITS", "KeyInfo", "KeyRejected",
           "OpenSSLError", "check_allowed", "ed25519_public_key", "ed25519_sign",
           "ed25519_verify", "load_spki", "verify"]

# Sonames only: ctypes.util.find_library would run ldconfig and gcc in subprocesses.
LIBRARIES = ("libcrypto.so.3", "libcrypto.so.1.1")

# NIDs (obj_mac.h); stable across OpenSSL 1.1 and 3.
_NID_RSA = 6
_NID_EC = 408
_NID_ED25519 = 1087
_ALGORITHMS = {_NID_RSA: "RSA", 912: "RSA-PSS", 116: "DSA", 28: "DH", 920: "DH",
               _NID_EC: "EC", 1172: "SM2", _NID_ED25519: "Ed25519", 1088: "Ed448",
               1034: "X25519", 1035: "X448"}
_CURVES = {"prime256v1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
# The allow list (sigstore's; cosign refuses the rest): ECDSA on the three NIST curves,
# RSA of 2048 bits or more (PKCS#1 v1.5 with SHA-256), Ed25519. Any other key, however
# well OpenSSL parses it (secp256k1, binary curves, P-192, RSA-512, DSA, Ed448, an EC key
# with explicit curve parameters), is refused by name.
ALLOWED_CURVES = ("P-256", "P-384", "P-521")
MIN_RSA_BITS = 2048
ALLOWED_KEYS = "ECDSA P-256, P-384 or P-521, RSA of 2048 bits or more, and Ed25519"
_ED25519_SIZE = 32
_ED25519_SIGNATURE = 64
# A SubjectPublicKeyInfo of RSA 16384 is about 2 KiB; refuse anything far larger before
# OpenSSL sees it.
_MAX_SPKI = 16 * 1024


class KeyRejected(ValueError):
    """OpenSSL does not accept the key bytes (malformed, trailing data, wrong size)."""


class OpenSSLError(RuntimeError):
    """A libcrypto call failed where it cannot fail on good input (out of memory)."""


@record(frozen=True)
class KeyInfo:
    """What a public key is: ``algorithm`` ("EC", "RSA", "Ed25519", "DSA", ...), its size in
    bits, and for EC its named curve ("P-256", "P-384", "P-521", or OpenSSL's short name)."""

    algorithm: str
    bits: int
    curve: str | None = None
    explicit: bool = False  # EC: the key spells out its curve's parameters

    def __str__(self) -> str:
        if self.algorithm == "EC":
            return f"ECDSA {self.curve}" + (" (explicit curve parameters)" if self.explicit
                                            else "")
        if self.algorithm in ("RSA", "RSA-PSS", "DSA", "DH"):
            return f"{self.algorithm} {self.bits}"
        return self.algorithm


# (name, fallback name in OpenSSL 1.1, argtypes, restype). The 1.1 names became macros
# in 3.0; OpenSSL 1.1 has no EVP_PKEY_get_group_name (the EC_KEY route below serves it).
_SIGNATURES: tuple[tuple[str, str | None, list[Any], Any], ...] = (
    ("ERR_clear_error", None, [], None),
    ("ERR_get_error", None, [], c_ulong),
    ("ERR_reason_error_string", None, [c_ulong], c_char_p),
    ("d2i_PUBKEY", None, [c_void_p, POINTER(c_void_p), c_long], c_void_p),
    ("EVP_PKEY_free", None, [c_void_p], None),
    ("EVP_PKEY_get_base_id", "EVP_PKEY_base_id", [c_void_p], c_int),
    ("EVP_PKEY_get_bits", "EVP_PKEY_bits", [c_void_p], c_int),
    ("OBJ_nid2sn", None, [c_int], c_char_p),
    ("EVP_PKEY_new_raw_private_key", None, [c_int, c_void_p, c_char_p, c_size_t], c_void_p),
    ("EVP_PKEY_new_raw_public_key", None, [c_int, c_void_p, c_char_p, c_size_t], c_void_p),
    ("EVP_PKEY_get_raw_public_key", None, [c_void_p, c_void_p, POINTER(c_size_t)], c_int),
    ("EVP_MD_CTX_new", None, [], c_void_p),
    ("EVP_MD_CTX_free", None, [c_void_p], None),
    ("EVP_sha256", None, [], c_void_p),
    ("EVP_sha384", None, [], c_void_p),
    ("EVP_sha512", None, [], c_void_p),
    ("EVP_DigestVerifyInit", None, [c_void_p, c_void_p, c_void_p, c_void_p, c_void_p], c_int),
    ("EVP_DigestVerify", None, [c_void_p, c_char_p, c_size_t, c_char_p, c_size_t], c_int),
    ("EVP_DigestSignInit", None, [c_void_p, c_void_p, c_void_p, c_void_p, c_void_p], c_int),
    ("EVP_DigestSign", None, [c_void_p, c_void_p, POINTER(c_size_t), c_char_p, c_size_t],
     c_int),
)
# Optional: OpenSSL 3 has EVP_PKEY_get_group_name; OpenSSL 1.1 has only the EC_KEY route
# (deprecated in 3, and absent from a build without the deprecated API).
_OPTIONAL: tuple[tuple[str, list[Any], Any], ...] = (
    ("EVP_PKEY_get_group_name", [c_void_p, c_void_p, c_size_t, POINTER(c_size_t)], c_int),
    ("EVP_PKEY_get_utf8_string_param",
     [c_void_p, c_char_p, c_char_p, c_size_t, POINTER(c_size_t)], c_int),
    ("EC_KEY_decoded_from_explicit_params", [c_void_p], c_int),
    ("EVP_PKEY_get0_EC_KEY", [c_void_p], c_void_p),
    ("EC_KEY_get0_group", [c_void_p], c_void_p),
    ("EC_GROUP_get_curve_name", [c_void_p], c_int),
)


class _Lib:
    """libcrypto's functions with their C types, as attributes named as in OpenSSL 3."""

    def __init__(self, lib: ctypes.CDLL, soname: str) -> None:
        self.soname = soname
        for name, old, argtypes, restype in _SIGNATURES:
            try:
                fn = getattr(lib, name)
            except AttributeError:
                if old is None:
                    raise
                fn = getattr(lib, old)
            fn.argtypes = argtypes
            fn.restype = restype
            setattr(self, name, fn)
        for name, argtypes, restype in _OPTIONAL:
            fn = getattr(lib, name, None)
            if fn is not None:
                fn.argtypes = argtypes
                fn.restype = restype
            setattr(self, name, fn)

    # The functions are set from the tables above; this tells mypy they exist (as Any).
    def __getattr__(self, name: str) -> Any:
        raise AttributeError(name)


_LIB: _Lib | None = None


def _lib() -> _Lib:
    """libcrypto, loaded once. Raises HostError when no supported version is installed."""
    global _LIB
    if _LIB is None:
        errors: list[str] = []
        for soname in LIBRARIES:
            try:
                _LIB = _Lib(ctypes.CDLL(soname), soname)
                break
            except (OSError, AttributeError) as e:
                errors.append(f"{soname}: {e}")
        else:
            raise HostError("cannot load OpenSSL's libcrypto to check signatures ("
                            + "; ".join(errors) + ")",
                            hint="install OpenSSL 3 (Debian and Ubuntu: apt-get install libssl3)")
    return _LIB


def _drain(lib: _Lib) -> str:
    """The reason of the oldest queued OpenSSL error, and an empty queue."""
    code = lib.ERR_get_error()
    reason = lib.ERR_reason_error_string(code) if code else None
    lib.ERR_clear_error()
    if reason:
        return str(reason.decode("ascii", "replace"))
    return f"error {code:#x}" if code else "no reason given"


def _parse(lib: _Lib, der: bytes) -> int:
    """An owned EVP_PKEY* for ``der``. Raises KeyRejected."""
    if len(der) > _MAX_SPKI:
        raise KeyRejected(f"{len(der)} bytes is too large for a public key")
    buf = ctypes.create_string_buffer(der, len(der))
    start = ctypes.addressof(buf)
    cursor = c_void_p(start)
    pkey = lib.d2i_PUBKEY(None, byref(cursor), len(der))
    if not pkey:
        raise KeyRejected(f"not a DER SubjectPublicKeyInfo (OpenSSL: {_drain(lib)})")
    if cursor.value is None or cursor.value - start != len(der):
        lib.EVP_PKEY_free(pkey)
        raise KeyRejected("trailing data after the SubjectPublicKeyInfo")
    return int(pkey)


def _curve(lib: _Lib, pkey: int) -> str | None:
    if lib.EVP_PKEY_get_group_name is not None:
        name = ctypes.create_string_buffer(80)
        size = c_size_t(0)
        if lib.EVP_PKEY_get_group_name(pkey, name, len(name), byref(size)) != 1:
            lib.ERR_clear_error()
            return None
        short = name.value.decode("ascii", "replace")
    else:
        short = _curve_v1(lib, pkey) or ""
    return _CURVES.get(short, short) or None


def _curve_v1(lib: _Lib, pkey: int) -> str | None:
    """OpenSSL 1.1's way to the curve's short name (still exported, deprecated, in 3)."""
    if lib.EVP_PKEY_get0_EC_KEY is None:
        return None
    ec_key = lib.EVP_PKEY_get0_EC_KEY(pkey)
    group = lib.EC_KEY_get0_group(ec_key) if ec_key else None
    nid = lib.EC_GROUP_get_curve_name(group) if group else 0
    short = lib.OBJ_nid2sn(nid) if nid else None
    if not short:
        lib.ERR_clear_error()
        return None
    return str(short.decode("ascii", "replace"))


def _explicit(lib: _Lib, pkey: int) -> bool:
    """Whether the EC key was decoded from explicit curve parameters (OpenSSL 3 matches
    them to a named curve and then names it, so the curve's name does not tell)."""
    if lib.EVP_PKEY_get_utf8_string_param is not None:
        out = ctypes.create_string_buffer(32)
        size = c_size_t(0)
        if lib.EVP_PKEY_get_utf8_string_param(pkey, b"encoding", out, len(out),
                                              byref(size)) == 1:
            return out.value != b"named_curve"
        lib.ERR_clear_error()
    if lib.EC_KEY_decoded_from_explicit_params is not None and lib.EVP_PKEY_get0_EC_KEY:
        ec_key = lib.EVP_PKEY_get0_EC_KEY(pkey)
        if ec_key:
            return bool(lib.EC_KEY_decoded_from_explicit_params(ec_key) != 0)
        lib.ERR_clear_error()
    # Cannot tell: treat it as explicit, so it is refused rather than trusted.
    return True


def _info(lib: _Lib, pkey: int) -> KeyInfo:
    nid = lib.EVP_PKEY_get_base_id(pkey)
    algorithm = _ALGORITHMS.get(nid)
    if algorithm is None:
        short = lib.OBJ_nid2sn(nid)
        if not short:
            lib.ERR_clear_error()  # the queue stays empty after every failure
        algorithm = short.decode("ascii", "replace") if short else f"NID {nid}"
    bits = max(int(lib.EVP_PKEY_get_bits(pkey)), 0)
    if nid != _NID_EC:
        return KeyInfo(algorithm=algorithm, bits=bits)
    curve = _curve(lib, pkey)
    if curve is None:
        raise KeyRejected("the EC key does not use a named curve")
    return KeyInfo(algorithm=algorithm, bits=bits, curve=curve, explicit=_explicit(lib, pkey))


def check_allowed(info: KeyInfo) -> None:
    """Refuse a key that is not on the allow list (:data:`ALLOWED_KEYS`).

    Raises KeyRejected naming the key: ``ECDSA secp256k1``, ``RSA 1024``, ``DSA 2048``,
    ``ECDSA P-256 (explicit curve parameters)``.
    """
    if info.algorithm == "EC":
        ok = info.curve in ALLOWED_CURVES and not info.explicit
    elif info.algorithm == "RSA":
        ok = info.bits >= MIN_RSA_BITS
    else:
        ok = info.algorithm == "Ed25519"
    if not ok:
        raise KeyRejected(f"a {info} key is not allowed (secpod uses {ALLOWED_KEYS})")


def load_spki(der: bytes) -> KeyInfo:
    """What the DER SubjectPublicKeyInfo ``der`` holds, after OpenSSL parsed it whole.

    Any key type OpenSSL decodes is described (:func:`check_allowed` decides what is
    used). An EC point must lie on its curve. Raises KeyRejected (malformed, trailing bytes,
    an EC key without a named curve) and HostError (no libcrypto).
    """
    lib = _lib()
    pkey = _parse(lib, der)
    try:
        return _info(lib, pkey)
    finally:
        lib.EVP_PKEY_free(pkey)


def _digest_verify(lib: _Lib, pkey: int, md: int | None, signature: bytes, data: bytes) -> bool:
    ctx = lib.EVP_MD_CTX_new()
    if not ctx:
        raise OpenSSLError(f"EVP_MD_CTX_new failed: {_drain(lib)}")
    try:
        if lib.EVP_DigestVerifyInit(ctx, None, md, None, pkey) != 1:
            raise KeyRejected(f"OpenSSL cannot verify with this key: {_drain(lib)}")
        ok = lib.EVP_DigestVerify(ctx, signature, len(signature), data, len(data))
        # 0 is a wrong signature; below 0 a malformed one (bad DER, wrong length): both
        # are "not signed by this key", not a failure of the check.
        if ok != 1:
            lib.ERR_clear_error()
        return bool(ok == 1)
    finally:
        lib.EVP_MD_CTX_free(ctx)


def verify(spki_der: bytes, signature: bytes, data: bytes, *, digest: str = "sha256",
           algorithms: tuple[str, ...] = ("EC", "RSA", "Ed25519")) -> bool:
    """Whether ``signature`` over ``data`` verifies with the key ``spki_der``.

    ECDSA and RSA PKCS#1 v1.5 hash with ``digest`` (SHA-256 unless told: sha384 and
    sha512 are the others), Ed25519 is pure: what sigstore's verifiers do. A malformed
    signature is False. Raises KeyRejected when the key is malformed, of another type or
    not among ``algorithms``, or not on the allow list (:func:`check_allowed`), HostError
    when there is no libcrypto.
    """
    lib = _lib()
    md_of = {"sha256": lib.EVP_sha256, "sha384": lib.EVP_sha384, "sha512": lib.EVP_sha512}
    if digest not in md_of:
        raise ValueError(f"unsupported digest {digest!r}")
    pkey = _parse(lib, spki_der)
    try:
        info = _info(lib, pkey)
        if info.algorithm not in algorithms:
            raise KeyRejected(f"cannot verify with a {info} key")
        check_allowed(info)
        md = None if info.algorithm == "Ed25519" else md_of[digest]()
        return _digest_verify(lib, pkey, md, signature, data)
    finally:
        lib.EVP_PKEY_free(pkey)


def _raw_key(lib: _Lib, raw: bytes, *, private: bool) -> int:
    if len(raw) != _ED25519_SIZE:
        kind = "private" if private else "public"
        raise KeyRejected(f"an Ed25519 {kind} key is {_ED25519_SIZE} bytes, not {len(raw)}")
    new = lib.EVP_PKEY_new_raw_private_key if private else lib.EVP_PKEY_new_raw_public_key
    pkey = new(_NID_ED25519, None, raw, len(raw))
    if not pkey:
        raise KeyRejected(f"OpenSSL refuses the Ed25519 key: {_drain(lib)}")
    try:
        check_allowed(_info(lib, pkey))  # the same list as every other key
    except KeyRejected:
        lib.EVP_PKEY_free(pkey)
        raise
    return int(pkey)


def ed25519_public_key(raw_private: bytes) -> bytes:
    """The 32-byte public key of the 32-byte Ed25519 private key (RFC 8032 seed).

    Raises KeyRejected for a wrong length.
    """
    lib = _lib()
    pkey = _raw_key(lib, raw_private, private=True)
    try:
        out = ctypes.create_string_buffer(_ED25519_SIZE)
        size = c_size_t(len(out))
        if lib.EVP_PKEY_get_raw_public_key(pkey, out, byref(size)) != 1:
            raise OpenSSLError(f"EVP_PKEY_get_raw_public_key failed: {_drain(lib)}")
        return out.raw[:size.value]
    finally:
        lib.EVP_PKEY_free(pkey)


def ed25519_sign(raw_private: bytes, data: bytes) -> bytes:
    """The 64-byte Ed25519 signature of ``data`` (deterministic, RFC 8032).

    Raises KeyRejected for a private key that is not 32 bytes.
    """
    lib = _lib()
    pkey = _raw_key(lib, raw_private, private=True)
    try:
        ctx = lib.EVP_MD_CTX_new()
        if not ctx:
            raise OpenSSLError(f"EVP_MD_CTX_new failed: {_drain(lib)}")
        try:
            out = ctypes.create_string_buffer(_ED25519_SIGNATURE)
            size = c_size_t(len(out))
            if (lib.EVP_DigestSignInit(ctx, None, None, None, pkey) != 1
                    or lib.EVP_DigestSign(ctx, out, byref(size), data, len(data)) != 1):
                raise OpenSSLError(f"Ed25519 signing failed: {_drain(lib)}")
            return out.raw[:size.value]
        finally:
            lib.EVP_MD_CTX_free(ctx)
    finally:
        lib.EVP_PKEY_free(pkey)


def ed25519_verify(raw_public: bytes, signature: bytes, data: bytes) -> bool:
    """Whether ``signature`` is ``raw_public``'s Ed25519 signature of ``data``.

    A signature of the wrong length is False. Raises KeyRejected for a public key
    that is not 32 bytes.
    """
    lib = _lib()
    pkey = _raw_key(lib, raw_public, private=False)
    try:
        return _digest_verify(lib, pkey, None, signature, data)
    finally:
        lib.EVP_PKEY_free(pkey)
