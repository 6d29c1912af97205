"""A streaming reader of layer tars that never trusts a header.

``tarfile`` parses one 512-byte header well (``TarInfo.frombuf`` checks the
checksum and the number fields), but its stream mode reads extended headers
of any announced size into memory. This reader parses the extended headers
itself (pax ``x``/``g``, GNU ``L``/``K``) with a size bound, refuses sparse and
multi-volume entries, and requires the end-of-archive marker so that a
truncated layer is an error and not a silently shorter image.
"""

from __future__ import annotations

import tarfile
from collections.abc import Callable, Iterator
from typing import Protocol

from secpod._record import field, record
from secpod.errors import HostileArchive, MalformedInput

BLOCK = 512
MAX_META_BYTES = 1 << 20  # one pax or GNU long-name header
_XATTR = "SCHILY.xattr."

FILE, DIR, SYMLINK, HARDLINK, CHAR, BLOCKDEV, FIFO = (
    "file", "dir", "symlink", "hardlink", "char", "block", "fifo")
_TYPES = {
    tarfile.REGTYPE: FILE, tarfile.AREGTYPE: FILE, tarfile.CONTTYPE: FILE,
    tarfile.DIRTYPE: DIR, tarfile.SYMTYPE: SYMLINK, tarfile.LNKTYPE: HARDLINK,
    tarfile.CHRTYPE: CHAR, tarfile.BLKTYPE: BLOCKDEV, tarfile.FIFOTYPE: FIFO,
}


class _Header:
    """The fields of one plain header that the reader uses (as ``tarfile.TarInfo`` has them)."""

    __slots__ = ("gid", "linkname", "mode", "mtime", "name", "size", "type", "uid")

    name: str
    linkname: str
    type: bytes
    mode: int
    uid: int
    gid: int
    size: int
    mtime: int


_MAGICS = (b"ustar\x0000", b"ustar  \x00")


def _octal(field: bytes) -> int | None:
    digits = field.split(b"\0", 1)[0].strip()
    if not digits:
        return 0
    if digits.strip(b"01234567"):
        return None
    return int(digits, 8)


def _header(block: bytes) -> _Header | tarfile.TarInfo:
    """``block`` parsed: the common case (ustar or GNU magic, octal numbers, an unsigned
    checksum that matches, no ustar prefix) here, in a fifth of the time; anything else
    by ``TarInfo.frombuf``, which also raises tarfile.HeaderError for what is corrupt."""
    if block[257:265] in _MAGICS and block[345:500] == bytes(155):
        nums = [_octal(block[a:b]) for a, b in ((100, 108), (108, 116), (116, 124),
                                                (124, 136), (136, 148), (148, 156))]
        if None not in nums and nums[5] == 256 + sum(block[:148]) + sum(block[156:512]):
            h = _Header()
            h.mode, h.uid, h.gid, h.size, h.mtime = nums[:5]  # type: ignore[assignment]
            h.type = block[156:157] or tarfile.REGTYPE
            h.name = block[:100].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            h.linkname = block[157:257].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            if h.type == tarfile.AREGTYPE and h.name.endswith("/"):
                h.type = tarfile.DIRTYPE
            if h.type == tarfile.DIRTYPE:
                h.name = h.name.rstrip("/")
            return h
    return tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")


class Readable(Protocol):
    def read(self, n: int, /) -> bytes: ...


@record
class Entry:
    """One member of a layer: its name as written, never yet trusted."""

    name: str
    kind: str
    mode: int
    uid: int
    gid: int
    size: int
    mtime: float
    linkname: str
    # Extended attributes from pax ``SCHILY.xattr.NAME`` records (as GNU tar, Go's
    # archive/tar and Podman write them), values as raw bytes.
    xattrs: dict[str, bytes] = field(default_factory=dict)


