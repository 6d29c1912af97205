"""The per-user OCI image store: import, content-addressed blobs, safe unpack.

``Store.open()`` is the invoking user's store under ``$XDG_DATA_HOME/secpod/images``.
Images come in from an OCI layout folder, an oci-archive, a docker-archive
(``import_path``) or any other :class:`BlobSource` (``add_image``, which the
registry pull shares); every blob is checked against its digest and size, and
the layers are unpacked once, safely, into a root filesystem that every
container of the image shares read-only. docs/images.md has the rules.
"""

from __future__ import annotations

from secpod._lazy import reexports
from secpod.images._store import ImageRecord, Store, content_before_run, human_size

# Lazy: the sources and the unpacker pull in tarfile, gzip and zstandard, which
# `secpod run` (Store.resolve) never needs.
_LAZY = {"BlobSource": "_sources", "Limits": "_unpack"}

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from secpod.images._sources import BlobSource
    from secpod.images._unpack import Limits


__getattr__ = reexports(__name__, {n: f"secpod.images.{m}" for n, m in _LAZY.items()})
__all__ = ["BlobSource", "ImageRecord", "Limits", "Store", "content_before_run", "human_size"]
