"""Build the suite's test images with secpod's own code (no network, no docker)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from secpod.images.build import busybox_rootfs, write_layout


def busybox_layout(dest: Path, *, tag: str = "latest", **config: object) -> str:
    """Write an OCI layout of a busybox-static image to ``dest``; return the manifest digest."""
    with tempfile.TemporaryDirectory() as tmp:
        root = busybox_rootfs(Path(tmp) / "rootfs")
        return write_layout(root, dest, tag=tag, **config)  # type: ignore[arg-type]
