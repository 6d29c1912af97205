"""Runner benchmarks, in one run on one machine (issue 2):

- `secpod run --rm --profile strict IMAGE /bin/true` vs bare `crun run` of the same
  bundle vs `podman run --rm` of the same image (rootless, same arrangement);
- import of a ~100 MB image vs `umoci unpack --rootless`;
- CLI start-up (`secpod --version`);
- resident memory of a `-d` container's monitor (conmon).

Run through scripts/bench.sh (as root; it drops to the test user);
`scripts/bench.sh --instructions` prints only a strict run's instruction count. Uses hyperfine
for timings and prints medians and ratios as a markdown table.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common  # noqa: E402  (bench/ is sys.path[0] when a script runs)

from secpod.images.build import busybox_rootfs, write_layout  # noqa: E402

HOME = Path(os.environ["HOME"])
RUNS = int(os.environ.get("BENCH_RUNS", "20"))


def sh(*argv: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=True, text=True, capture_output=True, **kw)  # type: ignore[call-overload]


def hyperfine(name: str, command: str, *, prepare: str | None = None, runs: int = RUNS) -> float:
    """Median seconds of ``command`` over ``runs`` runs."""
    return _common.hyperfine(HOME / f"hf-{name}.json", command, runs=runs, prepare=prepare)


def setup_image() -> Path:
    layout = HOME / "layout"
    busybox_rootfs(HOME / "rootfs")
    write_layout(HOME / "rootfs", layout, cmd=["/bin/true"])
    sh("secpod", "image", "import", str(layout), "--name", "bench/busybox:1")
    sh("secpod", "key", "generate", "--output-key-prefix", str(HOME / "bench"))
    sh("secpod", "sign", "bench/busybox:1", "--key", str(HOME / "bench.key"))
    sh(
        "secpod",
        "trust",
        "set",
        "--type",
        "sigstoreSigned",
        "--pubkeysfile",
        str(HOME / "bench.pub"),
        "docker.io/bench/busybox",
    )
    return layout


def bare_crun_bundle() -> Path:
    """The bundle secpod builds for strict, copied out to run with bare crun."""
    cid = sh(
        "secpod", "create", "--profile", "strict", "bench/busybox:1", "/bin/true"
    ).stdout.strip()
    info = json.loads(sh("secpod", "inspect", cid).stdout)[0]["Secpod"]
    bundle = HOME / "bare-bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps(info["config"]))
    shutil.copytree(Path(info["bundle"]).parent / "userdata", HOME / "userdata-copy")
    config = info["config"]
    for m in config["mounts"]:
        if m["source"].endswith(("/hosts", "/resolv.conf", "/hostname")):
            m["source"] = str(HOME / "userdata-copy" / Path(m["source"]).name)
    (bundle / "config.json").write_text(json.dumps(config))
    sh("secpod", "rm", cid)
    return bundle


def monitor_rss() -> int:
    cid = sh("secpod", "run", "-d", "bench/busybox:1", "sleep", "60").stdout.strip()
    info = json.loads(sh("secpod", "inspect", cid).stdout)[0]["Secpod"]
    rss = _common.rss_kb(info["monitor_pid"])
    sh("secpod", "rm", "-f", cid)
    return rss


def big_layout() -> Path:
    """A ~100 MB image: incompressible data in a few files, plus busybox."""
    root = HOME / "big-rootfs"
    busybox_rootfs(root)
    data = root / "data"
    data.mkdir()
    for i in range(10):
        (data / f"blob{i}").write_bytes(os.urandom(10 * 1024 * 1024))
    layout = HOME / "big-layout"
    write_layout(root, layout)
    shutil.rmtree(root)
    return layout


def instructions() -> None:
    """The instruction count (callgrind) of one strict ``run --rm`` process.

    Counts are the same from run to run whatever else the machine does, so they judge a
    change where timings cannot (docs/BENCHMARKS.md). Only the secpod process is counted
    (valgrind does not follow crun, conmon or newuidmap). One warm-up run fills the
    caches a user's second run finds.
    """
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(mode=0o700, parents=True, exist_ok=True)
    setup_image()
    argv = ["secpod", "run", "--rm", "--profile", "strict", "bench/busybox:1", "/bin/true"]
    sh(*argv)
    counts = []
    for _ in range(3):
        out = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                              *[shutil.which(argv[0]) or argv[0], *argv[1:]]],
                             capture_output=True, text=True, check=True)
        line = next(x for x in out.stderr.splitlines() if "Collected :" in x)
        counts.append(int(line.split(":")[1]))
    print(f"strict run --rm: {min(counts) / 1e6:.1f} M instructions "
          f"(callgrind; runs {', '.join(f'{c / 1e6:.1f}' for c in counts)})")


def main() -> None:
    if sys.argv[1:] == ["--instructions"]:
        instructions()
        return
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(mode=0o700, parents=True, exist_ok=True)
    rows: list[tuple[str, float]] = []
    layout = setup_image()
    bundle = bare_crun_bundle()
    crun_root = HOME / "crun-bare"
    crun_root.mkdir()
    pulled = subprocess.run(
        ["podman", "--cgroup-manager=cgroupfs", "pull", "-q", f"oci:{layout}"],
        text=True,
        capture_output=True,
        check=False,
    )
    if pulled.returncode != 0:
        raise SystemExit(f"podman pull failed: {pulled.stderr}")
    podman_image = "localhost" + str(layout)

    strict = hyperfine("strict", "secpod run --rm --profile strict bench/busybox:1 /bin/true")
    crun = hyperfine(
        "crun",
        f"crun --root {crun_root} --cgroup-manager=disabled run --bundle {bundle} bench-bare",
    )
    podman = hyperfine(
        "podman",
        f"podman --cgroup-manager=cgroupfs run --rm --network=none {podman_image} /bin/true",
    )
    default = hyperfine("default", "secpod run --rm bench/busybox:1 /bin/true")
    version = hyperfine("version", "secpod --version")
    rows += [
        ("secpod run --rm --profile strict", strict),
        ("secpod run --rm (default profile)", default),
        ("bare crun run (same strict bundle)", crun),
        ("podman run --rm --network=none", podman),
        ("secpod --version", version),
    ]

    big = big_layout()
    size = sum(f.stat().st_size for f in big.rglob("*") if f.is_file())
    store = HOME / "import-data"
    imp = hyperfine(
        "import",
        f"env XDG_DATA_HOME={store} secpod image import {big}",
        prepare=f"rm -rf {store}",
        runs=5,
    )
    umoci_out = HOME / "umoci-bundle"
    umoci = hyperfine(
        "umoci",
        f"umoci unpack --rootless --image {big}:latest {umoci_out}",
        prepare=f"rm -rf {umoci_out}",
        runs=5,
    )
    rss = monitor_rss()

    print("| measurement | median | ratio |")
    print("|---|---:|---:|")
    for name, value in rows:
        print(f"| {name} | {value * 1000:.1f} ms | {value / podman:.2f} × podman |")
    print(
        f"| import of a {size / 1e6:.0f} MB image (secpod image import) | {imp:.2f} s | "
        f"{imp / umoci:.2f} × umoci |"
    )
    print(f"| umoci unpack --rootless (same image) | {umoci:.2f} s | 1.00 |")
    print(f"| monitor (conmon) resident memory of a -d container | {rss / 1024:.1f} MB | |")
    print(
        f"\nstrict run / bare crun: {strict / crun:.2f}; runs per timing: {RUNS}; "
        f"host: {os.uname().release}, {os.cpu_count()} cores; {time.strftime('%Y-%m-%d')}"
    )


if __name__ == "__main__":
    with tempfile.TemporaryDirectory():
        main()
