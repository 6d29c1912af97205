"""Published ports: 100 MB through ``-p`` against plain host loopback, what ``-p`` adds to
a ``run``'s start, and the forwarder's resident memory.

- **Throughput.** The receiver is busybox's ``nc -l -p PORT > /dev/null`` both times: on the
  host (plain loopback), and inside a ``--profile strict`` container reached through
  ``-p`` (secpod's forwarder: accept on 127.0.0.1, connect inside the container's
  namespace, splice). The sender is this process: ``sendall`` of 100 MiB, shut down the
  write side, wait for the receiver to close. ``--runs`` of each (default 5), interleaved.
- **Start.** ``secpod run --rm --profile strict IMAGE /bin/true`` with and without
  ``-p PORT:80``, interleaved, ``--starts`` each (default 15): the difference of the
  medians is what the holder costs a start (spawn, bind, namespaces, id maps).
- **Memory.** VmRSS of the holder of a running container, idle and after a transfer.

Podman (``podman run -p``: slirp4netns and rootlessport) needs a usable /dev/net/tun,
which this host does not give users (docs/networking.md); it is not measured here.

    bash scripts/bench.sh network [--runs N] [--starts N]

Prints a markdown table; the results go into docs/BENCHMARKS.md by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import free_port, rss_kb  # noqa: E402
from runner_bench import HOME, setup_image, sh  # noqa: E402

SIZE = 100 << 20
IMAGE = "bench/busybox:1"


def send(port: int, data: bytes, timeout: float = 20) -> float:
    """Seconds from the first byte to the receiver's close."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=60)
            s.sendall(data[:1])
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)
    start = time.perf_counter()
    s.sendall(data[1:])
    s.shutdown(socket.SHUT_WR)
    s.recv(1)
    took = time.perf_counter() - start
    s.close()
    return took


def through_loopback(data: bytes) -> float:
    port = free_port()
    proc = subprocess.Popen(["busybox", "nc", "-l", "-p", str(port)],
                            stdout=subprocess.DEVNULL)
    try:
        return send(port, data)
    finally:
        proc.wait(timeout=30)


def through_publish(data: bytes) -> tuple[float, int]:
    port = free_port()
    cid = sh("secpod", "run", "-d", "--profile", "strict", "-p", f"{port}:9000", IMAGE,
             "sh", "-c", "nc -l -p 9000 > /dev/null").stdout.strip()
    try:
        record = json.loads((HOME / "data" / "secpod" / "containers" / cid /
                             "container.json").read_text())
        took = send(port, data)
        rss = rss_kb(int(record["holder_pid"]))
        return took, rss
    finally:
        sh("secpod", "rm", "-f", cid)


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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--starts", type=int, default=15)
    args = ap.parse_args()
    setup_image()
    data = os.urandom(1 << 20) * (SIZE >> 20)
    loop, pub, rss_busy = [], [], []
    through_loopback(data)             # untimed: warm page cache and code
    through_publish(data)
    for i in range(args.runs):
        order = (True, False) if i % 2 else (False, True)
        for via_p in order:
            if via_p:
                took, rss = through_publish(data)
                pub.append(took)
                rss_busy.append(rss)
            else:
                loop.append(through_loopback(data))
    plain, with_p = [], []
    start_time(False)
    start_time(True)
    for i in range(args.starts):
        for publish in ((True, False) if i % 2 else (False, True)):
            (with_p if publish else plain).append(start_time(publish))
    mib = SIZE / (1 << 20)
    lo_t, p_t = statistics.median(loop), statistics.median(pub)
    print("| measurement | median | |")
    print("|---|---|---|")
    print(f"| 100 MiB over plain host loopback (busybox nc) | {lo_t * 1000:.0f} ms "
          f"({mib / lo_t:.0f} MiB/s) | |")
    print(f"| 100 MiB through -p into a strict container | {p_t * 1000:.0f} ms "
          f"({mib / p_t:.0f} MiB/s) | {lo_t / p_t * 100:.0f} % of loopback |")
    a, b = statistics.median(plain), statistics.median(with_p)
    print(f"| run --rm --profile strict /bin/true | {a * 1000:.1f} ms | |")
    print(f"| the same with -p PORT:80 | {b * 1000:.1f} ms | +{(b - a) * 1000:.1f} ms |")
    print(f"| forwarder VmRSS, idle | {idle_rss() / 1024:.1f} MB | |")
    print(f"| forwarder VmRSS, after 100 MiB | {statistics.median(rss_busy) / 1024:.1f} MB | |")
    print(f"\n(runs: {args.runs} transfers, {args.starts} starts each; "
          f"loopback {[round(x * 1000) for x in loop]} ms, -p {[round(x * 1000) for x in pub]} ms)")


if __name__ == "__main__":
    main()
