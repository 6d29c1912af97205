"""Import of a real distribution image against ``umoci unpack --rootless`` (issue 13).

Run by ``scripts/bench.sh import``, which makes the root filesystem tar with
``mmdebstrap --variant=minbase --format=tar bookworm`` as root and passes it here.
As the unprivileged user this script gzips it into a one-layer OCI layout (as a
registry's Debian image is), then times with hyperfine:

- ``secpod image import LAYOUT`` (owners kept through the user namespace), the image
  removed before each run (``image rm -f``: the blobs go too, so every run copies them);
- ``umoci unpack --rootless`` of the same layout;
- ``secpod image import --rootfs`` of the plain tar and of the gzip tar;
- two images sharing a base (docs/adr/0010-shared-layers.md): the Debian image, then an
  image of its layer and one small layer more, imported with the first in the store;
  what ``secpod system df -v`` says they take and save.

Prints a markdown table with the medians, the ratios and the load average.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from _common import hyperfine

from secpod.images.build import write_layout

HOME = Path(os.environ["HOME"])
RUNS = 5


def _load() -> str:
    return Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__()


def _second_layout(layout: Path, dest: Path) -> None:
    """An OCI layout of ``layout``'s image with one more layer (a file /etc/second)."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(layout, dest)
    blobs = dest / "blobs" / "sha256"
    buf = io.BytesIO()
    data = b"second image\n"
    with tarfile.open(fileobj=buf, mode="w") as t:
        info = tarfile.TarInfo("etc/second")
        info.size, info.mode = len(data), 0o644
        t.addfile(info, io.BytesIO(data))
    layer = buf.getvalue()

    def put(data: bytes) -> str:
        hexd = hashlib.sha256(data).hexdigest()
        (blobs / hexd).write_bytes(data)
        return "sha256:" + hexd

    index = json.loads((dest / "index.json").read_text())
    mdesc = index["manifests"][0]
    manifest = json.loads((blobs / mdesc["digest"][7:]).read_bytes())
    config = json.loads((blobs / manifest["config"]["digest"][7:]).read_bytes())
    config["rootfs"]["diff_ids"].append(put(layer))
    manifest["layers"].append({"mediaType": "application/vnd.oci.image.layer.v1.tar",
                               "digest": "sha256:" + hashlib.sha256(layer).hexdigest(),
                               "size": len(layer)})
    cbytes = json.dumps(config).encode()
    manifest["config"].update(digest=put(cbytes), size=len(cbytes))
    mbytes = json.dumps(manifest).encode()
    mdesc.update(digest=put(mbytes), size=len(mbytes))
    (dest / "index.json").write_text(json.dumps(index))


def main() -> None:
    tar = Path(sys.argv[1])
    work = HOME / "import-bench"
    work.mkdir(exist_ok=True)
    tgz = work / "debian.tar.gz"
    with open(tar, "rb") as src, gzip.open(tgz, "wb", compresslevel=6) as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    layout = work / "layout"
    if layout.exists():
        shutil.rmtree(layout)
    write_layout(tgz, layout, tag="latest")
    store = work / "data"
    env = f"env XDG_DATA_HOME={store}"
    rm = f"{env} secpod image rm -f bench/debian:1 >/dev/null 2>&1; true"
    load_before = _load()
    imp = hyperfine(work / "import.json", f"{env} secpod image import {layout} --name "
                    "bench/debian:1", prepare=rm, runs=RUNS)
    out = work / "umoci-bundle"
    umoci = hyperfine(work / "umoci.json", f"umoci unpack --rootless --image {layout}:latest "
                      f"{out}", prepare=f"chmod -R u+rwX {out} 2>/dev/null; rm -rf {out}",
                      runs=RUNS)
    rootfs_tar = hyperfine(work / "rootfs-tar.json", f"{env} secpod image import --rootfs "
                           f"{tar} --name bench/debian:1", prepare=rm, runs=RUNS)
    rootfs_tgz = hyperfine(work / "rootfs-tgz.json", f"{env} secpod image import --rootfs "
                           f"{tgz} --name bench/debian:1", prepare=rm, runs=RUNS)
    # Two images sharing a base: the second imported with the first in the store.
    second = work / "layout-second"
    _second_layout(layout, second)
    secpod = f"{env} secpod"
    subprocess.run(f"{rm}; {secpod} image import {layout} --name bench/debian:1 >/dev/null "
                   "2>&1", shell=True, check=True)
    t0 = time.perf_counter()
    subprocess.run(f"{secpod} image import {second} --name bench/debian:2 >/dev/null 2>&1",
                   shell=True, check=True)
    second_s = time.perf_counter() - t0
    df = subprocess.run(f"{secpod} system df -v", shell=True, check=True, capture_output=True,
                        text=True).stdout
    load_after = _load()
    print("| measurement | median | ratio |")
    print("|---|---:|---:|")
    print(f"| `secpod image import` of the layout ({tgz.stat().st_size / 1e6:.0f} MB gzip, "
          f"{tar.stat().st_size / 1e6:.0f} MB tar) | {imp:.2f} s | {imp / umoci:.2f} × umoci |")
    print(f"| `umoci unpack --rootless` (same layout) | {umoci:.2f} s | 1.00 |")
    print(f"| `secpod image import --rootfs` of the plain tar | {rootfs_tar:.2f} s | "
          f"{rootfs_tar / umoci:.2f} × umoci |")
    print(f"| `secpod image import --rootfs` of the gzip tar | {rootfs_tgz:.2f} s | "
          f"{rootfs_tgz / umoci:.2f} × umoci |")
    print(f"| `secpod image import` of a second image on that base (one more small layer), "
          f"the first in the store | {second_s:.2f} s (one run) | |")
    print(f"\n```\n$ secpod system df -v\n{df.strip()}\n```")
    print(f"\nruns per timing: {RUNS}; load average before {load_before}, after {load_after}; "
          f"host: {os.uname().release}, {os.cpu_count()} cores; {time.strftime('%Y-%m-%d')}")


if __name__ == "__main__":
    main()
