"""Import of a real distribution image against ``umoci unpack --rootless`` (issue 13).

Run by ``scripts/bench.sh import``, which makes the root filesystem tar with
``mmdebstrap --variant=minbase --format=tar bookworm`` as root and passes it here.
As the unprivileged user this script gzips it into a one-layer OCI layout (as a
registry's Debian image is), then times with hyperfine:

- ``secpod image import LAYOUT`` (owners kept through the user namespace), the image
  removed before each run (``image rm -f``: the blobs go too, so every run copies them);
- ``umoci unpack --rootless`` of the same layout;
- ``secpod image import --rootfs`` of the plain tar and of the gzip tar.

Prints a markdown table with the medians, the ratios and the load average.
"""

from __future__ import annotations

import gzip
import os
import shutil
import sys
import time
from pathlib import Path

from _common import hyperfine

from secpod.images.build import write_layout

HOME = Path(os.environ["HOME"])
RUNS = 5


def _load() -> str:
    return Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__()


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
    print(f"\nruns per timing: {RUNS}; load average before {load_before}, after {load_after}; "
          f"host: {os.uname().release}, {os.cpu_count()} cores; {time.strftime('%Y-%m-%d')}")


if __name__ == "__main__":
    main()
