"""The streaming layer-tar reader, and that the committed corpus is what its script makes."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from secpod.errors import HostileArchive, MalformedInput
from secpod.images._tar import DIR, FILE, HARDLINK, SYMLINK, TarReader
from secpod.images._unpack import sniff_compression

CORPUS = Path(__file__).resolve().parents[1] / "assets" / "images"


def make(fmt: int, members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for info, data in members:
            t.addfile(info, io.BytesIO(data) if data else None)
    return buf.getvalue()


def info(name: str, kind: bytes = tarfile.REGTYPE, size: int = 0, link: str = "",
         uid: int = 0) -> tarfile.TarInfo:
    i = tarfile.TarInfo(name)
    i.type, i.size, i.linkname, i.uid = kind, size, link, uid
    return i


def read_all(data: bytes) -> list[tuple[str, str, bytes, str, int]]:
    r = TarReader(io.BytesIO(data), "t")
    out = []
    for e in r:
        body = b""
        while chunk := r.read(7):
            body += chunk
        out.append((e.kind, e.name, body, e.linkname, e.uid))
    return out


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])
def test_formats_and_long_names(fmt: int) -> None:
    long = "d/" + "x" * 90 + "/" + "y" * 90 + "/file"
    members = [(info("d", tarfile.DIRTYPE), b""), (info(long, size=5), b"hello"),
               (info("s", tarfile.SYMTYPE, link="d/" + "t" * 120), b""),
               (info("h", tarfile.LNKTYPE, link=long), b"")]
    got = read_all(make(fmt, members))
    assert got[0][:2] == (DIR, "d")
    assert got[1] == (FILE, long, b"hello", "", 0)
    assert got[2][0] == SYMLINK and got[2][3] == "d/" + "t" * 120
    assert got[3][0] == HARDLINK and got[3][3] == long


def test_pax_large_uid() -> None:
    got = read_all(make(tarfile.PAX_FORMAT, [(info("f", size=1, uid=10_000_000), b"x")]))
    assert got == [(FILE, "f", b"x", "", 10_000_000)]


def test_oversized_pax_header_refused() -> None:
    header = tarfile.TarInfo("././@PaxHeader")
    header.type, header.size = tarfile.XHDTYPE, 64 << 20
    data = header.tobuf(tarfile.USTAR_FORMAT) + bytes(1024)
    with pytest.raises(HostileArchive) as e:
        read_all(data)
    assert e.value.message == "t: extended header of 67108864 bytes (limit 1048576)"


def test_sparse_refused() -> None:
    data = make(tarfile.PAX_FORMAT, [(info("f", size=1), b"x")])
    data = data[:156] + tarfile.GNUTYPE_SPARSE + data[157:]
    # fix the checksum so the header itself is valid
    block = bytearray(data[:512])
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    with pytest.raises(MalformedInput) as e:
        read_all(bytes(block) + data[512:])
    assert "sparse" in e.value.message


def test_missing_end_marker_is_truncation() -> None:
    data = make(tarfile.PAX_FORMAT, [(info("f", size=3), b"abc")])
    with pytest.raises(MalformedInput) as e:
        read_all(data[:1024])
    assert e.value.message == "t: truncated tar (no end-of-archive marker)"


def test_bad_checksum() -> None:
    data = bytearray(make(tarfile.PAX_FORMAT, [(info("f", size=3), b"abc")]))
    data[0] ^= 1
    with pytest.raises(MalformedInput) as e:
        read_all(bytes(data))
    assert e.value.message == "t: corrupt tar header (bad checksum)"


def test_sniff() -> None:
    assert sniff_compression(b"\x1f\x8b\x08\0") == "gzip"
    assert sniff_compression(b"\x28\xb5\x2f\xfd") == "zstd"
    assert sniff_compression(bytes(512)) == "tar"
    with pytest.raises(MalformedInput) as e:
        sniff_compression(b"BZh91AY&SY")
    assert e.value.message == "bzip2-compressed layers are not supported"


def test_corpus_is_what_the_script_makes(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(CORPUS / "make_corpus.py"), str(tmp_path)], check=True)
    made = sorted(p.name for p in tmp_path.iterdir())
    committed = sorted(p.name for p in CORPUS.glob("*.tar"))
    assert made == committed
    for name in made:
        assert (tmp_path / name).read_bytes() == (CORPUS / name).read_bytes(), name


def _gunzip_all(blob: bytes) -> tuple[bytes, str]:
    from secpod.images._unpack import LayerStream, Limits, _Budget

    stream = LayerStream(io.BytesIO(blob), "t", _Budget(Limits()))
    out = b""
    while chunk := stream.read(100_000):
        out += chunk
    return out, stream.diff_id()


@pytest.fixture(params=["isal", "zlib"])
def inflater(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each gzip test with ISA-L's inflate (the default where the `isal` wheel is
    installed, as in the test venv) and with zlib's (the fallback without it)."""
    import zlib

    from secpod.images import _unpack

    if request.param == "isal":
        from isal import isal_zlib

        monkeypatch.setattr(_unpack, "_deflate", isal_zlib)
    else:
        monkeypatch.setattr(_unpack, "_deflate", zlib)
    return str(request.param)


