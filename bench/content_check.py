"""What the content check (issue 10) adds to a strict run: Store.check_content, timed.

Imports into a scratch store (XDG_DATA_HOME in a temp folder) a rootfs folder of the
given size (``--mb``, many files of a few sizes, like a distribution image) and, with
``--layout``, an OCI layout (the busybox image the suite builds), then times the check
``--runs`` times each and prints the medians in milliseconds.

    python3 bench/content_check.py --mb 200 [--layout PATH] [--rootfs DIR] [--runs 21]

``--rootfs DIR`` also imports a real root filesystem folder, for example a Debian one
made by ``mmdebstrap --variant=apt --include=nginx-light,python3 --format=directory
bookworm DIR``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _make_rootfs(root: Path, mb: int) -> None:
    sizes = [200, 2_000, 20_000, 200_000]
    total, i = 0, 0
    while total < mb * 1_000_000:
        d = root / "usr" / "lib" / f"d{i // 100:04d}"
        d.mkdir(parents=True, exist_ok=True)
        n = sizes[i % len(sizes)]
        (d / f"f{i:06d}").write_bytes(os.urandom(n))
        total += n
        i += 1
    (root / "etc").mkdir(exist_ok=True)


def _time(store, image, runs: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        store.check_content(image, "bench")
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--layout", type=Path)
    ap.add_argument("--rootfs", type=Path, help="a real root filesystem folder to import too")
    ap.add_argument("--runs", type=int, default=21)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="secpod-bench-") as tmp:
        os.environ["XDG_DATA_HOME"] = str(Path(tmp) / "data")
        from secpod.images import Store

        store = Store.open()
        src = Path(tmp) / "src"
        _make_rootfs(src, args.mb)
        big = store.import_path(src, name=f"bench/big:{args.mb}mb", rootfs=True)
        lines = (Path(big.rootfs).parent / "tree").read_bytes().count(b"\n")
        print(f"{args.mb} MB rootfs ({lines} entries): check_content median "
              f"{_time(store, big, args.runs):.2f} ms")
        if args.rootfs:
            real = store.import_path(args.rootfs, name="bench/real:1", rootfs=True)
            lines = (Path(real.rootfs).parent / "tree").read_bytes().count(b"\n")
            print(f"{args.rootfs} ({lines} entries): check_content median "
                  f"{_time(store, real, args.runs):.2f} ms")
        if args.layout:
            small = store.import_path(args.layout, name="bench/busybox:1")
            lines = (Path(small.rootfs).parent / "tree").read_bytes().count(b"\n")
            print(f"busybox ({lines} entries): check_content median "
                  f"{_time(store, small, args.runs):.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
