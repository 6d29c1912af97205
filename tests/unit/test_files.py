"""secpod._files.write_atomic: the whole file or nothing, and a clear error."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from secpod._files import write_atomic
from secpod.errors import Error


def test_writes_with_the_mode_asked_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "profile"
    target.write_text("old\n")
    write_atomic(target, "new\n", mode=0o644)
    assert target.read_text() == "new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["profile"]


def test_a_folder_that_is_not_there_is_an_error_with_a_hint(tmp_path: Path) -> None:
    target = tmp_path / "missing" / "pod.json"
    with pytest.raises(Error) as e:
        write_atomic(target, "{}\n")
    assert e.value.message.startswith(f"cannot write {target}")
    assert e.value.hint
    assert not target.parent.exists()


def test_a_failed_rename_removes_the_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()  # a file cannot be renamed over a folder
    (target / "x").write_text("")
    with pytest.raises(Error):
        write_atomic(target, "data\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_bytes_durable_and_the_umask(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    old = os.umask(0o077)
    try:
        write_atomic(target, b"\x00data", durable=True)
    finally:
        os.umask(old)
    assert target.read_bytes() == b"\x00data"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600  # 0o666 less the umask


def test_read_limited_reads_a_regular_file_and_refuses_the_rest(tmp_path: Path) -> None:
    import errno

    from secpod._files import NotRegularFile, TooLarge, read_limited

    f = tmp_path / "config.json"
    f.write_bytes(b"x" * 10)
    assert read_limited(f, 10) == b"x" * 10
    with pytest.raises(OSError) as big:
        read_limited(f, 9)
    assert big.value.errno == errno.EFBIG and isinstance(big.value, TooLarge)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(OSError) as e:  # would block forever if opened and read
        read_limited(fifo, 10)
    assert e.value.errno == errno.EINVAL and isinstance(e.value, NotRegularFile)
    link = tmp_path / "link"
    link.symlink_to(f)
    assert read_limited(link, 10) == b"x" * 10
    with pytest.raises(OSError) as loop:
        read_limited(link, 10, nofollow=True)
    assert loop.value.errno == errno.ELOOP
    with pytest.raises(OSError):
        read_limited(Path("/dev/zero"), 10)
    with pytest.raises(FileNotFoundError):
        read_limited(tmp_path / "missing", 10)
