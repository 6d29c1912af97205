"""Published ports: 100 MB through ``-p`` against plain host loopback and against
``podman run -p``, what ``-p`` adds to a ``run``'s start, and the forwarder's resident
memory.

- **Throughput.** The receiver is busybox's ``nc -l -p PORT > /dev/null`` every time: on
  the host (plain loopback); inside a ``--profile strict`` container reached through
  ``-p 127.0.0.1:PORT:9000`` (secpod's forwarder: accept on 127.0.0.1, connect inside the
  container's namespace, splice); and inside ``podman run -p 127.0.0.1:PORT:9000`` of the
  same image (Podman 4.3.1 rootless: slirp4netns for the network, its default port
  handler rootlessport), and the same with ``--network slirp4netns:port_handler=slirp4netns``
  (the connection through slirp4netns's user-mode TCP stack). The sender is this process:
  ``sendall`` of 100 MiB, shut down the write side, wait for the receiver to close; each
  transfer starts once the receiver listens in its namespace (``/proc/PID/net/tcp``), so
  no forwarder is timed against a receiver that is not there yet. ``--runs`` of each
  (default 7), interleaved in a rotating order.
- **Start.** ``secpod run --rm --profile strict IMAGE /bin/true`` with and without
  ``-p PORT:80``, interleaved, ``--starts`` each (default 15): the difference of the
  medians is what the holder costs a start (spawn, bind, namespaces, id maps).
- **Memory.** VmRSS of the holder of a running container, idle and after a transfer.

Podman's slirp4netns needs a usable /dev/net/tun, which this host gives root only
(docs/networking.md): ``scripts/bench.sh network`` mounts a tmpfs on /dev/net in the
bench's private mount namespace and makes a 0666 tun node there; the host's /dev is not
touched. Podman's store is under the bench's own home (``XDG_DATA_HOME``), its pause
process is killed at the end.

    bash scripts/bench.sh network [--runs N] [--starts N]

Prints a markdown table and the load average; the results go into docs/BENCHMARKS.md by
hand.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import free_port, rss_kb  # noqa: E402
from runner_bench import HOME, setup_image  # noqa: E402

SIZE = 100 << 20
IMAGE = "bench/busybox:1"
# slirp4netns's API socket is PODMAN_TMPDIR/<64 hex digits>.net, and a unix socket's path
# must be shorter than 108 bytes: under $XDG_RUNTIME_DIR/libpod/tmp it is not.
PODMAN = ["podman", "--cgroup-manager=cgroupfs", f"--tmpdir={HOME / 'p'}"]
# The receivers, the same busybox applets on the host and in the image: nc writing what it
# reads to /dev/null (it reads 1 KiB at a time, so it is the bottleneck of every path), and
# nc handing the connection to dd, which reads it 1 MiB at a time.
RECEIVERS = {
    "nc": ["nc", "-l", "-p", "PORT"],
    "dd": ["nc", "-l", "-p", "PORT", "-e", "dd", "of=/dev/null", "bs=1M"],
}


def serve(receiver: str, port: int) -> list[str]:
    """The receiver's command line for the container (``sh -c``), output to /dev/null."""
    argv = [str(port) if a == "PORT" else a for a in RECEIVERS[receiver]]
    return ["sh", "-c", " ".join(argv) + " > /dev/null 2>&1"]


def sh(*argv: str) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(argv, check=False, text=True, capture_output=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(argv)}: exit {r.returncode}: {r.stderr.strip()}")
    return r


def send(port: int, data: bytes) -> float:
    """Seconds from the first byte to the receiver's close."""
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    s.sendall(data[:1])
    start = time.perf_counter()
    s.sendall(data[1:])
    s.shutdown(socket.SHUT_WR)
    s.recv(1)
    took = time.perf_counter() - start
    s.close()
    return took


def wait_listening(pid: int, port: int, timeout: float = 20) -> None:
    """Until something listens on TCP ``port`` in the network namespace of ``pid``."""
    hexport = f":{port:04X}"
    deadline = time.monotonic() + timeout
    while True:
        for table in ("tcp", "tcp6"):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                fields = line.split()
                if fields[1].endswith(hexport) and fields[3] == "0A":
                    return
        if time.monotonic() > deadline:
            raise SystemExit(f"nothing listens on {port} in the namespace of {pid}")
        time.sleep(0.01)


def through_loopback(data: bytes, receiver: str) -> float:
    port = free_port()
    proc = subprocess.Popen(["busybox", *serve(receiver, port)])
    try:
        wait_listening(proc.pid, port)
        return send(port, data)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def through_secpod(data: bytes, receiver: str, rss_busy: list[int]) -> float:
    port = free_port()
    cid = sh("secpod", "run", "-d", "--profile", "strict", "-p", f"127.0.0.1:{port}:9000",
             IMAGE, *serve(receiver, 9000)).stdout.strip()
    try:
        record = json.loads((HOME / "data" / "secpod" / "containers" / cid /
                             "container.json").read_text())
        holder = int(record["holder_pid"])
        wait_listening(holder, 9000)
        took = send(port, data)
        rss_busy.append(rss_kb(holder))
        return took
    finally:
        sh("secpod", "rm", "-f", cid)


def through_podman(data: bytes, receiver: str, image: str, network: list[str]) -> float:
    port = free_port()
    cid = sh(*PODMAN, "run", "-d", *network, "-p", f"127.0.0.1:{port}:9000", image,
             *serve(receiver, 9000)).stdout.strip()
    try:
        pid = int(sh(*PODMAN, "inspect", "-f", "{{.State.Pid}}", cid).stdout)
        wait_listening(pid, 9000)
        return send(port, data)
    finally:
        sh(*PODMAN, "rm", "-f", "-t", "0", cid)