def test_the_unpacker_inflates_with_isal() -> None:
    """The test venv (and a pip install) has the `isal` wheel: its inflate is used."""
    from secpod.images import _unpack

    assert _unpack._deflate.__name__ == "isal.isal_zlib"


def test_gzip_members_padding_and_large_output(inflater: str) -> None:
    """Concatenated members and zero padding after a member read as GzipFile reads them,
    and output larger than one step (compressible and not) comes out whole."""
    import gzip
    import hashlib
    import os

    one, two = bytes(600_000), os.urandom(700_000)
    blob = gzip.compress(one) + bytes(1000) + gzip.compress(two, compresslevel=1) + bytes(7)
    out, diff_id = _gunzip_all(blob)
    assert out == one + two == gzip.GzipFile(fileobj=io.BytesIO(blob)).read()
    assert diff_id == "sha256:" + hashlib.sha256(one + two).hexdigest()


def test_gzip_optional_header_fields(inflater: str) -> None:
    """A member with every optional header field (extra, name, comment, header CRC)."""
    import struct
    import zlib

    body = b"layer bytes " * 1000
    deflate = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    raw = deflate.compress(body) + deflate.flush()
    extra = b"AB" + struct.pack("<H", 3) + b"xyz"
    header = (b"\x1f\x8b\x08" + bytes([4 | 8 | 16 | 2]) + bytes(6)
              + struct.pack("<H", len(extra)) + extra + b"name.tar\0" + b"a comment\0")
    header += struct.pack("<H", zlib.crc32(header) & 0xFFFF)
    blob = header + raw + struct.pack("<II", zlib.crc32(body), len(body))
    assert gzip_read(blob) == body
    assert _gunzip_all(blob)[0] == body


def gzip_read(blob: bytes) -> bytes:
    import gzip

    return gzip.GzipFile(fileobj=io.BytesIO(blob)).read()


@pytest.mark.parametrize("damage", ["truncated", "no-trailer", "garbage-after", "bad-length",
                                    "reserved-flag", "not-deflate", "bad-block"])
def test_gzip_damage(damage: str, inflater: str) -> None:
    import gzip

    blob = bytearray(gzip.compress(b"layer bytes " * 10_000))
    if damage == "truncated":
        blob = blob[:len(blob) // 2]
    elif damage == "no-trailer":
        blob = blob[:-3]
    elif damage == "garbage-after":
        blob += b"not gzip"
    elif damage == "bad-length":
        blob[-1] ^= 0xFF
    elif damage == "reserved-flag":
        blob[3] |= 0x80
    elif damage == "bad-block":
        blob[10] |= 0x06  # the first deflate block's type: 3, reserved
    else:
        blob[2] = 7
    with pytest.raises(MalformedInput) as e:
        _gunzip_all(bytes(blob))
    assert e.value.message.startswith("t: corrupt or truncated gzip data (")
    if damage in ("truncated", "no-trailer"):
        assert "Compressed file ended before the end-of-stream marker was reached" in \
            e.value.message


def test_gzip_crc_is_left_to_the_diff_id(inflater: str) -> None:
    """The trailer's CRC-32 is not computed: the diff_id (sha256) of what was inflated is
    what the unpacker checks (tests/unit/test_images_unpack.py: wrong-diff-id)."""
    import gzip
    import hashlib

    body = b"layer bytes " * 10_000
    blob = bytearray(gzip.compress(body))
    blob[-6] ^= 0xFF
    assert _gunzip_all(bytes(blob)) == (body, "sha256:" + hashlib.sha256(body).hexdigest())
