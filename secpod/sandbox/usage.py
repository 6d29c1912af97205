"""Disk use and pruning: ``system df``, ``ps -s``, ``container prune``, ``image prune``,
``system prune``.

A container's own size is its folder (the private copy of the root filesystem when
the profile makes root writable, its log, its bundle); its image's unpacked tree is
shared and counted once, under the image, and a blob several images list counts once
(secpod.images.sharing). Pruning removes only what nothing uses:
stopped containers (created or exited; never a running one), and images no container
was made from. Each removal goes through the same code as ``rm`` and ``image rm``, so
each is audited as they are.
"""

from __future__ import annotations

import os

from secpod._record import record
from secpod.errors import Conflict, Error

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

#: The container states a prune removes (Docker's "stopped": never started or exited).
STOPPED = ("created", "exited")


def tree_size(path: Path) -> int:
    """Bytes the files under ``path`` take (hard links once; symlinks not followed)."""
    total = 0
    seen: set[tuple[int, int]] = set()
    for top, _dirs, files in os.walk(path, onerror=lambda _e: None):
        for name in files:
            try:
                st = os.lstat(os.path.join(top, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def container_size(cid: str) -> int:
    from secpod.sandbox.state import containers_dir

    return tree_size(containers_dir() / cid)


@record(frozen=True, eq=False)
class Usage:
    """One row of ``system df``."""

    type: str            # "Images", "Containers", "Local Volumes"
    total: int
    active: int
    size: int            # bytes
    reclaimable: int     # bytes a prune would free
    saved: int = 0       # bytes sharing saves (images: blobs and layers several images have)

    def as_dict(self) -> dict[str, Any]:
        from secpod.images import human_size

        return {"Type": self.type, "TotalCount": self.total, "Active": self.active,
                "Size": human_size(self.size), "RawSize": self.size,
                "Reclaimable": human_size(self.reclaimable),
                "RawReclaimable": self.reclaimable,
                "Saved": human_size(self.saved), "RawSaved": self.saved}


@record(frozen=True, eq=False)
class ImageUsage:
    """One image of ``system df -v``."""

    image: Any           # ImageRecord
    shared: int          # bytes of its blobs another image also lists
    unique: int          # the rest
    containers: int      # containers made from it


def disk_usage() -> list[Usage]:
    """Images and containers: how many, how many in use, their size and what a prune
    (``system prune -a``) would free; and named volumes (``volume prune`` frees those
    no container uses). A blob several images list counts once (secpod.images.sharing)."""
    from secpod.images import Store
    from secpod.images.sharing import freed_by_removing, sharing
    from secpod.sandbox import operations

    rows = operations.listing(True)
    used = {r["image_digest"] for r in rows}
    images = Store.open().list()
    shares = sharing(images)
    free_images = freed_by_removing(images, [i.digest for i in images if i.digest not in used])
    sizes = {r["id"]: container_size(r["id"]) for r in rows}
    running = [r for r in rows if r["status"] not in STOPPED]
    return [
        Usage("Images", len(images), sum(1 for i in images if i.digest in used),
              shares.stored, free_images, shares.saved),
        Usage("Containers", len(rows), len(running), sum(sizes.values()),
              sum(sizes[r["id"]] for r in rows if r["status"] in STOPPED)),
        _volume_usage(),
    ]


def image_usage() -> tuple[list[ImageUsage], Any]:
    """``system df -v``: each image's shared and unique bytes and its containers (newest
    import first), and the images' Sharing."""
    from secpod.images import Store
    from secpod.images.sharing import sharing
    from secpod.sandbox import operations

    rows = operations.listing(True)
    images = Store.open().list()
    shares = sharing(images)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["image_digest"]] = counts.get(r["image_digest"], 0) + 1
    per_image = [ImageUsage(i, shares.shared[i.digest], shares.unique[i.digest],
                            counts.get(i.digest, 0)) for i in images]
    return per_image, shares


def _volume_usage() -> Usage:
    from secpod.sandbox import volumes

    vols = volumes.all_volumes()
    using = volumes.users()
    sizes = {v.name: volumes.size_of(v) for v in vols}
    return Usage("Local Volumes", len(vols), sum(1 for v in vols if v.name in using),
                 sum(sizes.values()), sum(n for v, n in sizes.items() if v not in using))


@record(frozen=True, eq=False)
class Pruned:
    """What a prune removed, and what it could not (with the reason)."""

    removed: tuple[str, ...]          # container ids or image digests
    reclaimed: int                    # bytes
    failed: tuple[tuple[str, str], ...] = ()   # (id or digest, reason)


def prune_containers() -> Pruned:
    """Remove every stopped container (created or exited), each as ``rm`` does."""
    from secpod.sandbox import operations

    removed, failed, freed = [], [], 0
    for row in operations.listing(True):
        if row["status"] not in STOPPED:
            continue
        size = container_size(row["id"])
        try:
            operations.remove(row["id"])
        except operations.PodInfra:   # goes with its pod (pod prune)
            continue
        except Error as e:  # it started meanwhile, or its runtime refused: say so
            failed.append((row["id"], e.message))
            continue
        removed.append(row["id"])
        freed += size
    return Pruned(tuple(removed), freed, tuple(failed))


def prune_images(*, all_unused: bool) -> Pruned:
    """Remove images without a name (dangling); with ``all_unused``, every image no
    container was made from. An image a container uses is never removed."""
    from secpod.images import Store
    from secpod.images.sharing import freed_by_removing
    from secpod.sandbox.state import containers_using

    store = Store.open()
    images = store.list()
    removed: list[str] = []
    failed = []
    for image in images:
        if image.names and not all_unused:
            continue
        if containers_using(image.digest):
            continue
        try:
            store.remove(image.digest)
        except Conflict as e:  # a container was made from it meanwhile
            failed.append((image.digest, e.message))
            continue
        removed.append(image.digest)
    # What the removals freed: their blobs no image left lists (a shared base stays).
    return Pruned(tuple(removed), freed_by_removing(images, removed), tuple(failed))