def podman_image(layout: Path) -> str:
    pulled = subprocess.run([*PODMAN, "pull", "-q", f"oci:{layout}"], text=True,
                            capture_output=True, check=False)
    if pulled.returncode != 0:
        raise SystemExit(f"podman pull failed: {pulled.stderr}")
    return "localhost" + str(layout)


def kill_podman_pause() -> None:
    """Podman's rootless pause process (``catatonit -P``) outlives every podman command:
    it is found by its environment, which names this bench's runtime directory, and
    killed, so the bench leaves nothing running."""
    marker = f"XDG_RUNTIME_DIR={os.environ['XDG_RUNTIME_DIR']}".encode()
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if (entry.name.isdigit() and (entry / "comm").read_text().strip() == "catatonit"
                    and marker in (entry / "environ").read_bytes().split(b"\0")):
                os.kill(int(entry.name), signal.SIGKILL)


def idle_rss() -> int:
    port = free_port()
    cid = sh("secpod", "run", "-d", "--profile", "strict", "-p", f"{port}:80", IMAGE,
             "sleep", "30").stdout.strip()
    try:
        record = json.loads((HOME / "data" / "secpod" / "containers" / cid /
                             "container.json").read_text())
        return rss_kb(int(record["holder_pid"]))
    finally:
        sh("secpod", "rm", "-f", cid)


def start_time(publish: bool) -> float:
    argv = ["secpod", "run", "--rm", "--profile", "strict"]
    if publish:
        argv += ["-p", f"{free_port()}:80"]
    t = time.perf_counter()
    sh(*argv, IMAGE, "/bin/true")
    return time.perf_counter() - t


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--starts", type=int, default=15)
    args = ap.parse_args()
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        measure(args.runs, args.starts)
    finally:
        kill_podman_pause()


PATHS = {
    "loopback": "plain host loopback",
    "secpod": "secpod -p into a strict container",
    "podman": "podman run -p (slirp4netns, rootlessport)",
    "slirp": "podman run -p, port_handler=slirp4netns",
}
SLIRP_PORTS = ["--network", "slirp4netns:port_handler=slirp4netns"]


def measure(runs: int, starts: int) -> None:
    image = podman_image(setup_image())
    data = os.urandom(1 << 20) * (SIZE >> 20)
    rss_busy: list[int] = []

    def way(path: str, receiver: str) -> Callable[[], float]:
        return {
            "loopback": lambda: through_loopback(data, receiver),
            "secpod": lambda: through_secpod(data, receiver, rss_busy),
            "podman": lambda: through_podman(data, receiver, image, []),
            "slirp": lambda: through_podman(data, receiver, image, SLIRP_PORTS),
        }[path]

    ways = {(p, r): way(p, r) for r in RECEIVERS for p in PATHS}
    before = load()
    for w in ways.values():            # untimed: warm page cache, code, podman's pause
        w()
    rss_busy.clear()
    took: dict[tuple[str, str], list[float]] = {n: [] for n in ways}
    names = list(ways)
    for i in range(runs):
        for n in names[i % len(names):] + names[:i % len(names)]:
            took[n].append(ways[n]())
    plain, with_p = [], []
    start_time(False)
    start_time(True)
    for i in range(starts):
        for publish in ((True, False) if i % 2 else (False, True)):
            (with_p if publish else plain).append(start_time(publish))
    mib = SIZE / (1 << 20)
    med = {n: statistics.median(v) for n, v in took.items()}
    print("| 100 MiB, median | receiver nc (1 KiB reads) | receiver nc -e dd bs=1M |")
    print("|---|---:|---:|")
    for p, label in PATHS.items():
        cells = []
        for r in RECEIVERS:
            t = med[p, r]
            pct = "" if p == "loopback" else f", {med['loopback', r] / t * 100:.0f} % of loopback"
            cells.append(f"{t * 1000:.0f} ms ({mib / t:.0f} MiB/s{pct})")
        print(f"| {label} | {' | '.join(cells)} |")
    for p, label in (("podman", "rootlessport"), ("slirp", "slirp4netns port handler")):
        ratios = " | ".join(f"{med[p, r] / med['secpod', r]:.2f} ×" for r in RECEIVERS)
        print(f"| **secpod / podman ({label}), throughput** (goal ≥ 1.5 ×) | {ratios} |")
    ratios = " | ".join(f"{med['loopback', r] / med['secpod', r] * 100:.0f} %" for r in RECEIVERS)
    print(f"| **secpod / plain loopback, throughput** (goal ≥ 70 %) | {ratios} |")
    a, b = statistics.median(plain), statistics.median(with_p)
    print("\n| start | median | |\n|---|---:|---|")
    print(f"| run --rm --profile strict /bin/true | {a * 1000:.1f} ms | |")
    print(f"| the same with -p PORT:80 | {b * 1000:.1f} ms | +{(b - a) * 1000:.1f} ms |")
    print(f"| forwarder VmRSS, idle | {idle_rss() / 1024:.1f} MB | |")
    print(f"| forwarder VmRSS, after 100 MiB | {statistics.median(rss_busy) / 1024:.1f} MB | |")
    print(f"\n{runs} transfers of each, {starts} starts each; load average before {before}, "
          f"after {load()}; host {os.uname().release}, {os.cpu_count()} cores; "
          f"{time.strftime('%Y-%m-%d %H:%M')}")
    for (p, r), v in took.items():
        print(f"{p}, {r}: {[round(x * 1000) for x in v]} ms")

if __name__ == "__main__":
    main()
