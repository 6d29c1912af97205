"""Safe, rootless unpacking of an image layer into a tree of its own (the image's root
filesystem is then linked from its layers' trees: secpod.images._farm).

Rules (docs/images.md explains them to users):

1. Refused (HostileArchive, nothing kept): absolute entry paths, ``..``
   components, any parent component that is a symlink (placed by an earlier
   entry or layer), hardlinks whose target is absolute, has ``..``, or goes
   through a symlink, oversized paths, and the bounds below.
2. Neutralised and counted: device nodes are skipped (rootless cannot mknod);
   setuid/setgid bits are stripped; extended attributes other than ``user.*`` and
   ``security.capability`` are dropped (``trusted.*``, ``security.selinux`` and the
   other ``security.*``, ``system.*`` ACLs).
3. Owners: with ``owners`` (the unpacker runs as root of a user namespace mapped as
   the containers are, secpod.images._mapped), every entry keeps its uid and gid, so
   on the host they belong to the user's subordinate ids; an id beyond the mapping is
   refused (HostError, as Podman refuses it). Without, every file is owned by the
   invoking user (container root) and the original owners are only counted.
4. Bounded: total unpacked bytes, entry count, single file size, path length,
   and the compressed-to-uncompressed ratio, all checked while streaming.
5. Whiteouts (``.wh.NAME``) and opaque whiteouts (``.wh..wh..opq``) hide what
   lower layers put there, never what the same layer adds: they are recorded with the
   layer, and the farm applies them before the layer's own entries.

Every path is resolved from the root one component at a time with
``O_NOFOLLOW | O_DIRECTORY`` on directory fds, so no symlink in the tree is
ever followed, whatever the order of entries.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
import tarfile
import zlib
from pathlib import Path
from typing import Any, BinaryIO, Self, cast

import zstandard

from secpod._record import field, record
from secpod.errors import DigestMismatch, HostError, HostileArchive, MalformedInput, UsageError
from secpod.images._tar import (
    BLOCKDEV,
    CHAR,
    DIR,
    FIFO,
    FILE,
    HARDLINK,
    SYMLINK,
    Entry,
    TarReader,
)

_deflate: Any
try:  # ISA-L's inflate (PyPI `isal`): the same raw deflate, 2-3x faster than zlib's
    from isal import isal_zlib as _deflate
except ImportError:  # a platform without its wheel: zlib
    _deflate = zlib
# What a damaged or truncated layer stream raises while it is read.
_STREAM_ERRORS: tuple[type[BaseException], ...] = (
    EOFError, OSError, zlib.error, _deflate.error, zstandard.ZstdError)

GIB = 1 << 30
RATIO_FLOOR = 64 << 20  # below this many unpacked bytes the ratio is not judged
MAX_PATH = 4096
MAX_NAME = 255
_CHUNK = 1 << 20
# Decompressed bytes per step: small enough to stay in cache from the inflate through
# the hash to the write, and to bound what one compressed read can expand to.
_OUT = 256 << 10
_IN = 256 << 10
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_HINT = "the image is hostile or corrupt; nothing was imported"
MOUNTPOINT_DIRS = ("proc", "sys", "dev", "tmp", "run", "etc")
MOUNTPOINT_FILES = ("hosts", "resolv.conf", "hostname")


def _env_int(var: str, default: int) -> int:
    raw = os.environ.get(var, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise UsageError(f"{var}={raw!r} is not a positive whole number",
                         hint=f"unset {var} or set it to a number of bytes or entries")
    return value


@record(frozen=True)
class Limits:
    """Unpack bounds; :meth:`from_env` reads the documented overrides."""

    max_bytes: int = 16 * GIB
    max_entries: int = 1_000_000
    max_file_bytes: int = 16 * GIB
    max_ratio: int = 1024

    @classmethod
    def from_env(cls) -> Limits:
        """Limits with SECPOD_MAX_UNPACK_BYTES, SECPOD_MAX_ENTRIES, SECPOD_MAX_FILE_BYTES and
        SECPOD_MAX_RATIO applied. Raises UsageError for a value that is not a positive integer."""
        d = cls()
        return cls(max_bytes=_env_int("SECPOD_MAX_UNPACK_BYTES", d.max_bytes),
                   max_entries=_env_int("SECPOD_MAX_ENTRIES", d.max_entries),
                   max_file_bytes=_env_int("SECPOD_MAX_FILE_BYTES", d.max_file_bytes),
                   max_ratio=_env_int("SECPOD_MAX_RATIO", d.max_ratio))


def sniff_compression(head: bytes) -> str:
    """``"gzip"``, ``"zstd"`` or ``"tar"`` from a blob's first 512 bytes.

    Raises MalformedInput for anything else.
    """
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head[:4] == b"\x28\xb5\x2f\xfd":
        return "zstd"
    if len(head) >= 512:
        block = head[:512]
        if block == bytes(512):
            return "tar"
        try:
            tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
            return "tar"
        except tarfile.HeaderError:
            pass
    named = {b"BZh": "bzip2", b"\xfd7zXZ": "xz", b"\x04\x22\x4d\x18": "lz4"}
    for magic, kind in named.items():
        if head.startswith(magic):
            raise MalformedInput(f"{kind}-compressed layers are not supported",
                                 hint="layers must be tar, gzip or zstd")
    raise MalformedInput(f"unknown layer compression (starts with {head[:4].hex(' ')})",
                         hint="layers must be tar, gzip or zstd")


class _Counting:
    """Counts the compressed bytes read, for the ratio check."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.count += len(data)
        return data

    def readable(self) -> bool:
        return True


