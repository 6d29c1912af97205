"""Docker command-line benchmarks, in one run on one machine (issue 16):

- `ps -a` over 200 containers, secpod vs podman. podman's are made with `create` (not
  started: podman keeps them in its database, with no process). secpod's `create` hands
  each container to a conmon that holds it, two processes per container, and this host
  refuses the ~200th (the kernel key quota: crun gives each a session keyring, 200
  keys per user by default; `secpod doctor` shows it); so secpod's 200 are run and exited
  (`run --name cN IMAGE /bin/true`), which leaves no process: `ps -a` reads each record
  and asks crun once for the states of all;
- `inspect` of one of them (exited; podman's: created), secpod vs podman, and of a
  running container (`run -d ... sleep`, one more each, made after the `ps` runs);
- CLI start-up (`secpod --version`), and `secpod ps -a --format '{{.Names}}'`.

Goals: at most 0.5x podman's time; `ps` under 100 ms; start-up under 60 ms.

Each pair is timed in alternating rounds (secpod, podman, podman, secpod, ...; RUNS runs
of each in all, `BENCH_RUNS`, 40 by default) and each median is over all of a tool's
runs: the machine is shared, and a burst of other work then falls on both tools rather
than on one block of runs.
Run through `scripts/bench.sh cli` (as root; it drops to the test user, in a private
mount namespace without the cgroup v2 mount, as the tests run). Uses hyperfine and
prints medians and ratios as a markdown table.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common  # noqa: E402  (bench/ is sys.path[0] when a script runs)

from secpod.images.build import busybox_rootfs, write_layout  # noqa: E402

HOME = Path(os.environ["HOME"])
RUNS = int(os.environ.get("BENCH_RUNS", "40"))
ROUNDS = 4
COUNT = int(os.environ.get("BENCH_CONTAINERS", "200"))
PODMAN = ["podman", "--cgroup-manager=cgroupfs"]


def sh(*argv: str) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(argv, check=False, text=True, capture_output=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(argv)}: exit {r.returncode}: {r.stderr}")
    return r


def paired(name: str, ours: str, theirs: str) -> tuple[str, float, float]:
    """``name`` and the median seconds of ``ours`` and of ``theirs`` over RUNS runs each,
    in ROUNDS alternating rounds (no shell in between; three warm-up runs a round)."""
    times: tuple[list[float], list[float]] = ([], [])
    for r in range(ROUNDS):
        for which in ((0, 1) if r % 2 == 0 else (1, 0)):
            slug = "".join(c if c.isalnum() else "-" for c in name)
            out = HOME / f"hf-{slug}-{which}-{r}.json"
            _common.hyperfine(out, (ours, theirs)[which], runs=max(RUNS // ROUNDS, 3))
            times[which].extend(json.loads(out.read_text())["results"][0]["times"])
    return name, statistics.median(times[0]), statistics.median(times[1])


def _load() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main() -> None:
    layout = HOME / "layout"
    busybox_rootfs(HOME / "rootfs")
    write_layout(HOME / "rootfs", layout, cmd=["/bin/true"])
    sh("secpod", "image", "import", str(layout), "--name", "bench/busybox:1")
    sh(*PODMAN, "pull", "-q", f"oci:{layout}")
    podman_image = "localhost" + str(layout)
    for i in range(COUNT):
        sh("secpod", "run", "--name", f"c{i}", "bench/busybox:1", "/bin/true")
        sh(*PODMAN, "create", "--network=none", "--name", f"c{i}", podman_image, "/bin/true")
    assert len(sh("secpod", "ps", "-a", "-q").stdout.split()) == COUNT
    assert len(sh(*PODMAN, "ps", "-a", "-q").stdout.split()) == COUNT
    one = f"c{COUNT // 2}"
    before = _load()
    podman = " ".join(PODMAN)
    pairs = [
        paired(f"ps -a ({COUNT} containers)", "secpod ps -a", f"{podman} ps -a"),
        paired(f"ps -a --format '{{{{.Names}}}}' ({COUNT})",
               "secpod ps -a --format {{.Names}}", f"{podman} ps -a --format {{{{.Names}}}}"),
        paired("inspect (one exited container)", f"secpod inspect {one}",
               f"{podman} inspect {one}"),
    ]
    sh("secpod", "run", "-d", "--name", "live", "bench/busybox:1", "sleep", "100000")
    sh(*PODMAN, "run", "-d", "--network=none", "--name", "live", podman_image, "sleep",
       "100000")
    assert "running" in sh("secpod", "inspect", "--format", "{{.State.Status}}", "live").stdout
    pairs += [
        paired("inspect (one running container)", "secpod inspect live",
               f"{podman} inspect live"),
        paired("--version (start-up)", "secpod --version", "podman --version"),
    ]
    after = _load()
    print("| command | secpod | podman 4.3.1 | ratio |")
    print("|---|---:|---:|---:|")
    for name, ours, theirs in pairs:
        print(f"| {name} | {ours * 1000:.1f} ms | {theirs * 1000:.1f} ms | "
              f"{ours / theirs:.2f} × podman |")
    print(f"\nload average (1, 5, 15 min) before: {before}; after: {after}")
    sh("secpod", "rm", "-f", "live", *(f"c{i}" for i in range(COUNT)))
    sh(*PODMAN, "rm", "-f", "-a")


if __name__ == "__main__":
    main()
