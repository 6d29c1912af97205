"""The hostile-archive corpus (tests/assets/images) against the real store and unpacker.

Each refused case asserts the exact error and that the store holds nothing
afterwards; each neutralised case asserts what the image looks like and what
the unpack report counts.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest

from secpod.errors import DigestMismatch, Error, HostileArchive, MalformedInput, UsageError
from secpod.images import ImageRecord, Store

CORPUS = Path(__file__).resolve().parents[1] / "assets" / "images"
L = r"layer 1/1 \([0-9a-f]{12}\)"
L2 = r"layer 2/2 \([0-9a-f]{12}\)"
D = r"sha256:[0-9a-f]{64}"


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    for var in ("SECPOD_MAX_UNPACK_BYTES", "SECPOD_MAX_ENTRIES", "SECPOD_MAX_FILE_BYTES",
                "SECPOD_MAX_RATIO"):
        monkeypatch.delenv(var, raising=False)
    return Store.open()


def audit_log(store: Store) -> list[dict[str, object]]:
    path = store.root.parent / "audit" / "log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_empty(store: Store) -> None:
    """Nothing half-imported: no blob, no layer, no rootfs, no staging, no index entry."""
    assert [p for p in (store.root / "blobs").rglob("*") if p.is_file()] == []
    assert list((store.root / "layers").iterdir()) == []
    assert list((store.root / "unpacked").iterdir()) == []
    assert list((store.root / "tmp").iterdir()) == []
    assert store.list() == []


def refused(store: Store, case: str, error: type[Error], pattern: str) -> Error:
    with pytest.raises(error) as info:
        store.import_path(CORPUS / f"{case}.tar")
    assert type(info.value) is error
    assert re.fullmatch(pattern, info.value.message), info.value.message
    assert info.value.hint
    assert_empty(store)
    last = audit_log(store)[-1]
    assert (last["action"], last["outcome"], last["reason"]) == (
        "image.import", "error", info.value.message)
    return info.value


def imported(store: Store, case: str) -> ImageRecord:
    rec = store.import_path(CORPUS / f"{case}.tar")
    assert list((store.root / "tmp").iterdir()) == []
    return rec


# --- refused -----------------------------------------------------------------


def test_dotdot_entry(store: Store) -> None:
    refused(store, "dotdot", HostileArchive,
            rf"{L}: entry '\.\./escape' contains '\.\.' \(escapes the root\)")


def test_absolute_entry(store: Store) -> None:
    refused(store, "absolute", HostileArchive,
            rf"{L}: entry '/etc/evil' has an absolute path \(escapes the root\)")


def test_write_through_symlink_same_layer(store: Store) -> None:
    refused(store, "symlink-same-layer", HostileArchive,
            rf"{L}: entry 'link/evil' goes through the symlink /link \(escapes the root\)")
    assert not Path("/tmp/evil").exists()  # noqa: S108 - the escape target


def test_write_through_symlink_from_lower_layer(store: Store) -> None:
    refused(store, "symlink-two-layers", HostileArchive,
            rf"{L2}: entry 'link/evil' goes through the symlink /link \(escapes the root\)")
    assert not Path("/evil").exists()


def test_hardlink_outside(store: Store) -> None:
    refused(store, "hardlink-outside", HostileArchive,
            rf"{L}: hardlink 'pw' -> target '\.\./\.\./\.\./etc/passwd' contains '\.\.' "
            r"\(escapes the root\)")


def test_hardlink_through_symlink(store: Store) -> None:
    refused(store, "hardlink-through-symlink", HostileArchive,
            rf"{L}: hardlink 'pw' -> target 'link/passwd' goes through the symlink /link "
            r"\(escapes the root\)")


def test_long_name(store: Store) -> None:
    refused(store, "long-name", HostileArchive,
            rf"{L}: entry 'a{{80}}'\.\.\. path too long \(limit 4096 bytes, 255 per component\)")


def test_gzip_bomb_bounded_by_env(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECPOD_MAX_UNPACK_BYTES", str(1 << 20))
    refused(store, "gzip-bomb", HostileArchive,
            rf"{L}: entry 'zeros' would take the unpacked size above 1048576 bytes "
            r"\(SECPOD_MAX_UNPACK_BYTES\)")


def test_gzip_bomb_single_file_limit(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECPOD_MAX_FILE_BYTES", str(1 << 20))
    refused(store, "gzip-bomb", HostileArchive,
            rf"{L}: entry 'zeros' is 4194304 bytes, above the single-file limit 1048576 "
            r"\(SECPOD_MAX_FILE_BYTES\)")


def test_gzip_bomb_within_default_limits_imports(store: Store) -> None:
    rec = imported(store, "gzip-bomb")
    assert (rec.rootfs / "zeros").stat().st_size == 4 << 20


def test_zstd_ratio_bomb(store: Store) -> None:
    refused(store, "zstd-bomb", HostileArchive,
            rf"{L}: compression ratio above 1024:1 \(SECPOD_MAX_RATIO\): a decompression bomb")


def test_entry_count_bound(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECPOD_MAX_ENTRIES", "3")
    refused(store, "device-node", HostileArchive,
            rf"{L}: more than 3 entries \(SECPOD_MAX_ENTRIES\)")


def test_bad_limit_value(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECPOD_MAX_ENTRIES", "lots")
    refused(store, "device-node", UsageError,
            r"SECPOD_MAX_ENTRIES='lots' is not a positive whole number")


def test_truncated_gzip(store: Store) -> None:
    refused(store, "truncated-gzip", MalformedInput,
            rf"{L}: corrupt or truncated gzip data \(Compressed file ended before the "
            r"end-of-stream marker was reached\)")


def test_truncated_tar(store: Store) -> None:
    refused(store, "truncated-tar", MalformedInput, rf"{L}: truncated tar \(inside a file's data\)")


def test_wrong_digest(store: Store) -> None:
    claimed = "sha256:" + __import__("hashlib").sha256(b"something else").hexdigest()
    refused(store, "wrong-digest", DigestMismatch,
            rf"layer 1/1 {claimed}: content is {D}")


def test_wrong_size(store: Store) -> None:
    refused(store, "wrong-size", DigestMismatch,
            rf"layer 1/1 {D}: (\d+) bytes, its descriptor says (\d+)")


def test_wrong_diff_id(store: Store) -> None:
    refused(store, "wrong-diff-id", DigestMismatch,
            rf"{L}: uncompressed content is {D}, but the image config says {D}")


def test_unknown_compression(store: Store) -> None:
    refused(store, "unknown-compression", MalformedInput,
            rf"{L}: unknown layer compression \(starts with 50 4b 03 04\)")


def test_garbage_manifest(store: Store) -> None:
    refused(store, "garbage-manifest", MalformedInput,
            r"manifest is not valid JSON \(.*\)")


def test_index_without_manifests(store: Store) -> None:
    refused(store, "empty-index", MalformedInput, r"index\.json lists no manifests")


def test_missing_blob(store: Store) -> None:
    refused(store, "missing-blob", MalformedInput,
            rf"blob {D} is missing from the layout \(no blobs/sha256/[0-9a-f]{{64}}\)")


# --- neutralised ---------------------------------------------------------------


def test_device_node_skipped_and_counted(store: Store) -> None:
    rec = imported(store, "device-node")
    assert not os.path.lexists(rec.rootfs / "dev" / "evil")
    assert rec.unpack_report["devices_skipped"] == 1
    assert (rec.rootfs / "etc" / "os-release").read_text() == "ID=corpus\n"


def test_setuid_and_setgid_stripped(store: Store) -> None:
    rec = imported(store, "setuid")
    assert stat.S_IMODE((rec.rootfs / "bin" / "su").stat().st_mode) == 0o755
    assert stat.S_IMODE((rec.rootfs / "shared").stat().st_mode) == 0o775
    assert rec.unpack_report["setuid_stripped"] == 2


def test_foreign_owners_counted_and_owned_by_user(store: Store) -> None:
    rec = imported(store, "foreign-owner")
    assert rec.unpack_report["foreign_owners"] == 2
    assert rec.unpack_report["foreign_uids"] == [1000]
    assert rec.unpack_report["foreign_gids"] == [42, 1000]
    assert (rec.rootfs / "home").stat().st_uid == os.getuid()


def test_readonly_dirs_kept_and_removable(store: Store) -> None:
    rec = imported(store, "readonly-dirs")
    assert stat.S_IMODE((rec.rootfs / "ro").stat().st_mode) == 0o555
    assert stat.S_IMODE((rec.rootfs / "locked").stat().st_mode) == 0o000
    assert (rec.rootfs / "ro" / "f").read_text() == "ro\n"
    store.remove(rec.digest)
    assert_empty(store)


def test_symlinked_mountpoints_recorded_not_replaced(store: Store) -> None:
    rec = imported(store, "symlinked-mountpoints")
    report = rec.unpack_report
    assert report["symlinked_mountpoints"] == {
        "/etc/resolv.conf": "../run/systemd/resolve/stub.conf", "/run": "var/run"}
    assert os.readlink(rec.rootfs / "run") == "var/run"
    assert sorted(report["created_mountpoints"]) == [
        "/dev", "/etc/hostname", "/etc/hosts", "/proc", "/sys", "/tmp"]  # noqa: S108
    assert stat.S_IMODE((rec.rootfs / "tmp").stat().st_mode) == 0o1777
    assert (rec.rootfs / "etc" / "hosts").read_bytes() == b""


# --- layers --------------------------------------------------------------------


def test_whiteouts_and_opaque_whiteouts_across_layers(store: Store) -> None:
    rec = imported(store, "whiteouts")
    root = rec.rootfs
    assert (root / "a" / "keep").read_text() == "keep"
    assert not (root / "a" / "gone").exists()
    assert sorted(p.name for p in (root / "b").iterdir()) == ["new"]
    assert not (root / "c").exists()  # a whiteout of nothing creates nothing
    assert not [p for p in root.rglob(".wh.*")]
    assert rec.unpack_report["whiteouts"] == 3


def test_zstd_layer(store: Store) -> None:
    rec = imported(store, "zstd-layer")
    assert (rec.rootfs / "etc" / "zstd").read_text() == "zstd\n"
    assert (rec.rootfs / "etc" / "gzip").read_text() == "gzip\n"
    assert [d["mediaType"].rsplit("+", 1)[1] for d in rec.layers] == ["zstd", "gzip"]


def test_nested_multi_platform_index_picks_host(store: Store) -> None:
    rec = imported(store, "multi-platform")
    assert rec.names == ("example.com/multi:1.0",)
    manifest = json.loads(store.manifest_bytes(rec.digest))
    assert "annotations" not in manifest  # the amd64 one, not its arm64 twin
