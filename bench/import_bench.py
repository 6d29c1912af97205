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

The import against umoci is timed in alternated pairs (``--pairs N``, default 8; the
order swapped every pair), each run after ``sync`` and 3 s of rest with the blob read
into the page cache: on this machine's disk the previous run's 170 MB are still being
written back otherwise, and that, not the tool, decides the time. Both run as the user,
so both read the blob from the cache and write to the same disk.

Prints a markdown table with the medians, the ratios and the load average.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import statistics
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


def _timed(command: str, prepare: str, blob_dir: Path) -> float:
    """Seconds of one run of ``command`` (a shell command), after ``prepare``, a
    ``sync``, the blobs read and 3 s of rest."""
    subprocess.run(prepare, shell=True, check=True)
    os.sync()
    for b in blob_dir.iterdir():
        b.read_bytes()
    time.sleep(3)
    t0 = time.perf_counter()
    subprocess.run(command, shell=True, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def _pairs(n: int, a: tuple[str, str], b: tuple[str, str], blob_dir: Path,
           ) -> tuple[list[float], list[float]]:
    """``n`` alternated pairs of (command, prepare) ``a`` and ``b``, the order swapped
    every pair: the times of each."""
    ta: list[float] = []
    tb: list[float] = []
    for i in range(n):
        for which in ((a, ta), (b, tb)) if i % 2 == 0 else ((b, tb), (a, ta)):
            (command, prepare), out = which
            out.append(_timed(command, prepare, blob_dir))
    return ta, tb


def main() -> None:
    tar = Path(sys.argv[1])
    pairs = int(sys.argv[sys.argv.index("--pairs") + 1]) if "--pairs" in sys.argv else 8
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
    out = work / "umoci-bundle"
    imp_runs, umoci_runs = _pairs(
        pairs, (f"{env} secpod image import {layout} --name bench/debian:1", rm),
        (f"umoci unpack --rootless --image {layout}:latest {out}",
         f"chmod -R u+rwX {out} 2>/dev/null; rm -rf {out}"), layout / "blobs" / "sha256")
    imp, umoci = statistics.median(imp_runs), statistics.median(umoci_runs)
    ratios = sorted(x / y for x, y in zip(imp_runs, umoci_runs, strict=True))
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
    print(f"| each pair's import / umoci, sorted ({pairs} pairs) | | "
          + " ".join(f"{r:.2f}" for r in ratios) + " |")
    print(f"| `secpod image import --rootfs` of the plain tar | {rootfs_tar:.2f} s | "
          f"{rootfs_tar / umoci:.2f} × umoci |")
    print(f"| `secpod image import --rootfs` of the gzip tar | {rootfs_tgz:.2f} s | "
          f"{rootfs_tgz / umoci:.2f} × umoci |")
    print(f"| `secpod image import` of a second image on that base (one more small layer), "
          f"the first in the store | {second_s:.2f} s (one run) | |")
    print(f"\n```\n$ secpod system df -v\n{df.strip()}\n```")
    print(f"\nimport and umoci: {pairs} alternated pairs, medians (secpod "
          + " ".join(f"{x:.2f}" for x in imp_runs) + " s; umoci "
          + " ".join(f"{x:.2f}" for x in umoci_runs) + " s)")
    print(f"\nruns per other timing: {RUNS}; load average before {load_before}, after {load_after}; "
          f"host: {os.uname().release}, {os.cpu_count()} cores; {time.strftime('%Y-%m-%d')}")


if __name__ == "__main__":
    main()
