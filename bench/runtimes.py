"""crun vs runc on the same bundle: start-to-exit wall time and peak resident memory.

Runs the bundle that ``secpod create --profile strict IMAGE /bin/true`` writes (copied out,
as runner_bench.py's bare crun row does), unchanged, under both runtimes in the foreground:

    crun --root=R --cgroup-manager=disabled run --bundle B ID    (as secpod calls crun)
    runc --root R run --bundle B ID                              (no cgroup flag exists)

``--runs`` times each (default 30), interleaved: each round runs both, and the order
alternates from round to round, so that drift on a shared machine hits both alike. Each
timing is one ``posix_spawn`` of the runtime until it is reaped (the runtime exits after
the container's /bin/true has exited and the runtime has deleted its state). A few untimed
runs of each come first.

Memory is ``ru_maxrss`` from the ``wait4`` that reaps the runtime, in separate runs
(interleaved the same way) through GNU time (``/usr/bin/time -f %M``), not from this
process: a child of Python starts with Python's page tables, and exec records their high
water mark (about 20 MB here) as the child's own peak. time's own size (about 1 MB) is the
floor, shown as the ``/bin/true`` row. ``ru_maxrss`` is the largest peak resident set of
any one process in the runtime's tree that was reaped (the runtime itself, crun's container
child, ``runc init``, newuidmap/newgidmap), not their sum. Both runtimes copy their own
binary into a memfd and re-execute it from there (runc's 8.7 MB, crun's 0.5 MB); the pages
they touch count as resident.
``crun --version`` and ``runc --version`` are measured the same way, to show what starting
each binary costs by itself.

Run through scripts/bench.sh (as root: it drops to the test user in a private mount
namespace without the cgroup v2 mount, as the tests do):

    bash scripts/bench.sh runtimes [--runs N]

It prints a markdown table; the results go into docs/BENCHMARKS.md by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from runner_bench import bare_crun_bundle, setup_image  # noqa: E402

HOME = Path(os.environ["HOME"])
GNU_TIME = "/usr/bin/time"  # Debian's package time (GNU time 1.9): %M is ru_maxrss in KiB


def find(name: str) -> str:
    """The runtime's path; Debian puts runc in /usr/sbin, which a user's PATH lacks."""
    path = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if path is None:
        raise SystemExit(f"{name} not found (apt-get install {name})")
    return path


def spawn(argv: list[str], err: Path) -> tuple[float, int]:
    """(seconds, exit status) of one run of ``argv``, its stderr into ``err``."""
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, str(err), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
    ]
    start = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions)
    _, status = os.waitpid(pid, 0)
    elapsed = time.perf_counter() - start
    return elapsed, os.waitstatus_to_exitcode(status)


def peak_kib(argv: list[str], err: Path) -> int:
    """ru_maxrss (KiB) of one run of ``argv``, through GNU time (see the module doc)."""
    out = err.with_suffix(".rss")
    _, code = spawn([GNU_TIME, "-f", "%M", "-o", str(out), *argv], err)
    if code != 0:
        raise SystemExit(f"{argv[0]} exited {code}: {err.read_text().strip()}")
    return int(out.read_text().split()[-1])


def check_bundle(bundle: Path) -> dict[str, object]:
    """What of the config decides whether runc runs it rootless here (docs/runc-notes.md)."""
    config = json.loads((bundle / "config.json").read_text())
    linux = config.get("linux", {})
    if linux.get("cgroupsPath") or any(
        k != "devices" and v for k, v in (linux.get("resources") or {}).items()
    ):
        raise SystemExit(
            "the strict bundle has cgroupsPath or resource limits: rootless runc would "
            "fail to create its cgroup on this host (docs/runc-notes.md)"
        )
    seccomp = linux.get("seccomp") or {}
    return {
        "seccomp rules": len(seccomp.get("syscalls", [])),
        "namespaces": [n["type"] for n in linux.get("namespaces", [])],
    }


def version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_RUNS", "30")))
    ap.add_argument("--warmup", type=int, default=3)
    args = ap.parse_args()
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(mode=0o700, parents=True, exist_ok=True)
    crun, runc = find("crun"), find("runc")
    if os.path.ismount("/sys/fs/cgroup/unified"):
        print("note: /sys/fs/cgroup/unified is mounted (crun needs it gone: run through "
              "scripts/bench.sh)", file=sys.stderr)

    setup_image()
    bundle = bare_crun_bundle()
    shape = check_bundle(bundle)
    roots = {"crun": HOME / "state-crun", "runc": HOME / "state-runc"}
    for root in roots.values():
        root.mkdir(mode=0o700)

    def argv(name: str, cid: str) -> list[str]:
        if name == "crun":
            return [crun, f"--root={roots['crun']}", "--cgroup-manager=disabled", "run",
                    "--bundle", str(bundle), cid]
        return [runc, "--root", str(roots["runc"]), "run", "--bundle", str(bundle), cid]

    err = HOME / "runtime.err"
    times: dict[str, list[float]] = {"crun": [], "runc": []}
    peaks: dict[str, list[int]] = {"crun": [], "runc": []}
    for i in range(args.warmup + args.runs):
        order = ("crun", "runc") if i % 2 == 0 else ("runc", "crun")
        for name in order:
            elapsed, code = spawn(argv(name, f"bench-{name}-{i}"), err)
            if code != 0:
                raise SystemExit(f"{name} run exited {code}: {err.read_text().strip()}")
            if i >= args.warmup:
                times[name].append(elapsed * 1000)
        if i >= args.warmup:
            for name in reversed(order):
                peaks[name].append(peak_kib(argv(name, f"bench-{name}-m{i}"), err))

    alone_t: dict[str, list[float]] = {"crun": [], "runc": [], "true": []}
    alone_m: dict[str, list[int]] = {"crun": [], "runc": [], "true": []}
    for _ in range(args.runs):
        for name, cmd in (("crun", [crun, "--version"]), ("runc", [runc, "--version"]),
                          ("true", ["/bin/true"])):
            alone_t[name].append(spawn(cmd, err)[0] * 1000)
            alone_m[name].append(peak_kib(cmd, err))

    def cell(values: list[float] | list[int], scale: float, unit: str) -> str:
        v = [x / scale for x in values]
        return f"{statistics.median(v):.1f} {unit} ({min(v):.1f}–{max(v):.1f})"

    def med(values: list[float] | list[int]) -> float:
        return float(statistics.median(values))

    print("| measurement | crun (median, min–max) | runc (median, min–max) | runc / crun |")
    print("|---|---:|---:|---:|")
    for label, data, scale, unit in (
        ("start to exit, `run` of the strict bundle (/bin/true)", times, 1, "ms"),
        ("peak resident memory of that run (ru_maxrss)", peaks, 1024, "MB"),
        ("`--version` alone: wall time", alone_t, 1, "ms"),
        ("`--version` alone: peak resident memory", alone_m, 1024, "MB"),
    ):
        print(f"| {label} | {cell(data['crun'], scale, unit)} | "
              f"{cell(data['runc'], scale, unit)} | "
              f"{med(data['runc']) / med(data['crun']):.2f} |")
    print(f"| floor: `/bin/true` spawned directly / through GNU time | "
          f"{cell(alone_t['true'], 1, 'ms')} | {cell(alone_m['true'], 1024, 'MB')} | |")
    t_c, t_r = med(times["crun"]), med(times["runc"])
    m_c, m_r = med(peaks["crun"]), med(peaks["runc"])
    print(f"\ncrun's start-to-exit median is {100 * (1 - t_c / t_r):.0f} % below runc's; its "
          f"peak memory median {100 * (1 - m_c / m_r):.0f} % below runc's.")
    print(f"{args.runs} runs each, interleaved, after {args.warmup} untimed; bundle: "
          f"{shape}; {version(crun)}; {version(runc)}; host: {os.uname().release}, "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; {time.strftime('%Y-%m-%d')}")

if __name__ == "__main__":
    main()
