"""What images share on disk: each blob counted once, shared and unique sizes, and what a
removal really frees (docs/adr/0010-shared-layers.md)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from secpod._record import replace
from secpod.images import ImageRecord, Store
from secpod.images import _store as store_mod
from secpod.images.sharing import blobs_of, freed_by_removing, sharing
from secpod.sandbox import operations, usage
from tests.unit.test_images_store import mc, write_layout


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setattr(store_mod, "_containers_using", lambda digest: [])
    return Store.open()


def _two_sharing_a_base(store: Store, tmp_path: Path) -> tuple:
    base = mc.layer([("dir", "etc"), ("file", "etc/base", b"base" * 5000)])
    a = store.import_path(write_layout(tmp_path / "a", mc.layout(
        [base, mc.layer([("file", "etc/a", b"a")])])), name="a")
    b = store.import_path(write_layout(tmp_path / "b", mc.layout(
        [base, mc.layer([("file", "etc/b", b"bb")])])), name="b")
    return a, b, base


def _blobs_on_disk(store: Store) -> int:
    return sum(p.stat().st_size for p in (store.root / "blobs").rglob("*") if p.is_file())


BASE_FILES = 20000  # the bytes of the base layer's files (etc/base)


def _alone(image: ImageRecord) -> int:
    """What an image takes alone: its blobs and its layers' unpacked files."""
    return image.size + sum(n for _d, n in image.unpacked_layers)


def test_a_shared_base_counts_once(store: Store, tmp_path: Path) -> None:
    a, b, base = _two_sharing_a_base(store, tmp_path)
    s = sharing([a, b])
    base_size = len(base[0]) + BASE_FILES  # its blob, and its unpacked tree
    assert a.layers[0]["digest"] == b.layers[0]["digest"]
    assert a.unpacked_layers[0] == b.unpacked_layers[0]
    assert a.unpacked_layers[0][1] == BASE_FILES
    assert s.listed == _alone(a) + _alone(b)
    assert s.size == {a.digest: _alone(a), b.digest: _alone(b)}
    assert s.saved == base_size
    assert (s.shared_blobs, s.shared_layers) == (1, 1)
    assert s.shared == {a.digest: base_size, b.digest: base_size}
    assert s.unique == {a.digest: _alone(a) - base_size, b.digest: _alone(b) - base_size}
    # What the store holds: every config and layer blob once, and the two manifests.
    manifests = sum(len(store.manifest_bytes(i.digest)) for i in (a, b))
    trees = sum(n for _d, n in {*a.unpacked_layers, *b.unpacked_layers})
    assert _blobs_on_disk(store) == s.stored - trees + manifests
    # ... and each layer's files once: the base's inodes are in both images' rootfs.
    sa, sb = (os.lstat(i.rootfs / "etc" / "base") for i in (a, b))
    assert sa.st_ino == sb.st_ino and sa.st_nlink == 3


def test_alone_nothing_is_shared(store: Store, tmp_path: Path) -> None:
    a, _b, _base = _two_sharing_a_base(store, tmp_path)
    s = sharing([a])
    assert (s.saved, s.shared[a.digest], s.unique[a.digest]) == (0, 0, _alone(a))
    assert sum(blobs_of(a).values()) == a.size


def test_an_older_stores_image_counts_its_own_tree(store: Store, tmp_path: Path) -> None:
    a, b, base = _two_sharing_a_base(store, tmp_path)
    old = replace(a, unpacked_layers=())
    s = sharing([old, b])
    assert s.saved == len(base[0])  # the blob only: its rootfs is its own
    assert s.size[a.digest] == a.size + a.unpack_report["bytes"]


def test_removing_frees_only_what_no_image_keeps(store: Store,
                                                 tmp_path: Path) -> None:
    a, b, base = _two_sharing_a_base(store, tmp_path)
    base_size = len(base[0]) + BASE_FILES
    assert freed_by_removing([a, b], [a.digest]) == _alone(a) - base_size
    assert freed_by_removing([a, b], [a.digest, b.digest]) == _alone(a) + _alone(b) - base_size
    assert freed_by_removing([a, b], []) == 0


def test_df_and_prune_count_the_shared_base_once(store: Store, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    a, b, base = _two_sharing_a_base(store, tmp_path)
    base_size = len(base[0]) + BASE_FILES
    monkeypatch.setattr(operations, "listing", lambda _all: [])
    monkeypatch.setattr(usage, "_volume_usage", lambda: usage.Usage("Local Volumes", 0, 0, 0, 0))
    images = usage.disk_usage()[0]
    assert images.size == _alone(a) + _alone(b) - base_size
    assert images.saved == base_size
    assert images.reclaimable == images.size
    assert images.as_dict()["RawSaved"] == base_size
    store.untag("a")
    manifest = len(store.manifest_bytes(a.digest))
    before = _blobs_on_disk(store)
    pruned = usage.prune_images(all_unused=False)
    assert pruned.removed == (a.digest,)
    # The config and top layer of a went (blob and tree); the base stays, b uses it.
    assert pruned.reclaimed == _alone(a) - base_size
    assert a.size - len(base[0]) == before - _blobs_on_disk(store) - manifest
    assert store.blob_path(b.layers[0]["digest"]).is_file()
    assert (store.root / "layers" / b.unpacked_layers[0][0][7:] / "tree" / "etc" / "base").is_file()
    assert not (store.root / "layers" / a.unpacked_layers[1][0][7:]).exists()