@record
class _Budget:
    """What the whole image has used of its limits so far."""

    limits: Limits
    stream_bytes: int = 0
    file_bytes: int = 0
    entries: int = 0


_FHCRC, _FEXTRA, _FNAME, _FCOMMENT = 2, 4, 8, 16
_MAX_GZIP_HEADER = 1 << 20
_TRUNCATED = "Compressed file ended before the end-of-stream marker was reached"


def _gzip_header_size(buf: bytes) -> int | None:
    """The length of the gzip member header (RFC 1952) at the start of ``buf``, or None
    if ``buf`` holds only part of it. Raises zlib.error for what is not a gzip header."""
    if buf[:1] not in (b"", b"\x1f") or buf[1:2] not in (b"", b"\x8b"):
        raise zlib.error("incorrect header check")
    if len(buf) < 10:
        return None
    if buf[2] != 8:
        raise zlib.error("unknown compression method")
    flags = buf[3]
    if flags & 0xE0:
        raise zlib.error("unknown header flags set")
    pos = 10
    if flags & _FEXTRA:
        if len(buf) < pos + 2:
            return None
        pos += 2 + int.from_bytes(buf[pos:pos + 2], "little")
    for flag in (_FNAME, _FCOMMENT):
        if flags & flag:
            end = buf.find(b"\0", pos)
            if end < 0:
                return None
            pos = end + 1
    if flags & _FHCRC:
        pos += 2
    return pos if len(buf) >= pos else None


