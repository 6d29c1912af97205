"""The image store: formats, names, idempotence, removal, locking, cleanup on failure."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import multiprocessing
import os
import tarfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from secpod.errors import Conflict, DigestMismatch, MalformedInput, NotFound, UsageError
from secpod.images import Store
from secpod.images import _store as store_mod
from secpod.images._unpack import Unpacker

CORPUS = Path(__file__).resolve().parents[1] / "assets" / "images"


def _corpus() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_corpus", CORPUS / "make_corpus.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


mc = _corpus()


def write_layout(dest: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        (dest / name).write_bytes(data)
    return dest


def image_files(text: str, ref: str | None = "latest") -> dict[str, bytes]:
    """A one-layer image whose /etc/id holds ``text``."""
    files: dict[str, bytes] = mc.layout([mc.layer([("dir", "etc"),
                                                  ("file", "etc/id", text.encode())])])
    index = json.loads(files["index.json"])
    if ref is None:
        del index["manifests"][0]["annotations"]
    else:
        index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] = ref
    files["index.json"] = json.dumps(index).encode()
    return files


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setattr(store_mod, "_containers_using", lambda digest: [])
    return Store.open()


def audit(store: Store) -> list[dict[str, Any]]:
    path = store.root.parent / "audit" / "log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_store_is_private(store: Store) -> None:
    assert oct(store.root.stat().st_mode & 0o777) == "0o700"
    assert store.root == Path(os.environ["XDG_DATA_HOME"]) / "secpod" / "images"


def test_layout_import_resolve_forms(store: Store, tmp_path: Path) -> None:
    layout = write_layout(tmp_path / "l", image_files("one"))
    rec = store.import_path(layout, name="example.com/team/app:1")
    assert rec.names == ("example.com/team/app:1",)
    assert rec.familiar_names() == ("example.com/team/app:1",)
    assert (rec.rootfs / "etc" / "id").read_text() == "one"
    hexpart = rec.digest[7:]
    for ref in ("example.com/team/app:1", rec.digest, hexpart, hexpart[:12],
                "sha256:" + hexpart[:12], f"example.com/team/app@{rec.digest}"):
        assert store.resolve(ref).digest == rec.digest, ref
    assert rec.short_id() == hexpart[:12]
    for ref in (hexpart[:11], "example.com/team/app:2", "app:1"):
        with pytest.raises(NotFound) as info:
            store.resolve(ref)
        assert info.value.message == f"no such image: {ref}"
        assert "secpod image import" in (info.value.hint or "")
    entry = audit(store)[-1]
    assert (entry["action"], entry["outcome"]) == ("image.import", "ok")
    assert entry["image"] == {"ref": "example.com/team/app:1", "digest": rec.digest}
    assert entry["details"]["format"] == "oci-layout"


def test_default_names(store: Store, tmp_path: Path) -> None:
    tagged = store.import_path(write_layout(tmp_path / "a", image_files("a", ref="busybox:1.36")))
    assert tagged.names == ("docker.io/library/busybox:1.36",)
    assert tagged.familiar_names() == ("busybox:1.36",)
    bare = store.import_path(write_layout(tmp_path / "b", image_files("b", ref="latest")))
    assert bare.names == ()  # a bare tag names no repository


def test_reimport_is_idempotent(store: Store, tmp_path: Path) -> None:
    layout = write_layout(tmp_path / "l", image_files("one"))
    first = store.import_path(layout, name="one")
    second = store.import_path(layout, name="one")
    assert first == second
    assert [r.digest for r in store.list()] == [first.digest]
    assert [e["outcome"] for e in audit(store)] == ["ok", "ok"]


def test_name_clash_moves_name(store: Store, tmp_path: Path) -> None:
    old = store.import_path(write_layout(tmp_path / "a", image_files("a")), name="app")
    said: list[str] = []
    new = store.import_path(write_layout(tmp_path / "b", image_files("b")), name="app",
                            progress=said.append)
    assert said[-1] == f"name app:latest moved from image {old.short_id()} to {new.short_id()}"
    assert store.resolve("app").digest == new.digest
    assert store.resolve(old.digest).names == ()  # kept, nameless
    assert audit(store)[-1]["details"]["moved_names"] == ["docker.io/library/app:latest"]


def test_tag_and_remove(store: Store, tmp_path: Path) -> None:
    rec = store.import_path(write_layout(tmp_path / "a", image_files("a")), name="app:1")
    store.tag("app:1", "app:2")
    assert store.resolve("app:2").names == ("docker.io/library/app:1", "docker.io/library/app:2")
    store.remove("app:1")
    assert store.resolve("app:2").digest == rec.digest
    assert rec.rootfs.is_dir()
    store.remove("app:2")
    assert store.list() == []
    assert not rec.rootfs.exists()
    assert [p for p in (store.root / "blobs").rglob("*") if p.is_file()] == []
    assert [(e["action"], e["outcome"]) for e in audit(store)] == [
        ("image.import", "ok"), ("image.tag", "ok"), ("image.rm", "ok"), ("image.rm", "ok")]
    with pytest.raises(NotFound):
        store.remove("app:2")
    assert audit(store)[-1]["outcome"] == "error"


def test_remove_keeps_shared_blobs(store: Store, tmp_path: Path) -> None:
    base = mc.layer([("dir", "etc"), ("file", "etc/base", b"base")])
    a = store.import_path(write_layout(tmp_path / "a", mc.layout([base])), name="a")
    b = store.import_path(write_layout(tmp_path / "b", mc.layout(
        [base, mc.layer([("file", "etc/top", b"top")])])), name="b")
    store.remove("a")
    shared = b.layers[0]["digest"]
    assert shared == a.layers[0]["digest"]
    assert store.blob_path(shared).is_file()
    assert (store.resolve("b").rootfs / "etc" / "base").read_text() == "base"


def test_remove_refused_while_containers_use_it(store: Store, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    rec = store.import_path(write_layout(tmp_path / "a", image_files("a")), name="app")
    monkeypatch.setattr(store_mod, "_containers_using", lambda digest: ["web", "db"])
    with pytest.raises(Conflict) as info:
        store.remove("app")
    assert info.value.message == "image app is used by containers: web, db"
    assert "secpod image rm -f" in (info.value.hint or "")
    assert store.resolve("app").digest == rec.digest
    assert audit(store)[-1]["outcome"] == "refused"
    store.remove("app", force=True)
    assert store.list() == []


def test_bad_name(store: Store, tmp_path: Path) -> None:
    layout = write_layout(tmp_path / "a", image_files("a"))
    with pytest.raises(UsageError):
        store.import_path(layout, name="Not A Name")
    assert store.list() == []


def _make_docker_archive(path: Path, *, tamper: bool = False) -> str:
    tar_bytes = mc.tar([("dir", "etc"), ("file", "etc/id", b"docker")])
    diff_id = hashlib.sha256(tar_bytes).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]}}).encode()
    config_hex = hashlib.sha256(config).hexdigest()
    if tamper:
        tar_bytes = tar_bytes.replace(b"docker", b"DOCKER")
    files = {
        "manifest.json": json.dumps([{"Config": f"{config_hex}.json",
                                      "RepoTags": ["example.com/d:1", "example.com/d:latest"],
                                      "Layers": [f"{diff_id}/layer.tar"]}]).encode(),
        f"{config_hex}.json": config,
        f"{diff_id}/layer.tar": tar_bytes,
    }
    with tarfile.open(path, "w") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return f"sha256:{config_hex}"


def test_docker_archive(store: Store, tmp_path: Path) -> None:
    config_digest = _make_docker_archive(tmp_path / "d.tar")
    rec = store.import_path(tmp_path / "d.tar")
    assert rec.config_digest == config_digest
    assert rec.names == ("example.com/d:1", "example.com/d:latest")
    assert (rec.rootfs / "etc" / "id").read_text() == "docker"
    assert rec.layers[0]["mediaType"] == "application/vnd.oci.image.layer.v1.tar"
    assert store.import_path(tmp_path / "d.tar").digest == rec.digest  # stable conversion


def test_docker_archive_tampered_layer(store: Store, tmp_path: Path) -> None:
    _make_docker_archive(tmp_path / "d.tar", tamper=True)
    with pytest.raises(DigestMismatch) as info:
        store.import_path(tmp_path / "d.tar")
    assert info.value.message.startswith("layer 1/1 sha256:")
    assert store.list() == []


def test_oci_archive_gzip_and_truncated(store: Store, tmp_path: Path) -> None:
    data = (CORPUS / "zstd-layer.tar").read_bytes()
    import gzip

    (tmp_path / "a.tar.gz").write_bytes(gzip.compress(data))
    assert (store.import_path(tmp_path / "a.tar.gz").rootfs / "etc" / "zstd").is_file()
    (tmp_path / "cut.tar").write_bytes(data[: len(data) // 2])
    with pytest.raises(MalformedInput):
        store.import_path(tmp_path / "cut.tar")


def test_not_an_image(store: Store, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(MalformedInput) as info:
        store.import_path(tmp_path / "empty")
    assert info.value.message.endswith("is not an OCI image layout folder: no index.json or "
                                       "manifest.json")
    assert "--rootfs" in (info.value.hint or "")
    with pytest.raises(NotFound):
        store.import_path(tmp_path / "missing")
    (tmp_path / "text").write_text("hello")
    with pytest.raises(MalformedInput) as info:
        store.import_path(tmp_path / "text")
    assert info.value.message.endswith("is not a tar archive")


def test_rootfs_import(store: Store, tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "hello").write_text("#!/bin/sh\necho hi\n")
    (root / "bin" / "hello").chmod(0o755)
    (root / "bin" / "again").hardlink_to(root / "bin" / "hello")
    (root / "sh").symlink_to("bin/hello")
    rec = store.import_path(root, rootfs=True, name="local/hello")
    assert (rec.rootfs / "bin" / "hello").read_text().startswith("#!/bin/sh")
    assert os.readlink(rec.rootfs / "sh") == "bin/hello"
    hello = (rec.rootfs / "bin" / "hello").stat()
    assert (rec.rootfs / "bin" / "again").stat().st_ino == hello.st_ino
    assert rec.config["config"]["Cmd"] == ["/bin/sh"]
    assert audit(store)[-1]["details"]["format"] == "rootfs"
    assert list((store.root / "tmp").iterdir()) == []


def test_interrupt_leaves_nothing(store: Store, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(self: Unpacker, *a: object, **k: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Unpacker, "apply_layer", boom)
    with pytest.raises(KeyboardInterrupt):
        store.import_path(write_layout(tmp_path / "a", image_files("a")), name="app")
    assert list((store.root / "tmp").iterdir()) == []
    assert [p for p in (store.root / "blobs").rglob("*") if p.is_file()] == []
    assert audit(store)[-1]["reason"] == "interrupted"


def test_interrupted_removal_is_audited(store: Store, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    rec = store.import_path(write_layout(tmp_path / "a", image_files("a")), name="app")

    def interrupt(digest: str) -> list[str]:
        raise KeyboardInterrupt

    monkeypatch.setattr(store_mod, "_containers_using", interrupt)
    with pytest.raises(KeyboardInterrupt):
        store.remove("app")
    entry = audit(store)[-1]
    assert (entry["action"], entry["outcome"], entry["reason"]) == (
        "image.rm", "error", "interrupted")
    assert store.resolve("app").digest == rec.digest


def test_stale_staging_is_swept(store: Store, tmp_path: Path) -> None:
    stale = store.root / "tmp" / "import-dead"
    (stale / "unpacked").mkdir(parents=True)
    (stale / ".lock").write_text("")
    store.import_path(write_layout(tmp_path / "a", image_files("a")), name="app")
    assert list((store.root / "tmp").iterdir()) == []


def _import_worker(data_home: str, layout: str, name: str) -> None:
    os.environ["XDG_DATA_HOME"] = data_home
    Store.open().import_path(Path(layout), name=name)


def test_concurrent_imports_lose_no_names(store: Store, tmp_path: Path) -> None:
    jobs = []
    ctx = multiprocessing.get_context("fork")
    for i in range(6):
        layout = write_layout(tmp_path / f"l{i}", image_files(f"image {i % 3}"))
        jobs.append(ctx.Process(target=_import_worker,
                                args=(os.environ["XDG_DATA_HOME"], str(layout), f"app:{i}")))
    for j in jobs:
        j.start()
    for j in jobs:
        j.join(60)
        assert j.exitcode == 0
    names = sorted(n for r in store.list() for n in r.familiar_names())
    assert names == [f"app:{i}" for i in range(6)]
    assert len(store.list()) == 3
    assert list((store.root / "tmp").iterdir()) == []


def test_docker_folder_names_stay_inside(store: Store, tmp_path: Path) -> None:
    folder = tmp_path / "extracted"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps(
        [{"Config": "../secret.json", "RepoTags": [], "Layers": []}]))
    (tmp_path / "secret.json").write_text("{}")
    with pytest.raises(MalformedInput) as info:
        store.import_path(folder)
    assert info.value.message == "'../secret.json' points outside the image folder"
