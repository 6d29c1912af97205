"""Unpack while fetching: order, error precedence, cleanup, and reading a growing blob."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from secpod.errors import DigestMismatch, HostileArchive
from secpod.images import Store
from secpod.images import _store as store_mod
from secpod.images._pipeline import Pipe

from .test_images_store import mc, write_layout


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setattr(store_mod, "_containers_using", lambda digest: [])
    return Store.open()


def _nothing_left(store: Store) -> None:
    assert list((store.root / "tmp").iterdir()) == []
    assert [p for p in (store.root / "blobs").rglob("*") if p.is_file()] == []
    assert list((store.root / "unpacked").iterdir()) == []


def _tamper_last_layer(state: dict[str, Any]) -> None:
    d = state["manifest"]["layers"][-1]
    name = f"blobs/sha256/{d['digest'][7:]}"
    blob = bytearray(state["files"][name])
    blob[len(blob) // 2] ^= 0xFF
    state["files"][name] = bytes(blob)


def test_layers_apply_in_order_with_whiteouts(store: Store, tmp_path: Path) -> None:
    big = bytes(range(256)) * 8192  # 2 MiB: several reads behind the writer
    layers = [
        mc.layer([("dir", "a"), ("file", "a/gone", b"x"), ("file", "a/big", big)]),
        mc.layer([("file", "a/.wh.gone", b""), ("file", "a/new", b"2")], comp="zstd"),
        mc.layer([("file", "a/new", b"3")], comp="tar"),
    ]
    rec = store.import_path(write_layout(tmp_path / "l", mc.layout(layers)), name="app")
    root = rec.rootfs
    assert not (root / "a" / "gone").exists()
    assert (root / "a" / "new").read_bytes() == b"3"
    assert (root / "a" / "big").read_bytes() == big
    assert rec.unpack_report["layers"] == 3


def test_tampered_blob_wins_over_hostile_layer(store: Store, tmp_path: Path) -> None:
    """Layer 1 escapes the root and layer 2 is tampered: the mismatch is what is reported
    (every blob is verified before anything the unpacker found), and nothing is kept."""
    layers = [mc.layer([("file", "../escape", b"x")]), mc.layer([("file", "b", b"y" * 4096)])]
    files = mc.layout(layers, tamper=_tamper_last_layer)
    with pytest.raises(DigestMismatch, match="layer 2/2"):
        store.import_path(write_layout(tmp_path / "l", files), name="app")
    _nothing_left(store)
    assert not (tmp_path / "escape").exists()


def test_hostile_layer_refused_after_verification(store: Store, tmp_path: Path) -> None:
    layers = [mc.layer([("file", "../escape", b"x")]), mc.layer([("file", "b", b"y")])]
    with pytest.raises(HostileArchive, match="layer 1/2"):
        store.import_path(write_layout(tmp_path / "l", mc.layout(layers)), name="app")
    _nothing_left(store)


def test_tampered_config_is_a_mismatch(store: Store, tmp_path: Path) -> None:
    def tamper(state: dict[str, Any]) -> None:
        d = state["manifest"]["config"]
        name = f"blobs/sha256/{d['digest'][7:]}"
        state["files"][name] = json.dumps({"not": "the config"}).ljust(d["size"]).encode()

    files = mc.layout([mc.layer([("file", "a", b"1")])], tamper=tamper)
    with pytest.raises(DigestMismatch, match="config"):
        store.import_path(write_layout(tmp_path / "l", files), name="app")
    _nothing_left(store)


def test_reader_waits_for_bytes_and_end(tmp_path: Path) -> None:
    pipe = Pipe()
    path = tmp_path / "blob"
    got: list[bytes] = []

    def read() -> None:
        r = pipe.reader("sha256:x")
        head = r.read(512)
        r.seek(0)
        got.append(head)
        while chunk := r.read(1 << 20):
            got.append(chunk)
        r.close()

    t = threading.Thread(target=read)
    t.start()
    blob = pipe.start("sha256:x", path)
    with open(path, "wb", buffering=0) as f:
        for i in range(5):
            f.write(bytes([i]) * 100_000)
            pipe.wrote(blob, 100_000)
    pipe.finish(blob)
    t.join()
    assert len(got[0]) == 512
    assert b"".join(got[1:]) == path.read_bytes()


def test_abort_wakes_a_waiting_reader(tmp_path: Path) -> None:
    pipe = Pipe()
    done = threading.Event()

    def read() -> None:
        try:
            pipe.reader("sha256:never")
        except Exception:  # noqa: BLE001 - the private _Aborted
            done.set()

    t = threading.Thread(target=read)
    t.start()
    pipe.abort()
    t.join()
    assert done.is_set()