class _Gunzip:
    """The members of a gzip stream, one bounded chunk of output per :meth:`read`.

    Each member's header is parsed here and its body inflated raw: the CRC-32
    in the trailer is not computed (it costs as much as the inflate itself, and
    every layer's uncompressed bytes are checked against their diff_id, a
    sha256, before anything is kept); the trailer must still be there and its
    length must match. As ``gzip.GzipFile`` does, concatenated members are read
    and zero padding after a member is skipped.
    """

    def __init__(self, src: _Counting) -> None:
        self._src = src
        self._buf = b""  # input not given to an inflater: headers, trailers
        self._z: Any = None  # the raw inflater of the current member's body
        self._size = 0  # what it has put out
        self._first = True
        self._eof = False

    def _more(self) -> bool:
        data = self._src.read(_IN)
        if not data:
            return False
        self._buf = self._buf + data if self._buf else data
        return True

    def read(self, n: int) -> bytes:
        while not self._eof:
            z = self._z
            if z is None:  # at a member's header
                if not self._first:
                    self._buf = self._buf.lstrip(b"\0")
                    if not self._buf:
                        if not self._more():
                            self._eof = True
                        continue
                size = _gzip_header_size(self._buf)
                if size is None:
                    if len(self._buf) > _MAX_GZIP_HEADER:
                        raise zlib.error(f"gzip header longer than {_MAX_GZIP_HEADER} bytes")
                    if not self._more():
                        raise EOFError(_TRUNCATED)
                    continue
                self._z = z = _deflate.decompressobj(-zlib.MAX_WBITS)
                self._first, self._size = False, 0
                data, self._buf = z.decompress(self._buf[size:], n), b""
            elif z.eof:  # at its trailer: CRC-32 and length
                self._buf = z.unused_data
                while len(self._buf) < 8:
                    if not self._more():
                        raise EOFError(_TRUNCATED)
                if int.from_bytes(self._buf[4:8], "little") != self._size & 0xFFFFFFFF:
                    raise zlib.error("incorrect length check")
                self._buf, self._z = self._buf[8:], None
                continue
            elif z.unconsumed_tail:
                data = z.decompress(z.unconsumed_tail, n)
            else:
                chunk = self._src.read(_IN)
                if not chunk:
                    raise EOFError(_TRUNCATED)
                data = z.decompress(chunk, n)
            if data:
                self._size += len(data)
                return cast(bytes, data)
        return b""


class _ReadAhead:
    """Inflates and hashes ``src`` in a thread, up to a few chunks ahead of the reader:
    zlib, zstd and sha256 release the GIL, so the inflate overlaps the file writes of
    the unpack (which wait on the disk), on another core where there is one."""

    _DEPTH = 8

    def __init__(self, src: Any, hash_: Any) -> None:
        import queue
        import threading

        self._src = src
        self._hash = hash_
        self._queue: queue.Queue[bytes | BaseException] = queue.Queue(self._DEPTH)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._run, name="secpod-inflate", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import queue

        while not self._stop.is_set():
            try:
                data = self._src.read(_OUT)
                if data:
                    self._hash.update(data)
                item: bytes | BaseException = data
            except BaseException as e:  # noqa: BLE001 - raised again by the reader
                item = e
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if not isinstance(item, bytes) or not item:
                return

    def read(self, _n: int) -> bytes:
        if self._done:
            return b""
        item = self._queue.get()
        if isinstance(item, BaseException):
            self._done = True
            raise item
        if not item:
            self._done = True
        return item

    def close(self) -> None:
        """Stop the thread (an unpack that failed reads no further)."""
        self._stop.set()
        self._thread.join()


