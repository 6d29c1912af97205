"""What images share on disk: each blob counted once, shared and unique sizes, and what a
removal really frees (docs/adr/0010-shared-layers.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from secpod.images import Store
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


def test_a_shared_base_counts_once(store: Store, tmp_path: Path) -> None:
    a, b, base = _two_sharing_a_base(store, tmp_path)
    s = sharing([a, b])
    base_size = len(base[0])
    assert a.layers[0]["digest"] == b.layers[0]["digest"]
    assert s.listed == a.size + b.size
    assert s.saved == base_size
    assert s.shared_blobs == 1
    assert s.shared == {a.digest: base_size, b.digest: base_size}
    assert s.unique == {a.digest: a.size - base_size, b.digest: b.size - base_size}
    # What the store holds: every config and layer blob once, and the two manifests.
    manifests = sum(len(store.manifest_bytes(i.digest)) for i in (a, b))
    assert _blobs_on_disk(store) == s.stored + manifests


def test_alone_nothing_is_shared(store: Store, tmp_path: Path) -> None:
    a, _b, _base = _two_sharing_a_base(store, tmp_path)
    s = sharing([a])
    assert (s.saved, s.shared[a.digest], s.unique[a.digest]) == (0, 0, a.size)
    assert sum(blobs_of(a).values()) == a.size


def test_removing_frees_only_what_no_image_keeps(store: Store,
                                                 tmp_path: Path) -> None:
    a, b, base = _two_sharing_a_base(store, tmp_path)
    assert freed_by_removing([a, b], [a.digest]) == a.size - len(base[0])
    assert freed_by_removing([a, b], [a.digest, b.digest]) == a.size + b.size - len(base[0])
    assert freed_by_removing([a, b], []) == 0


def test_df_and_prune_count_the_shared_base_once(store: Store, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    a, b, base = _two_sharing_a_base(store, tmp_path)
    monkeypatch.setattr(operations, "listing", lambda _all: [])
    monkeypatch.setattr(usage, "_volume_usage", lambda: usage.Usage("Local Volumes", 0, 0, 0, 0))
    images = usage.disk_usage()[0]
    assert images.size == a.size + b.size - len(base[0])
    assert images.saved == len(base[0])
    assert images.reclaimable == images.size
    assert images.as_dict()["RawSaved"] == len(base[0])
    store.untag("a")
    manifest = len(store.manifest_bytes(a.digest))
    before = _blobs_on_disk(store)
    pruned = usage.prune_images(all_unused=False)
    assert pruned.removed == (a.digest,)
    # The config and top layer of a went; the base stays, b uses it.
    assert pruned.reclaimed == a.size - len(base[0]) == before - _blobs_on_disk(store) - manifest
    assert store.blob_path(b.layers[0]["digest"]).is_file()
