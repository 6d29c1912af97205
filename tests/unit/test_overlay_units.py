"""Pure pieces of the overlay root (docs/adr/0006-overlay-root.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from secpod.errors import MalformedInput
from secpod.sandbox import rootfs as rootfsmod

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "secpod" / "network"))
import _holder  # noqa: E402


def test_overlay_option_paths_are_escaped() -> None:
    assert _holder._escaped(b"/a,b:c\\d") == b"/a\\,b\\:c\\\\d"
    assert _holder._escaped(b"/plain/path") == b"/plain/path"


def test_mount_point_checks_create_nothing_without_create(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    rootfsmod.ensure_mountpoint(tmp_path, "/new/deep", directory=True, create=False)
    assert not (tmp_path / "new").exists()
    with pytest.raises(MalformedInput, match="not a directory"):
        rootfsmod.ensure_mountpoint(tmp_path, "/etc/passwd/x", directory=True, create=False)
    with pytest.raises(MalformedInput, match="it is a file"):
        rootfsmod.ensure_mountpoint(tmp_path, "/etc/passwd", directory=True, create=False)