class TarReader:
    """Iterate over the entries of a tar stream; read each file's data in turn.

    Raises MalformedInput for a corrupt or truncated tar and HostileArchive for
    an oversized extended header. ``what`` names the stream in messages.
    """

    def __init__(self, stream: Readable, what: str) -> None:
        self._stream = stream
        # A stream with ``view(n)`` (a memoryview valid until its next read) hands file
        # data over without a copy.
        self._view: Callable[[int], memoryview] = getattr(
            stream, "view", lambda n: memoryview(stream.read(n)))
        self._what = what
        self._remaining = 0  # data bytes of the current entry not read yet
        self._padding = 0
        self._global: dict[str, str] = {}

    def _exact(self, n: int, during: str) -> bytes:
        chunks = []
        while n > 0:
            chunk = self._stream.read(min(n, 1 << 20))
            if not chunk:
                raise MalformedInput(f"{self._what}: truncated tar ({during})",
                                     hint="the layer is incomplete; get a fresh copy of the image")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes of the current entry's data; b"" at its end."""
        return self.view(n).tobytes()

    def view(self, n: int) -> memoryview:
        """Like :meth:`read`, but a view valid only until the next read (no copy)."""
        n = min(n, self._remaining)
        if n <= 0:
            return memoryview(b"")
        chunk = self._view(n)
        if not chunk:
            raise MalformedInput(f"{self._what}: truncated tar (inside a file's data)",
                                 hint="the layer is incomplete; get a fresh copy of the image")
        self._remaining -= len(chunk)
        return chunk

    def _skip_rest(self) -> None:
        while self._remaining > 0:
            self.view(1 << 20)
        if self._padding:
            self._exact(self._padding, "padding")
            self._padding = 0

    def _meta(self, info: _Header | tarfile.TarInfo) -> bytes:
        if info.size > MAX_META_BYTES:
            raise HostileArchive(
                f"{self._what}: extended header of {info.size} bytes (limit {MAX_META_BYTES})",
                hint="the layer is hostile or corrupt: do not use this image")
        data = self._exact(info.size, "extended header")
        pad = -info.size % BLOCK
        if pad:
            self._exact(pad, "padding")
        return data

    def _pax(self, data: bytes) -> dict[str, str]:
        records: dict[str, str] = {}
        pos = 0
        while pos < len(data):
            if data[pos:].strip(b"\0") == b"":
                break
            space = data.find(b" ", pos)
            try:
                length = int(data[pos:space])
            except ValueError:
                length = 0
            end = pos + length
            if space < 0 or length <= 0 or end > len(data) or data[end - 1:end] != b"\n":
                raise MalformedInput(f"{self._what}: malformed pax header")
            key, eq, value = data[space + 1:end - 1].partition(b"=")
            if not eq:
                raise MalformedInput(f"{self._what}: malformed pax record")
            records[key.decode("utf-8", "surrogateescape")] = value.decode(
                "utf-8", "surrogateescape")
            pos = end
        return records

    def __iter__(self) -> Iterator[Entry]:
        pax: dict[str, str] = {}
        long_name: str | None = None
        long_link: str | None = None
        while True:
            self._skip_rest()
            block = self._stream.read(BLOCK)
            if len(block) < BLOCK:
                block += self._exact(BLOCK - len(block), "header") if block else b""
            if not block:
                raise MalformedInput(f"{self._what}: truncated tar (no end-of-archive marker)",
                                     hint="the layer is incomplete; get a fresh copy of the image")
            if block == bytes(BLOCK):
                # End of archive. The second zero block may be missing (a lone
                # zero block at the end is common); what follows is padding.
                return
            try:
                info = _header(block)
            except tarfile.HeaderError as e:
                raise MalformedInput(f"{self._what}: corrupt tar header ({e})",
                                     hint="the layer is not a valid tar archive") from e
            t = info.type
            if t == tarfile.XHDTYPE:
                pax.update(self._pax(self._meta(info)))
                continue
            if t == tarfile.XGLTYPE:
                self._global.update(self._pax(self._meta(info)))
                continue
            if t == tarfile.GNUTYPE_LONGNAME:
                long_name = self._meta(info).split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
                continue
            if t == tarfile.GNUTYPE_LONGLINK:
                long_link = self._meta(info).split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
                continue
            fields = {**self._global, **pax}
            if t in (tarfile.GNUTYPE_SPARSE, b"M") or any(k.startswith("GNU.sparse.")
                                                           for k in fields):
                raise MalformedInput(f"{self._what}: sparse or multi-volume entry {info.name!r}",
                                     hint="layers with sparse files are not supported")
            kind = _TYPES.get(t)
            if kind is None:
                raise MalformedInput(f"{self._what}: entry {info.name!r} has unsupported type "
                                     f"{t!r}")
            name = fields.get("path", long_name if long_name is not None else info.name)
            link = fields.get("linkpath", long_link if long_link is not None else info.linkname)
            try:
                size = int(fields["size"]) if "size" in fields else info.size
                uid = int(fields["uid"]) if "uid" in fields else info.uid
                gid = int(fields["gid"]) if "gid" in fields else info.gid
                mtime = float(fields["mtime"]) if "mtime" in fields else float(info.mtime)
            except ValueError as e:
                raise MalformedInput(f"{self._what}: bad number in pax header of {name!r}") from e
            if size < 0:
                raise MalformedInput(f"{self._what}: negative size for {name!r}")
            pax, long_name, long_link = {}, None, None
            # Only regular files carry data (as tarfile and GNU tar read it).
            data_size = size if kind == FILE else 0
            self._remaining = data_size
            self._padding = -data_size % BLOCK
            xattrs = {k[len(_XATTR):]: v.encode("utf-8", "surrogateescape")
                      for k, v in fields.items() if k.startswith(_XATTR)} if fields else {}
            yield Entry(name=name, kind=kind, mode=info.mode, uid=uid, gid=gid,
                        size=size if kind == FILE else 0, mtime=mtime, linkname=link,
                        xattrs=xattrs)
