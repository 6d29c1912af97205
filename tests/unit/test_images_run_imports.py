"""Resolving an image (what `secpod run` does) loads no archive or unpack machinery."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CHECK = """
import json, sys
from secpod import errors, images
try:
    images.Store.open().resolve("busybox")
except errors.NotFound:
    pass
print(json.dumps(sorted(sys.modules)))
"""


def test_resolve_does_not_load_the_unpacker(tmp_path: Path) -> None:
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path / "data"))
    out = subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True, text=True,
                         check=True)
    loaded = set(json.loads(out.stdout))
    assert not loaded & {"secpod.images._unpack", "secpod.images._sources", "secpod.images._tar",
                         "tarfile", "gzip", "zstandard"}
    # and the lazy names still resolve
    from secpod.images import BlobSource, Limits

    assert Limits.from_env() is not None and BlobSource.__name__ == "BlobSource"
