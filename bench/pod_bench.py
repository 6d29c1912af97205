"""Pod benchmark, in one run on one machine (issue 14): `pod create` and two members
started (`run -d --pod`), secpod against podman 4.3.1 doing the same, on the same
busybox image. Goal: at most 0.5x podman's time.

Each run begins with no pod (hyperfine's prepare removes the last one, untimed). Neither
publishes a port: rootless podman's pod network needs slirp4netns or pasta, which need
/dev/net/tun, root-only on this host (secpod doctor says so), so podman's pod has
`--network none`; secpod's pod has its own loopback-only network, as always. Run through
`scripts/bench.sh pods` (as root; it drops to the test user, in a private mount
namespace without the cgroup v2 mount, as the tests run). Prints a markdown table.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common  # noqa: E402  (bench/ is sys.path[0] when a script runs)

from secpod.images.build import busybox_rootfs, write_layout  # noqa: E402

HOME = Path(os.environ["HOME"])
RUNS = int(os.environ.get("BENCH_RUNS", "10"))
PODMAN = "podman --cgroup-manager=cgroupfs"


def sh(*argv: str) -> None:
    r = subprocess.run(argv, check=False, text=True, capture_output=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(argv)}: exit {r.returncode}: {r.stderr}")


def main() -> None:
    layout = HOME / "layout"
    busybox_rootfs(HOME / "rootfs")
    write_layout(HOME / "rootfs", layout, cmd=["/bin/sleep", "600"])
    sh("secpod", "image", "import", str(layout), "--name", "bench/busybox:1")
    sh(*PODMAN.split(), "pull", "-q", f"oci:{layout}")
    image = "localhost" + str(layout)
    ours = ("secpod pod create --name bp >/dev/null && "
            "secpod run -d --pod bp --name bp-a bench/busybox:1 sleep 600 >/dev/null && "
            "secpod run -d --pod bp --name bp-b bench/busybox:1 sleep 600 >/dev/null")
    theirs = (f"{PODMAN} pod create --network none --name bp >/dev/null && "
              f"{PODMAN} run -d --pod bp --name bp-a {image} sleep 600 >/dev/null && "
              f"{PODMAN} run -d --pod bp --name bp-b {image} sleep 600 >/dev/null")
    t_ours = _common.hyperfine(HOME / "hf-secpod-pod.json", ours, runs=RUNS,
                               prepare="secpod pod rm -f -i bp >/dev/null")
    t_theirs = _common.hyperfine(HOME / "hf-podman-pod.json", theirs, runs=RUNS,
                                 prepare=f"{PODMAN} pod rm -f -i bp >/dev/null")
    sh("secpod", "pod", "rm", "-f", "-i", "bp")
    sh(*PODMAN.split(), "pod", "rm", "-f", "-i", "bp")
    print("| pod create + 2 members started | secpod | podman 4.3.1 | ratio |")
    print("|---|---:|---:|---:|")
    print(f"| median of {RUNS} | {t_ours * 1000:.0f} ms | {t_theirs * 1000:.0f} ms | "
          f"{t_ours / t_theirs:.2f} × podman |")


if __name__ == "__main__":
    main()
