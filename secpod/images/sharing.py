"""What images share on disk: the bytes each blob and each unpacked layer takes once,
each image's shared and unique bytes, and what removing some images would really free
(docs/adr/0010).

The store keeps a blob (config or layer) once by digest, and a layer's unpacked tree
once by diff_id, however many images list them (an image's rootfs links the files of
its layers' trees: one inode each). An image's ``size`` counts its config and layer
blobs as if it were alone. These functions count each blob and each layer tree once;
an image of an older store, whose rootfs is a tree of its own, counts that tree alone.
The bytes of a tree are its files' sizes (each inode once) as its unpack counted them.
"""

from __future__ import annotations

from collections.abc import Iterable

from secpod._record import record

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from secpod.images._store import ImageRecord


def blobs_of(image: ImageRecord) -> dict[str, int]:
    """The blobs ``image`` lists (its config and layers), digest to size."""
    layers = {str(d["digest"]): int(d["size"]) for d in image.layers}
    config_size = image.size - sum(int(d["size"]) for d in image.layers)
    return {image.config_digest: config_size, **layers}


def unpacked_of(image: ImageRecord) -> dict[str, int]:
    """The unpacked trees ``image``'s rootfs takes: each layer tree it links
    (``layer:<diff_id>``), or an older store's tree of its own (``rootfs:<digest>``)."""
    if image.unpacked_layers:
        return {"layer:" + d: n for d, n in image.unpacked_layers}
    return {"rootfs:" + image.digest: int(image.unpack_report.get("bytes", 0))}


def disk_of(image: ImageRecord) -> dict[str, int]:
    """What ``image`` takes on disk, each item (blob or tree) to its bytes."""
    return {**blobs_of(image), **unpacked_of(image)}


@record(frozen=True, eq=False)
class Sharing:
    """How the images' blobs and unpacked layers are shared.

    ``stored`` is the bytes every image's blobs and trees take, each once; ``listed``
    the sum of what each image takes alone (``size[digest]``); ``shared[digest]`` the
    bytes of that image's blobs and trees at least one other image also has (Docker's
    SharedSize), and ``unique[digest]`` the rest.
    """

    stored: int
    listed: int
    size: dict[str, int]
    shared: dict[str, int]
    unique: dict[str, int]
    shared_blobs: int   # blobs listed by more than one image
    shared_layers: int  # unpacked layer trees linked by more than one image

    @property
    def saved(self) -> int:
        """The bytes sharing saves: what the images would take each alone, less the store's."""
        return self.listed - self.stored


def sharing(images: Iterable[ImageRecord]) -> Sharing:
    """Count each blob once over ``images``."""
    images = list(images)
    per_image = {i.digest: disk_of(i) for i in images}
    users: dict[str, int] = {}
    sizes: dict[str, int] = {}
    for blobs in per_image.values():
        for digest, size in blobs.items():
            users[digest] = users.get(digest, 0) + 1
            sizes[digest] = size
    shared = {d: sum(n for b, n in blobs.items() if users[b] > 1)
              for d, blobs in per_image.items()}
    unique = {d: sum(n for b, n in blobs.items() if users[b] == 1)
              for d, blobs in per_image.items()}
    return Sharing(stored=sum(sizes.values()),
                   listed=sum(sum(b.values()) for b in per_image.values()),
                   size={d: sum(b.values()) for d, b in per_image.items()},
                   shared=shared, unique=unique,
                   shared_blobs=sum(1 for k, n in users.items()
                                    if n > 1 and not k.startswith(("layer:", "rootfs:"))),
                   shared_layers=sum(1 for k, n in users.items()
                                     if n > 1 and k.startswith("layer:")))


def freed_by_removing(images: Iterable[ImageRecord], removed: Iterable[str]) -> int:
    """The bytes removing the images whose digests are in ``removed`` frees: their
    blobs and trees that no image left has."""
    images = list(images)
    gone = set(removed)
    kept: set[str] = set()
    for i in images:
        if i.digest not in gone:
            kept.update(disk_of(i))
    freed: dict[str, int] = {}
    for i in images:
        if i.digest in gone:
            freed.update((d, n) for d, n in disk_of(i).items() if d not in kept)
    return sum(freed.values())
