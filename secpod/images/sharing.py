"""What images share on disk: the bytes each blob takes once, each image's shared and
unique bytes, and what removing some images would really free (docs/adr/0010).

The store keeps a blob (config or layer) once by digest, however many images list it;
an image's ``size`` counts its config and layers as if it were alone. These functions
count each blob once.
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


@record(frozen=True, eq=False)
class Sharing:
    """How the images' blobs are shared.

    ``stored`` is the bytes every image's blobs take, each blob once; ``listed`` the sum
    of the images' own sizes; ``shared[digest]`` the bytes of that image's blobs at least
    one other image also lists (Docker's SharedSize), and ``unique[digest]`` the rest.
    """

    stored: int
    listed: int
    shared: dict[str, int]
    unique: dict[str, int]
    shared_blobs: int   # blobs listed by more than one image

    @property
    def saved(self) -> int:
        """The bytes sharing saves: what the images would take each alone, less the store's."""
        return self.listed - self.stored


def sharing(images: Iterable[ImageRecord]) -> Sharing:
    """Count each blob once over ``images``."""
    images = list(images)
    per_image = {i.digest: blobs_of(i) for i in images}
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
                   shared=shared, unique=unique,
                   shared_blobs=sum(1 for n in users.values() if n > 1))


def freed_by_removing(images: Iterable[ImageRecord], removed: Iterable[str]) -> int:
    """The bytes removing the images whose digests are in ``removed`` frees: their
    blobs that no image left lists."""
    images = list(images)
    gone = set(removed)
    kept: set[str] = set()
    for i in images:
        if i.digest not in gone:
            kept.update(blobs_of(i))
    freed: dict[str, int] = {}
    for i in images:
        if i.digest in gone:
            freed.update((d, n) for d, n in blobs_of(i).items() if d not in kept)
    return sum(freed.values())