class LayerStream:
    """The uncompressed bytes of one layer blob, bounded and hashed while read
    (:meth:`close` when done)."""

    def __init__(self, raw: BinaryIO, what: str, budget: _Budget) -> None:
        head = raw.read(512)
        raw.seek(0)
        try:
            self.kind = sniff_compression(head)
        except MalformedInput as e:
            raise MalformedInput(f"{what}: {e.message}", hint=e.hint) from None
        self._what = what
        self._budget = budget
        self._counting = _Counting(raw)
        self._src: Any
        if self.kind == "gzip":
            self._src = _Gunzip(self._counting)
        elif self.kind == "zstd":
            self._src = zstandard.ZstdDecompressor().stream_reader(
                cast(Any, self._counting), read_across_frames=True, closefd=False)
        else:
            self._src = self._counting
        self._hash = hashlib.sha256()
        self._ahead = _ReadAhead(self._src, self._hash)
        self._buf = memoryview(b"")
        self._pos = 0
        self.out = 0
        self._eof = False

    def close(self) -> None:
        self._ahead.close()

    def _fill(self) -> None:
        try:
            data = self._ahead.read(_OUT)
        except _STREAM_ERRORS as e:
            raise MalformedInput(f"{self._what}: corrupt or truncated {self.kind} data ({e})",
                                 hint="the layer is incomplete or damaged; get a fresh copy") from e
        if not data:
            self._eof = True
            self._buf, self._pos = memoryview(b""), 0
            return
        self.out += len(data)
        b = self._budget
        b.stream_bytes += len(data)
        if b.stream_bytes > b.limits.max_bytes:
            raise HostileArchive(
                f"{self._what}: unpacked size exceeds {b.limits.max_bytes} bytes "
                "(SECPOD_MAX_UNPACK_BYTES)", hint=_HINT + "; raise the limit if you trust it")
        if (self.kind != "tar" and self.out > RATIO_FLOOR
                and self.out > b.limits.max_ratio * max(self._counting.count, 1)):
            raise HostileArchive(
                f"{self._what}: compression ratio above {b.limits.max_ratio}:1 "
                "(SECPOD_MAX_RATIO): a decompression bomb", hint=_HINT)
        self._buf, self._pos = memoryview(data), 0

    def view(self, n: int) -> memoryview:
        """Up to ``n`` next bytes, without a copy: valid until the next read; empty at the
        end."""
        while self._pos >= len(self._buf):
            if self._eof:
                return self._buf
            self._fill()
        chunk = self._buf[self._pos:self._pos + n]
        self._pos += len(chunk)
        return chunk

    def read(self, n: int) -> bytes:
        return self.view(n).tobytes()

    def drain(self) -> None:
        """Read to the end, so the whole stream is bounded, checked and hashed."""
        while self.view(_CHUNK):
            pass

    def diff_id(self) -> str:
        return "sha256:" + self._hash.hexdigest()


def check_diff_id(raw: BinaryIO, what: str, diff_id: str, limits: Limits) -> None:
    """Read the layer blob ``raw`` to its end, bounded as an unpack is, and raise
    DigestMismatch unless its uncompressed content is ``diff_id`` (a layer whose tree
    the store has already: nothing is written)."""
    stream = LayerStream(raw, what, _Budget(limits))
    try:
        stream.drain()
    finally:
        stream.close()
    if stream.diff_id() != diff_id:
        raise DigestMismatch(f"{what}: uncompressed content is {stream.diff_id()}, but the "
                             f"image config says {diff_id}", hint=_HINT)


def _kind_name(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISREG(mode):
        return "file"
    return "special file"


@record
class Report:
    """What the unpack neutralised or created: shown by ``secpod image inspect``."""

    layers: int = 0
    entries: int = 0
    bytes: int = 0
    whiteouts: int = 0
    devices_skipped: int = 0
    setuid_stripped: int = 0
    foreign_owners: int = 0
    foreign_uids: set[int] = field(default_factory=set)
    foreign_gids: set[int] = field(default_factory=set)
    owners_kept: bool = False
    xattrs_kept: int = 0
    xattrs_dropped: dict[str, int] = field(default_factory=dict)
    created_mountpoints: list[str] = field(default_factory=list)
    symlinked_mountpoints: dict[str, str] = field(default_factory=dict)
    conflicting_mountpoints: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "layers": self.layers, "entries": self.entries, "bytes": self.bytes,
            "whiteouts": self.whiteouts, "devices_skipped": self.devices_skipped,
            "setuid_stripped": self.setuid_stripped, "foreign_owners": self.foreign_owners,
            "foreign_uids": sorted(self.foreign_uids)[:64],
            "foreign_gids": sorted(self.foreign_gids)[:64],
            "owners_kept": self.owners_kept, "xattrs_kept": self.xattrs_kept,
            "xattrs_dropped": dict(self.xattrs_dropped),
            "created_mountpoints": list(self.created_mountpoints),
            "symlinked_mountpoints": dict(self.symlinked_mountpoints),
            "conflicting_mountpoints": dict(self.conflicting_mountpoints),
        }


