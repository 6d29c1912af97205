"""The strict run path against Podman and bare crun, alternated (issue 18).

Each round runs, in turn and in a rotating order, `secpod run --rm --profile strict`,
`podman run --rm --network=none` of the same image (rootless, its pause process alive
after a warm-up run, as a Podman user has it), bare `crun run` of the bundle secpod
builds, and `secpod run --rm` with the default profile, of busybox and of a 500 MB image
(busybox and 500 MiB of files; issue 13: its run within 20 ms of busybox's). Alternating in
one run spreads whatever else the machine does over all of them. Prints, per run, the
medians, the ratios the issues set goals for, and the load average before and after.

Run through scripts/bench.sh (as root; it drops to the test user):

    scripts/bench.sh strict [--pairs 15] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from runner_bench import HOME, bare_crun_bundle, setup_image  # noqa: E402


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def big_image() -> str:
    """busybox's tree and 500 MiB of files, imported as one layer (``--rootfs``)."""
    root = HOME / "big-rootfs"
    if not root.exists():
        shutil.copytree(HOME / "rootfs", root, symlinks=True)
        data = root / "data"
        data.mkdir()
        for i in range(5):
            with open(data / f"blob-{i}", "wb") as f:
                for _ in range(100):
                    f.write(os.urandom(1 << 20))
    subprocess.run(["secpod", "image", "import", "--rootfs", "--name", "bench/big:1", str(root)],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return "bench/big:1"


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=15, help="rounds per run (default 15)")
    ap.add_argument("--runs", type=int, default=3, help="runs (default 3)")
    opts = ap.parse_args()
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(mode=0o700, parents=True, exist_ok=True)
    layout = setup_image()
    bundle = bare_crun_bundle()
    crun_root = HOME / "crun-bare"
    crun_root.mkdir(exist_ok=True)
    pulled = subprocess.run(["podman", "--cgroup-manager=cgroupfs", "pull", "-q", f"oci:{layout}"],
                            text=True, capture_output=True, check=False)
    if pulled.returncode != 0:
        raise SystemExit(f"podman pull failed: {pulled.stderr}")
    podman_image = "localhost" + str(layout)
    commands = {
        "strict": ["secpod", "run", "--rm", "--profile", "strict", "bench/busybox:1", "/bin/true"],
        "podman": ["podman", "--cgroup-manager=cgroupfs", "run", "--rm", "--network=none",
                   podman_image, "/bin/true"],
        "crun": ["crun", f"--root={crun_root}", "--cgroup-manager=disabled", "run",
                 "--bundle", str(bundle), "bench-bare"],
        "default": ["secpod", "run", "--rm", "bench/busybox:1", "/bin/true"],
        "big": ["secpod", "run", "--rm", big_image(), "/bin/true"],
    }
    for argv in commands.values():  # warm-up: caches, podman's pause process
        for _ in range(3):
            timed(argv)
    names = list(commands)
    print("| run | load before | strict | podman | bare crun | default | default, 500 MB "
          "| strict / podman | strict / crun | default / strict | default / podman "
          "| 500 MB − busybox | load after |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for run in range(1, opts.runs + 1):
        before = load()
        times: dict[str, list[float]] = {n: [] for n in names}
        for i in range(opts.pairs):
            order = names[i % len(names):] + names[:i % len(names)]
            for n in order:
                times[n].append(timed(commands[n]))
        med = {n: statistics.median(v) for n, v in times.items()}
        print(f"| {run} | {before} | {med['strict'] * 1e3:.1f} ms | {med['podman'] * 1e3:.1f} ms "
              f"| {med['crun'] * 1e3:.1f} ms | {med['default'] * 1e3:.1f} ms "
              f"| {med['big'] * 1e3:.1f} ms "
              f"| {med['strict'] / med['podman']:.2f} | {med['strict'] / med['crun']:.2f} "
              f"| {med['default'] / med['strict']:.2f} | {med['default'] / med['podman']:.2f} "
              f"| {(med['big'] - med['default']) * 1e3:+.1f} ms | {load()} |", flush=True)
    print(f"\n{opts.pairs} rounds per run; host {os.uname().release}, {os.cpu_count()} cores; "
          f"{time.strftime('%Y-%m-%d %H:%M')}")


if __name__ == "__main__":
    main()
