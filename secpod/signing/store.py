"""Where signatures live: beside images in the user's store, and in ``dir:`` layouts.

User store: ``$XDG_DATA_HOME/secpod/signatures/sha256-<hex>/signature-N``, one
file per signature in exactly the byte format of the ``dir:`` transport
(sigstore attachments start with ``\\x00sigstore-json\\n``; anything else is an
OpenPGP simple signing). Numbering is contiguous from 1, as containers/image
reads it. Sigstore bundles (cosign 3) for the same manifest are ``bundle-N`` in
the same folder, the bundle's JSON as it came (``dir:`` has no place for them).
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
from pathlib import Path

from secpod import paths
from secpod._record import record
from secpod.errors import MalformedInput, NotFound, SigningError, UsageError

SIGSTORE_PREFIX = b"\x00sigstore-json\n"
MAX_SIGNATURE = 4 * 1024 * 1024
MAX_MANIFEST = 4 * 1024 * 1024
MAX_SIGNATURES = 1000
MAX_BUNDLES = 64
_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")


def is_sigstore_blob(blob: bytes) -> bool:
    """A sigstore attachment (else an OpenPGP simple signing), by its first bytes."""
    return blob.startswith(SIGSTORE_PREFIX)


def signatures_root() -> Path:
    return paths.data_dir() / "signatures"


def signature_dir(manifest_digest: str) -> Path:
    """The folder of one manifest's signatures. Raises UsageError for a malformed digest."""
    m = _DIGEST.fullmatch(manifest_digest)
    if not m:
        raise UsageError(f"invalid manifest digest {manifest_digest!r}",
                         hint="a manifest digest is sha256: and 64 lowercase hex digits")
    return signatures_root() / f"sha256-{m.group(1)}"


def _read_bounded(path: Path, limit: int, what: str) -> bytes:
    """``path``'s bytes. Raises FileNotFoundError when it is absent, MalformedInput when
    it is larger than ``limit``, not a regular file, or unreadable."""
    from secpod._files import NotRegularFile, TooLarge, read_limited

    # nofollow: a signature folder is ours; a link in it is not something we wrote.
    try:
        return read_limited(path, limit, nofollow=True)
    except FileNotFoundError:
        raise
    except TooLarge as e:
        raise MalformedInput(f"{what} {path} is larger than {limit} bytes") from e
    except NotRegularFile as e:
        raise MalformedInput(f"{what} {path} is not a regular file") from e
    except OSError as e:
        reason = "it is a symbolic link" if e.errno == errno.ELOOP else e.strerror
        raise MalformedInput(f"cannot read {what} {path}: {reason}") from e


def _read_numbered(folder: Path, most: int = MAX_SIGNATURES, *,
                   prefix: str = "signature") -> list[bytes]:
    out: list[bytes] = []
    for n in range(1, most + 1):
        p = folder / f"{prefix}-{n}"
        try:
            out.append(_read_bounded(p, MAX_SIGNATURE, prefix))
        except FileNotFoundError:
            break
    return out


def signatures_for(manifest_digest: str) -> list[bytes]:
    """The raw signature blobs stored for ``manifest_digest`` (empty when none)."""
    folder = signature_dir(manifest_digest)
    if not folder.is_dir():
        return []
    return _read_numbered(folder)


def bundles_for(manifest_digest: str) -> list[bytes]:
    """The Sigstore bundles stored for ``manifest_digest`` (empty when none)."""
    folder = signature_dir(manifest_digest)
    if not folder.is_dir():
        return []
    return _read_numbered(folder, MAX_BUNDLES, prefix="bundle")


def append_numbered(folder: Path, blob: bytes, *, most: int = MAX_SIGNATURES,
                    mode: int = 0o700, prefix: str = "signature") -> Path:
    """Store ``blob`` as the next free ``PREFIX-N`` in ``folder`` (made with ``mode``);
    the same bytes already there return that file. Also the lookaside store's writer.

    Raises MalformedInput (empty or oversized blob, an unreadable signature there,
    ``most`` signatures already there) or SigningError (the folder cannot be written).
    """
    if not blob or len(blob) > MAX_SIGNATURE:
        raise MalformedInput(f"a signature must be 1 to {MAX_SIGNATURE} bytes")
    try:
        folder.mkdir(mode=mode, parents=True, exist_ok=True)
        lock_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise SigningError(f"cannot store the signature in {folder}: {e.strerror}",
                           hint="check that the folder is yours and writable") from e
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        existing = _read_numbered(folder, most, prefix=prefix)
        for i, old in enumerate(existing, start=1):
            if old == blob:
                return folder / f"{prefix}-{i}"
        if len(existing) >= most:
            raise MalformedInput(f"{folder} already holds {most} {prefix}s")
        target = folder / f"{prefix}-{len(existing) + 1}"
        tmp = folder / f".{target.name}.tmp-{os.getpid()}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
                f.flush()
                os.fsync(f.fileno())
            os.link(tmp, target)  # fails rather than overwrite, should the lock be bypassed
            os.fsync(lock_fd)
        except OSError as e:
            raise SigningError(f"cannot store the signature as {target}: {e.strerror}",
                               hint="check that the folder is yours and writable") from e
        finally:
            tmp.unlink(missing_ok=True)
        return target
    finally:
        os.close(lock_fd)


def add_signature(manifest_digest: str, blob: bytes) -> Path:
    """Store ``blob`` as the next ``signature-N`` for ``manifest_digest``; return its path.

    Storing the same bytes twice returns the existing file. Raises UsageError
    (bad digest), MalformedInput (empty or oversized blob, an unreadable signature
    already there) or SigningError (the folder cannot be written).
    """
    return append_numbered(signature_dir(manifest_digest), blob)


def add_bundle(manifest_digest: str, data: bytes) -> Path:
    """Store a Sigstore bundle as the next ``bundle-N`` for ``manifest_digest``; the same
    bytes twice return the existing file. Raises as :func:`add_signature`."""
    return append_numbered(signature_dir(manifest_digest), data, most=MAX_BUNDLES,
                           prefix="bundle")


@record(frozen=True)
class DirImage:
    """An image in the ``dir:`` layout: ``manifest.json`` (may be absent) and signatures."""

    path: Path
    manifest: bytes | None
    signatures: tuple[bytes, ...]


def read_dir(path: Path) -> DirImage:
    """Read a ``dir:`` layout. Raises NotFound when ``path`` is not a folder."""
    if not path.is_dir():
        raise NotFound(f"{path} is not a directory", hint="dir:PATH names a dir: image layout")
    try:
        manifest: bytes | None = _read_bounded(path / "manifest.json", MAX_MANIFEST, "manifest")
    except FileNotFoundError:
        manifest = None
    return DirImage(path=path, manifest=manifest, signatures=tuple(_read_numbered(path)))


def add_dir_signature(path: Path, blob: bytes) -> Path:
    """Append ``blob`` as the next ``signature-N`` of a ``dir:`` layout."""
    if not (path / "manifest.json").is_file():
        raise NotFound(f"{path} has no manifest.json", hint="dir:PATH names a dir: image layout")
    return append_numbered(path, blob)
