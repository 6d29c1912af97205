#!/usr/bin/env python3
"""Generate the hostile-archive corpus: one small oci-archive per case, ``<case>.tar``.

Run ``python3 tests/assets/images/make_corpus.py [DEST]`` (DEST defaults to this
folder). The output is reproducible byte for byte (fixed mtimes, sorted
members, gzip mtime 0), and tests/unit/test_images_corpus.py checks that the
committed files are what this script makes. CASES says what each one is;
the tests hold the exact expected outcome.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zstandard

OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"

Spec = tuple[Any, ...]


def tar(entries: list[Spec]) -> bytes:
    """A layer tar from specs: (kind, name, ...) written exactly as given, hostile or not."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for kind, name, *rest in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 0
            opts: dict[str, Any] = rest[-1] if rest and isinstance(rest[-1], dict) else {}
            info.uid, info.gid = opts.get("uid", 0), opts.get("gid", 0)
            data = b""
            if kind == "file":
                data = rest[0]
                info.size = len(data)
                info.mode = opts.get("mode", 0o644)
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                info.mode = opts.get("mode", 0o755)
            elif kind == "symlink":
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, rest[0], 0o777
            elif kind == "hardlink":
                info.type, info.linkname, info.mode = tarfile.LNKTYPE, rest[0], 0o644
            elif kind == "char":
                info.type, info.devmajor, info.devminor, info.mode = tarfile.CHRTYPE, 1, 3, 0o666
            elif kind == "zeros":
                info.size, info.mode = rest[0], 0o644
            else:
                raise ValueError(kind)
            if kind == "zeros":
                t.addfile(info, io.BytesIO(bytes(info.size)))
            else:
                t.addfile(info, io.BytesIO(data) if data else None)
    return buf.getvalue()


def gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=9, mtime=0)


def zst(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=19).compress(data)


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


Layer = tuple[bytes, str, bytes]  # (blob, media type suffix, uncompressed tar for diff_id)


def layer(entries: list[Spec], comp: str = "gzip") -> Layer:
    raw = tar(entries)
    blob = {"gzip": gz, "zstd": zst, "tar": lambda b: b}[comp](raw)
    return blob, {"gzip": "+gzip", "zstd": "+zstd", "tar": ""}[comp], raw


def layout(layers: list[Layer], *, tamper: Callable[[dict[str, Any]], None] | None = None,
           ) -> dict[str, bytes]:
    """Files of an OCI layout (``path -> bytes``) for an image of ``layers``.

    ``tamper(state)`` may change state["manifest"] (a dict), state["manifest_bytes"],
    state["index"], state["files"] before they are written.
    """
    files: dict[str, bytes] = {}
    descs = []
    for blob, suffix, _raw in layers:
        files[f"blobs/sha256/{sha(blob)[7:]}"] = blob
        descs.append({"mediaType": OCI_LAYER + suffix, "digest": sha(blob), "size": len(blob)})
    config = {"architecture": "amd64", "os": "linux",
              "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
              "rootfs": {"type": "layers", "diff_ids": [sha(raw) for _, _, raw in layers]}}
    config_bytes = json.dumps(config, sort_keys=True).encode()
    files[f"blobs/sha256/{sha(config_bytes)[7:]}"] = config_bytes
    state: dict[str, Any] = {
        "files": files, "config": config,
        "manifest": {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                     "config": {"mediaType": OCI_CONFIG, "digest": sha(config_bytes),
                                "size": len(config_bytes)},
                     "layers": descs},
    }
    state["manifest_bytes"] = None
    if tamper:
        tamper(state)
    mbytes = state["manifest_bytes"] or json.dumps(state["manifest"], sort_keys=True).encode()
    files[f"blobs/sha256/{sha(mbytes)[7:]}"] = mbytes
    index = state.get("index") or {
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": sha(mbytes), "size": len(mbytes),
                       "annotations": {"org.opencontainers.image.ref.name": "corpus:latest"}}]}
    files["index.json"] = json.dumps(index, sort_keys=True).encode()
    files["oci-layout"] = b'{"imageLayoutVersion": "1.0.0"}'
    return files