class SafeTree:
    """A directory tree walked from its root one component at a time (never through a
    symlink): the base of the layer :class:`Unpacker` and of the image's link farm
    (secpod.images._farm). ``_dirs`` maps a directory (relative path) to the mode and
    mtime it gets at the end."""

    def __init__(self, root: Path) -> None:
        self._root_fd = os.open(root, _DIR_FLAGS)
        self._cache: tuple[tuple[str, ...], int] | None = None
        self._dirs: dict[str, tuple[int, float | None]] = {}
        self._what = ""

    def close(self) -> None:
        self._drop_cache()
        if self._root_fd >= 0:
            os.close(self._root_fd)
            self._root_fd = -1

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- paths ---------------------------------------------------------------

    def _hostile(self, message: str) -> HostileArchive:
        return HostileArchive(f"{self._what}: {message}", hint=_HINT)

    def _split(self, name: str, role: str = "entry") -> list[str]:
        if "\0" in name:
            raise MalformedInput(f"{self._what}: {role} {name!r} contains a NUL byte", hint=_HINT)
        if name.startswith("/"):
            raise self._hostile(f"{role} {name!r} has an absolute path (escapes the root)")
        parts = [p for p in name.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise self._hostile(f"{role} {name!r} contains '..' (escapes the root)")
        if len(name.encode("utf-8", "surrogateescape")) > MAX_PATH or any(
                len(p.encode("utf-8", "surrogateescape")) > MAX_NAME for p in parts):
            raise self._hostile(f"{role} {name[:80]!r}... path too long "
                                f"(limit {MAX_PATH} bytes, {MAX_NAME} per component)")
        return parts

    def _drop_cache(self) -> None:
        if self._cache is not None:
            os.close(self._cache[1])
            self._cache = None

    def _walk(self, parts: list[str], name: str, *, create: bool, role: str = "entry",
              ) -> int | None:
        """An owned fd of the directory ``parts`` (never through a symlink), or None when a
        component is missing and ``create`` is false."""
        fd = os.dup(self._root_fd)
        try:
            for i, comp in enumerate(parts):
                try:
                    nfd = os.open(comp, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        os.close(fd)
                        return None
                    os.mkdir(comp, 0o755, dir_fd=fd)
                    nfd = os.open(comp, _DIR_FLAGS, dir_fd=fd)
                except OSError as e:
                    if e.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    st = os.stat(comp, dir_fd=fd, follow_symlinks=False)
                    where = "/" + "/".join(parts[:i + 1])
                    if stat.S_ISLNK(st.st_mode):
                        raise self._hostile(f"{role} {name!r} goes through the symlink {where} "
                                            "(escapes the root)") from None
                    raise MalformedInput(f"{self._what}: {role} {name!r}: {where} is a "
                                         f"{_kind_name(st.st_mode)}, not a directory",
                                         hint=_HINT) from None
                os.close(fd)
                fd = nfd
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _parent(self, parts: list[str], name: str, *, create: bool) -> int | None:
        """Like :meth:`_walk` but borrowed: valid until the next call. Entries of one
        directory come together in a tar, so one cached fd saves most walks."""
        key = tuple(parts)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        fd = self._walk(parts, name, create=create)
        if fd is None:
            return None
        self._drop_cache()
        self._cache = (key, fd)
        return fd

    def _remove(self, fd: int, leaf: str, rel: str, *, keep_dir: bool = False) -> bool:
        """Remove ``leaf`` in ``fd`` if present; True if a directory is kept."""
        try:
            st = os.stat(leaf, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return True
            shutil.rmtree(leaf, dir_fd=fd)
            prefix = rel + "/"
            for d in [d for d in self._dirs if d == rel or d.startswith(prefix)]:
                del self._dirs[d]
        else:
            os.unlink(leaf, dir_fd=fd)
        return False

    def _link_to(self, parts: list[str], name: str, tparts: list[str], target: str) -> bool:
        """Hard-link ``parts`` to the existing ``tparts`` (never through a symlink); False
        when the target is missing. Raises MalformedInput for a directory target."""
        role = f"hardlink {name!r} -> target"
        tfd = self._walk(tparts[:-1], target, create=False, role=role)
        if tfd is None:
            return False
        try:
            try:
                tst = os.stat(tparts[-1], dir_fd=tfd, follow_symlinks=False)
            except FileNotFoundError:
                return False
            if stat.S_ISDIR(tst.st_mode):
                raise MalformedInput(f"{self._what}: hardlink {name!r} -> {target!r}: "
                                     "target is a directory", hint=_HINT)
            fd = self._parent(parts[:-1], name, create=True)
            assert fd is not None
            try:
                dst = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
                if os.path.samestat(dst, tst):
                    return True
            except FileNotFoundError:
                pass
            self._remove(fd, parts[-1], "/".join(parts))
            os.link(tparts[-1], parts[-1], src_dir_fd=tfd, dst_dir_fd=fd, follow_symlinks=False)
        finally:
            os.close(tfd)
        return True


class Unpacker(SafeTree):
    """Unpacks one layer into an empty directory, the layer's own tree; :meth:`finish`
    says what the image's link farm needs of it (secpod.images._farm).

    A layer is unpacked alone: its whiteouts, opaque directories and hardlinks to files
    of lower layers are recorded (``whiteouts``, ``opaque``, ``links``) for the farm to
    apply, never applied here; its directories keep mode 0700 in the tree and their
    own mode and mtime are recorded (``dirs``: the directories the layer lists; the
    ones made only as parents of entries are not in it, and keep a lower layer's).

    Raises HostileArchive for what the rules refuse, MalformedInput for a
    corrupt layer, DigestMismatch when a layer's content is not its diff_id.
    The caller removes the directory on any error. ``owners`` (how many uids and
    gids the caller's user namespace maps) keeps each entry's owner; see rule 3.
    ``budget`` is shared by the layers of one image.
    """

    def __init__(self, root: Path, limits: Limits, owners: tuple[int, int] | None = None,
                 budget: _Budget | None = None) -> None:
        super().__init__(root)
        self._budget = budget or _Budget(limits)
        self._owners = owners
        self.report = Report(owners_kept=owners is not None)
        self._whiteouts: list[str] = []
        self._opaque: list[str] = []
        self._links: list[tuple[str, str]] = []

    # --- the layer -----------------------------------------------------------

    def apply_layer(self, blob: Path | BinaryIO, *, what: str, diff_id: str | None) -> None:
        """Unpack the layer blob (tar, gzip or zstd), a file or a stream open at its start
        (read to its end, ``seek(0)`` once after the first 512 bytes). ``what`` names it
        in errors."""
        if isinstance(blob, Path):
            with open(blob, "rb") as raw:
                self.apply_layer(raw, what=what, diff_id=diff_id)
            return
        self._what = what
        self._drop_cache()
        stream = LayerStream(blob, what, self._budget)
        try:
            reader = TarReader(stream, what)
            for entry in reader:
                self._entry(entry, reader)
            stream.drain()
        finally:
            stream.close()
        self._drop_cache()
        self.report.layers += 1
        if diff_id is not None and stream.diff_id() != diff_id:
            raise DigestMismatch(
                f"{what}: uncompressed content is {stream.diff_id()}, but the image config "
                f"says {diff_id}", hint=_HINT)

    def _entry(self, e: Entry, reader: TarReader) -> None:
        b = self._budget
        b.entries += 1
        if b.entries > b.limits.max_entries:
            raise self._hostile(f"more than {b.limits.max_entries} entries (SECPOD_MAX_ENTRIES)")
        self.report.entries += 1
        parts = self._split(e.name)
        if not parts:
            return  # the root itself: its mode and owner are the store's
        leaf = parts[-1]
        if leaf.startswith(".wh."):
            self._whiteout(parts, e.name)
            return
        if self._owners is not None and (e.uid >= self._owners[0]
                                         or e.gid >= self._owners[1]):
            raise HostError(
                f"{what_entry(self._what, e.name)} is owned by {e.uid}:{e.gid}, beyond the "
                f"ids your user namespace maps (uids 0-{self._owners[0] - 1}, gids "
                f"0-{self._owners[1] - 1}): potentially insufficient UIDs or GIDs available "
                "in user namespace; nothing was imported",
                hint="ask the administrator for larger ranges in /etc/subuid and /etc/subgid "
                     "(usermod --add-subuids/--add-subgids), then import again")
        if e.uid != 0 or e.gid != 0:
            self.report.foreign_owners += 1
            if e.uid:
                self.report.foreign_uids.add(e.uid)
            if e.gid:
                self.report.foreign_gids.add(e.gid)
        mode = e.mode & 0o7777
        if mode & 0o6000 and e.kind in (FILE, DIR):
            mode &= ~0o6000
            self.report.setuid_stripped += 1
        rel = "/".join(parts)
        if e.kind == HARDLINK:
            self._hardlink(parts, e)
            return
        fd = self._parent(parts[:-1], e.name, create=True)
        assert fd is not None
        if e.kind == FILE:
            self._file(fd, leaf, rel, e, mode, reader)
        elif e.kind == DIR:
            if not self._remove(fd, leaf, rel, keep_dir=True):
                os.mkdir(leaf, 0o700, dir_fd=fd)
            if self._owners is not None:
                os.chown(leaf, e.uid, e.gid, dir_fd=fd, follow_symlinks=False)
            if e.xattrs:
                self._xattrs(f"{leaf}", fd, e)
            self._dirs[rel] = (mode, e.mtime)
        elif e.kind == SYMLINK:
            target = e.linkname
            if not target or "\0" in target or len(target.encode("utf-8", "surrogateescape")) \
                    > MAX_PATH:
                raise MalformedInput(f"{what_entry(self._what, e.name)}: bad symlink target",
                                     hint=_HINT)
            self._remove(fd, leaf, rel)
            os.symlink(target, leaf, dir_fd=fd)
            if self._owners is not None:
                os.chown(leaf, e.uid, e.gid, dir_fd=fd, follow_symlinks=False)
            ns = int(e.mtime * 1e9)
            os.utime(leaf, ns=(ns, ns), dir_fd=fd, follow_symlinks=False)
        elif e.kind in (CHAR, BLOCKDEV):
            self._remove(fd, leaf, rel)
            self.report.devices_skipped += 1
        elif e.kind == FIFO:
            self._remove(fd, leaf, rel)
            os.mkfifo(leaf, 0o600, dir_fd=fd)
            if self._owners is not None:
                os.chown(leaf, e.uid, e.gid, dir_fd=fd, follow_symlinks=False)
            os.chmod(leaf, mode & 0o1777, dir_fd=fd)
        else:  # pragma: no cover - TarReader yields only the kinds above
            raise AssertionError(e.kind)

    def _file(self, fd: int, leaf: str, rel: str, e: Entry, mode: int, reader: TarReader) -> None:
        b = self._budget
        if e.size > b.limits.max_file_bytes:
            raise self._hostile(f"entry {e.name!r} is {e.size} bytes, above the single-file "
                                f"limit {b.limits.max_file_bytes} (SECPOD_MAX_FILE_BYTES)")
        if b.file_bytes + e.size > b.limits.max_bytes:
            raise self._hostile(f"entry {e.name!r} would take the unpacked size above "
                                f"{b.limits.max_bytes} bytes (SECPOD_MAX_UNPACK_BYTES)")
        self._remove(fd, leaf, rel)
        ffd = os.open(leaf, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                      0o600, dir_fd=fd)
        try:
            while view := reader.view(_CHUNK):
                while view:
                    view = view[os.write(ffd, view):]
            if self._owners is not None:
                os.fchown(ffd, e.uid, e.gid)  # before the mode and capabilities it clears
            os.fchmod(ffd, mode)
            if e.xattrs:
                self._xattrs(ffd, None, e)
            ns = int(e.mtime * 1e9)
            os.utime(ffd, ns=(ns, ns))
        finally:
            os.close(ffd)
        b.file_bytes += e.size
        self.report.bytes += e.size

    def _xattrs(self, target: int | str, dir_fd: int | None, e: Entry) -> None:
        """Set the extended attributes rule 2 keeps on ``target`` (an fd, or a name in
        ``dir_fd`` that is not a symlink); count the others as dropped."""
        r = self.report
        for name, value in sorted(e.xattrs.items()):
            if not (name.startswith("user.") or name == "security.capability"):
                kind = name if name.startswith("security.") else name.split(".")[0] + ".*"
                r.xattrs_dropped[kind] = r.xattrs_dropped.get(kind, 0) + 1
                continue
            try:
                if dir_fd is None:
                    os.setxattr(target, name, value)
                else:
                    # A directory: opened, never followed (it was just made by us).
                    dfd = os.open(str(target), _DIR_FLAGS, dir_fd=dir_fd)
                    try:
                        os.setxattr(dfd, name, value)
                    finally:
                        os.close(dfd)
            except OSError as err:
                if err.errno in (errno.EPERM, errno.ENOTSUP, errno.EINVAL):
                    why = f"{name} ({errno.errorcode.get(err.errno, err.errno)})"
                    r.xattrs_dropped[why] = r.xattrs_dropped.get(why, 0) + 1
                    continue
                raise
            r.xattrs_kept += 1

    def _hardlink(self, parts: list[str], e: Entry) -> None:
        tparts = self._split(e.linkname, role=f"hardlink {e.name!r} -> target")
        if not tparts:
            raise MalformedInput(f"{self._what}: hardlink {e.name!r} points at the root",
                                 hint=_HINT)
        if self._link_to(parts, e.name, tparts, e.linkname):
            return
        # A file of a lower layer: the farm links it, where that layer put it.
        fd = self._parent(parts[:-1], e.name, create=True)
        assert fd is not None
        rel = "/".join(parts)
        self._remove(fd, parts[-1], rel)
        self._links.append((rel, "/".join(tparts)))

    def _whiteout(self, parts: list[str], name: str) -> None:
        leaf = parts[-1]
        self.report.whiteouts += 1
        if leaf == ".wh..wh..opq":
            self._opaque.append("/".join(parts[:-1]))
            return
        if leaf.startswith(".wh..wh."):
            return  # aufs bookkeeping (.wh..wh.plnk, ...), not content
        target = leaf[len(".wh."):]
        if target in ("", ".", ".."):
            raise self._hostile(f"whiteout {name!r} names {target!r}")
        self._whiteouts.append("/".join([*parts[:-1], target]))

    # --- sealing ---------------------------------------------------------------

    def finish(self) -> dict[str, Any]:
        """What the farm needs of this layer (JSON-ready): ``report`` (what the unpack
        neutralised), ``dirs`` (relative path -> [mode, mtime]), ``whiteouts`` and
        ``opaque`` (relative paths), ``links`` ([name, target] of files of lower layers)."""
        self._drop_cache()
        return {"report": self.report.as_dict(),
                "dirs": {rel: [mode, mtime] for rel, (mode, mtime) in sorted(self._dirs.items())},
                "whiteouts": list(self._whiteouts), "opaque": list(self._opaque),
                "links": [list(x) for x in self._links]}



def what_entry(what: str, name: str) -> str:
    return f"{what}: entry {name!r}"


def force_rmtree(path: Path) -> None:
    """Remove a tree whose directories may lack owner write or search permission, and
    whose files may belong to the user's subordinate ids (then removed in the
    containers' user namespace). Raises HostError if anything remains."""
    try:
        _own_rmtree(path)
    except OSError:
        from secpod.sandbox.userns import remove_tree

        remove_tree(path)


def _own_rmtree(path: Path) -> None:
    if not os.path.lexists(path):
        return
    if path.is_symlink() or not path.is_dir():
        path.unlink()
        return

    def fix(func: Any, p: str, exc: Any) -> None:
        parent = os.path.dirname(p)
        for d in (parent, p):
            try:
                if stat.S_ISDIR(os.lstat(d).st_mode):
                    os.chmod(d, 0o700)
            except OSError:
                pass
        func(p)

    os.chmod(path, 0o700)
    for dirpath, dirnames, _ in os.walk(path):
        for d in dirnames:
            full = os.path.join(dirpath, d)
            if stat.S_ISDIR(os.lstat(full).st_mode):
                os.chmod(full, 0o700)
    shutil.rmtree(path, onerror=fix)
