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
Run through `scripts/bench.sh cli` (as root; it drops to the test user, in a private
mount namespace without the cgroup v2 mount, as the tests run). Uses hyperfine and
prints medians and ratios as a markdown table.
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
RUNS = int(os.environ.get("BENCH_RUNS", "20"))
COUNT = int(os.environ.get("BENCH_CONTAINERS", "200"))
PODMAN = ["podman", "--cgroup-manager=cgroupfs"]


def sh(*argv: str) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(argv, check=False, text=True, capture_output=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(argv)}: exit {r.returncode}: {r.stderr}")
    return r


def hyperfine(name: str, command: str, runs: int = RUNS) -> float:
    """Median seconds of ``command`` over ``runs`` runs (no shell in between)."""
    return _common.hyperfine(HOME / f"hf-{name}.json", command, runs=runs)


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
    pairs = [
        (f"ps -a ({COUNT} containers)", hyperfine("secpod-ps", "secpod ps -a"),
         hyperfine("podman-ps", " ".join(PODMAN) + " ps -a")),
        (f"ps -a --format '{{{{.Names}}}}' ({COUNT})",
         hyperfine("secpod-psf", "secpod ps -a --format {{.Names}}"),
         hyperfine("podman-psf", " ".join(PODMAN) + " ps -a --format {{.Names}}")),
        ("inspect (one exited container)",
         hyperfine("secpod-inspect", f"secpod inspect {one}"),
         hyperfine("podman-inspect", " ".join(PODMAN) + f" inspect {one}")),
    ]
    sh("secpod", "run", "-d", "--name", "live", "bench/busybox:1", "sleep", "100000")
    sh(*PODMAN, "run", "-d", "--network=none", "--name", "live", podman_image, "sleep",
       "100000")
    assert "running" in sh("secpod", "inspect", "--format", "{{.State.Status}}", "live").stdout
    pairs += [
        ("inspect (one running container)",
         hyperfine("secpod-inspect-live", "secpod inspect live"),
         hyperfine("podman-inspect-live", " ".join(PODMAN) + " inspect live")),
        ("--version (start-up)", hyperfine("secpod-version", "secpod --version"),
         hyperfine("podman-version", "podman --version")),
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