def archive(files: dict[str, bytes]) -> bytes:
    """An oci-archive of ``files``, trimmed after the end-of-archive marker (small in git)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        dirs = sorted({str(Path(p).parent) for p in files if "/" in p}
                      | {"blobs"})
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            t.addfile(info)
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(files[name]), 0o644, 0
            t.addfile(info, io.BytesIO(files[name]))
        end = t.offset
    return buf.getvalue()[:end] + bytes(1024)


def _index_of(state: dict[str, Any], manifests: list[dict[str, Any]]) -> None:
    state["index"] = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}


def _wrong_digest(state: dict[str, Any]) -> None:
    d = state["manifest"]["layers"][0]
    blob = state["files"].pop(f"blobs/sha256/{d['digest'][7:]}")
    d["digest"] = sha(b"something else")
    state["files"][f"blobs/sha256/{d['digest'][7:]}"] = blob


def _wrong_size(state: dict[str, Any]) -> None:
    state["manifest"]["layers"][0]["size"] += 1


def _garbage_manifest(state: dict[str, Any]) -> None:
    state["manifest_bytes"] = b"{this is not json"


def _empty_index(state: dict[str, Any]) -> None:
    _index_of(state, [])


def _missing_blob(state: dict[str, Any]) -> None:
    del state["files"][f"blobs/sha256/{state['manifest']['layers'][0]['digest'][7:]}"]


def _wrong_diff_id(state: dict[str, Any]) -> None:
    config = state["config"]
    config["rootfs"]["diff_ids"][0] = sha(b"another tar")
    old = state["manifest"]["config"]["digest"]
    del state["files"][f"blobs/sha256/{old[7:]}"]
    cbytes = json.dumps(config, sort_keys=True).encode()
    state["files"][f"blobs/sha256/{sha(cbytes)[7:]}"] = cbytes
    state["manifest"]["config"].update(digest=sha(cbytes), size=len(cbytes))


def _multi_platform(state: dict[str, Any]) -> None:
    """Index -> nested index with arm64 and amd64 manifests (amd64 is the real image)."""
    mbytes = json.dumps(state["manifest"], sort_keys=True).encode()
    other = dict(state["manifest"], annotations={"note": "arm64 twin"})
    obytes = json.dumps(other, sort_keys=True).encode()
    state["files"][f"blobs/sha256/{sha(obytes)[7:]}"] = obytes
    nested = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": sha(obytes), "size": len(obytes),
         "platform": {"os": "linux", "architecture": "arm64"}},
        {"mediaType": OCI_MANIFEST, "digest": sha(mbytes), "size": len(mbytes),
         "platform": {"os": "linux", "architecture": "amd64"}},
        {"mediaType": OCI_MANIFEST, "digest": sha(obytes), "size": len(obytes),
         "platform": {"os": "unknown", "architecture": "unknown"}}]}
    nbytes = json.dumps(nested, sort_keys=True).encode()
    state["files"][f"blobs/sha256/{sha(nbytes)[7:]}"] = nbytes
    _index_of(state, [{"mediaType": OCI_INDEX, "digest": sha(nbytes), "size": len(nbytes),
                       "annotations": {"org.opencontainers.image.ref.name":
                                       "example.com/multi:1.0"}}])


_BASE = [("dir", "etc"), ("file", "etc/os-release", b"ID=corpus\n")]
_TRUNC_TAR = tar([("file", "big", bytes(range(256)) * 40)])
_TRUNC_GZ = gz(tar([("file", "big", bytes(range(256)) * 400)]))

CASES: dict[str, tuple[str, Callable[[], dict[str, bytes]]]] = {
    "dotdot": ("an entry named ../escape",
               lambda: layout([layer([*_BASE, ("file", "../escape", b"x")])])),
    "absolute": ("an entry with an absolute path /etc/evil",
                 lambda: layout([layer([*_BASE, ("file", "/etc/evil", b"x")])])),
    "symlink-same-layer": ("a symlink to /tmp, then a file written through it, one layer",
                           lambda: layout([layer([*_BASE, ("symlink", "link", "/tmp"),  # noqa: S108
                                                  ("file", "link/evil", b"x")])])),
    "symlink-two-layers": ("layer 1 places link -> /, layer 2 writes link/evil",
                           lambda: layout([layer([*_BASE, ("symlink", "link", "/")]),
                                           layer([("file", "link/evil", b"x")])])),
    "hardlink-outside": ("a hardlink to ../../../etc/passwd",
                         lambda: layout([layer([*_BASE,
                                                ("hardlink", "pw", "../../../etc/passwd")])])),
    "hardlink-through-symlink": ("link -> /etc, then a hardlink to link/passwd",
                                 lambda: layout([layer([*_BASE, ("symlink", "link", "/etc"),
                                                        ("hardlink", "pw", "link/passwd")])])),
    "device-node": ("a character device dev/evil (skipped, counted)",
                    lambda: layout([layer([*_BASE, ("dir", "dev"), ("char", "dev/evil")])])),
    "setuid": ("a setuid root shell bin/su 04755 and a setgid dir (stripped, counted)",
               lambda: layout([layer([*_BASE, ("dir", "bin"),
                                      ("file", "bin/su", b"#!/bin/sh\n", {"mode": 0o4755}),
                                      ("dir", "shared", {"mode": 0o2775})])])),
    "foreign-owner": ("files owned by 1000:1000 and 0:42 (owned by the user, counted)",
                      lambda: layout([layer([*_BASE,
                                             ("file", "home", b"x", {"uid": 1000, "gid": 1000}),
                                             ("file", "shadow", b"x", {"gid": 42})])])),
    "gzip-bomb": ("a 4 MiB file of zeros in a few kB of gzip",
                  lambda: layout([layer([("zeros", "zeros", 4 << 20)])])),
    "zstd-bomb": ("100 MiB of zeros in a few kB of zstd: ratio above 1024:1",
                  lambda: layout([layer([("zeros", "zeros", 100 << 20)], "zstd")])),
    "truncated-gzip": ("a gzip layer cut in the middle (descriptor matches the cut blob)",
                       lambda: layout([(_TRUNC_GZ[:len(_TRUNC_GZ) // 2], "+gzip",
                                        tar([("file", "big", bytes(range(256)) * 400)]))])),
    "truncated-tar": ("an uncompressed layer cut inside a file's data",
                      lambda: layout([(_TRUNC_TAR[:2048], "", _TRUNC_TAR)])),
    "wrong-digest": ("a layer whose content does not hash to its descriptor's digest",
                     lambda: layout([layer(_BASE)], tamper=_wrong_digest)),
    "wrong-size": ("a layer descriptor one byte longer than the blob",
                   lambda: layout([layer(_BASE)], tamper=_wrong_size)),
    "wrong-diff-id": ("a layer whose uncompressed content is not the config's diff_id",
                      lambda: layout([layer(_BASE)], tamper=_wrong_diff_id)),
    "unknown-compression": ("a layer blob that is neither tar, gzip nor zstd",
                            lambda: layout([(b"PK\x03\x04 this is a zip, not a layer" * 20, "",
                                             b"")])),
    "garbage-manifest": ("a manifest blob that is not JSON",
                         lambda: layout([layer(_BASE)], tamper=_garbage_manifest)),
    "empty-index": ("an index.json with no manifests",
                    lambda: layout([layer(_BASE)], tamper=_empty_index)),
    "missing-blob": ("a layout whose layer blob is absent",
                     lambda: layout([layer(_BASE)], tamper=_missing_blob)),
    "long-name": ("an entry whose name has a 300-byte component",
                  lambda: layout([layer([*_BASE, ("file", "a" * 300, b"x")])])),
    "whiteouts": ("layer 1: a/keep a/gone b/old b/sub/deep; layer 2: a/.wh.gone, "
                  "b/.wh..wh..opq, b/new, c/.wh.absent",
                  lambda: layout([
                      layer([*_BASE, ("dir", "a"), ("file", "a/keep", b"keep"),
                             ("file", "a/gone", b"gone"), ("dir", "b"),
                             ("file", "b/old", b"old"), ("dir", "b/sub"),
                             ("file", "b/sub/deep", b"deep")]),
                      layer([("dir", "a"), ("file", "a/.wh.gone", b""), ("dir", "b"),
                             ("file", "b/new", b"new"), ("file", "b/.wh..wh..opq", b""),
                             ("file", "c/.wh.absent", b"")])])),
    "zstd-layer": ("a valid zstd layer, and a gzip one above it",
                   lambda: layout([layer([*_BASE, ("file", "etc/zstd", b"zstd\n")], "zstd"),
                                   layer([("file", "etc/gzip", b"gzip\n")])])),
    "multi-platform": ("an index -> nested index of arm64, amd64 and attestation manifests",
                       lambda: layout([layer(_BASE)], tamper=_multi_platform)),
    "readonly-dirs": ("directories of mode 0555 and 0000 holding files (kept, still removable)",
                      lambda: layout([layer([*_BASE, ("dir", "ro", {"mode": 0o555}),
                                             ("file", "ro/f", b"ro\n"),
                                             ("dir", "locked", {"mode": 0o000}),
                                             ("file", "locked/f", b"locked\n", {"mode": 0o400})
                                             ])])),
    "symlinked-mountpoints": ("/etc/resolv.conf and /run are symlinks in the image "
                              "(recorded, not replaced)",
                              lambda: layout([layer([*_BASE,
                                                     ("symlink", "etc/resolv.conf",
                                                      "../run/systemd/resolve/stub.conf"),
                                                     ("symlink", "run", "var/run")])])),
}


def main(argv: list[str]) -> int:
    dest = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent
    dest.mkdir(parents=True, exist_ok=True)
    for name, (_, make) in CASES.items():
        (dest / f"{name}.tar").write_bytes(archive(make()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
