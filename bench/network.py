"""Published ports: 100 MB through ``-p`` against plain host loopback and against
``podman run -p``, what ``-p`` adds to a ``run``'s start, and the forwarder's resident
memory and CPU time.

- **Throughput.** 100 MiB of random bytes from this process to a busybox receiver, which
  writes it to /dev/null: on the host (plain loopback); inside a ``--profile strict``
  container reached through ``-p 127.0.0.1:PORT:9000`` (secpod's forwarder: accept on
  127.0.0.1, connect inside the container's namespace, splice); inside ``podman run -p
  127.0.0.1:PORT:9000`` of the same image (Podman 4.3.1 rootless: slirp4netns for the
  network, its default port handler rootlessport); and the same with ``--network
  slirp4netns:port_handler=slirp4netns`` (the connection through slirp4netns's user-mode
  TCP stack). Three pairs of sender and receiver (``ENDS``), each through every path:
  ``sendall`` to ``nc`` (which reads 1 KiB at a time, so it is the bottleneck of every
  path), ``sendall`` to ``nc -e dd bs=1M`` (dd reads the connection 1 MiB at a time), and
  ``sendfile`` of the same bytes from a memfd to the same dd: the
  cheapest ends busybox gives, where a forwarder's own cost shows most. A transfer is timed
  from its first byte to the receiver's close, and starts once the receiver listens in its
  namespace (``/proc/PID/net/tcp``). ``--runs`` of each (default 7), interleaved in a
  rotating order; medians.
- **Forwarder CPU.** utime + stime of the forwarding processes over each transfer (secpod:
  the holder; podman: rootlessport, its child and slirp4netns), the mean per transfer.
- **Start.** ``secpod run --rm --profile strict IMAGE /bin/true`` with and without
  ``-p PORT:80``, interleaved, ``--starts`` each (default 15): the difference of the
  medians is what the holder costs a start (spawn, bind, namespaces, id maps).
- **Memory.** VmRSS of the holder of a running container, idle and after a transfer.

Podman's slirp4netns needs a usable /dev/net/tun, which this host gives root only
(docs/networking.md): ``scripts/bench.sh network`` mounts a tmpfs on /dev/net in the
bench's private mount namespace and makes a 0666 tun node there; the host's /dev is not
touched. Podman's store and run root are under the bench's own home (``XDG_DATA_HOME``,
``XDG_RUNTIME_DIR``); what Podman leaves running (its pause process) is killed at the end.

    bash scripts/bench.sh network [--runs N] [--starts N]

Prints markdown tables and the load average; the results go into docs/BENCHMARKS.md by
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
SLIRP_PORTS = ["--network", "slirp4netns:port_handler=slirp4netns"]
PODMAN_FORWARDERS = {"rootlessport", "exe", "slirp4netns"}   # exe: rootlessport's child
PATHS = {
    "loopback": "plain host loopback",
    "secpod": "secpod -p into a strict container",
    "podman": "podman run -p (slirp4netns, rootlessport)",
    "slirp": "podman run -p, port_handler=slirp4netns",
}
# The receivers, the same busybox applets on the host and in the image.
RECEIVERS = {
    "nc": ["nc", "-l", "-p", "PORT"],
    "dd": ["nc", "-l", "-p", "PORT", "-e", "dd", "of=/dev/null", "bs=1M"],
}
ENDS = {   # name: (sender, receiver, the column's heading)
    "nc": ("sendall", "nc", "sendall → nc (1 KiB reads)"),
    "dd": ("sendall", "dd", "sendall → nc -e dd bs=1M"),
    "sendfile": ("sendfile", "dd", "sendfile → nc -e dd bs=1M"),
}
TCK = os.sysconf("SC_CLK_TCK")
Sender = Callable[[socket.socket], None]


def serve(receiver: str, port: int) -> list[str]:
    """The receiver's command line (``sh -c``), its output to /dev/null."""
    argv = [str(port) if a == "PORT" else a for a in RECEIVERS[receiver]]
    return ["sh", "-c", " ".join(argv) + " > /dev/null 2>&1"]


def sh(*argv: str) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(argv, check=False, text=True, capture_output=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(argv)}: exit {r.returncode}: {r.stderr.strip()}")
    return r


def senders(data: bytes) -> dict[str, Sender]:
    """Each sender sends all but the first byte of ``data``; ``sendfile`` from a memfd
    (in memory: no disk, no writeback)."""
    view = memoryview(data)[1:]
    fd = os.memfd_create("bench-data")
    os.write(fd, data)

    def sendall(s: socket.socket) -> None:
        s.sendall(view)

    def sendfile(s: socket.socket) -> None:
        offset, left = 1, len(data) - 1
        while left:
            n = os.sendfile(s.fileno(), fd, offset, left)
            offset, left = offset + n, left - n

    return {"sendall": sendall, "sendfile": sendfile}


def send(port: int, sender: Sender) -> float:
    """Seconds from the first byte to the receiver's close."""
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    s.setblocking(True)        # os.sendfile on a socket with a timeout: EAGAIN
    s.sendall(b"\0")
    start = time.perf_counter()
    sender(s)
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


def cpu(pids: list[int]) -> dict[int, float]:
    """utime + stime in seconds of each of ``pids`` still there (its ended threads too)."""
    out = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[pid] = (int(f[11]) + int(f[12])) / TCK
    return out


def timed(port: int, sender: Sender, forwarders: list[int]) -> tuple[float, float]:
    """The transfer's seconds, and the CPU seconds ``forwarders`` spent meanwhile."""
    before = cpu(forwarders)
    took = send(port, sender)
    after = cpu(forwarders)
    return took, sum(after[p] - before[p] for p in after if p in before)


def mine(names: set[str]) -> list[int]:
    """This user's processes called one of ``names`` whose environment names this bench's
    runtime directory (Podman's, whose command lines need not)."""
    marker = f"XDG_RUNTIME_DIR={os.environ['XDG_RUNTIME_DIR']}".encode()
    out = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if (entry.name.isdigit() and (entry / "comm").read_text().strip() in names
                    and marker in (entry / "environ").read_bytes().split(b"\0")):
                out.append(int(entry.name))
    return out


def through_loopback(sender: Sender, receiver: str) -> tuple[float, float]:
    port = free_port()
    proc = subprocess.Popen(["busybox", *serve(receiver, port)])
    try:
        wait_listening(proc.pid, port)
        return timed(port, sender, [])
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def through_secpod(sender: Sender, receiver: str, rss_busy: list[int]) -> tuple[float, float]:
    port = free_port()
    cid = sh("secpod", "run", "-d", "--profile", "strict", "-p", f"127.0.0.1:{port}:9000",
             IMAGE, *serve(receiver, 9000)).stdout.strip()
    try:
        holder = holder_pid(cid)
        wait_listening(holder, 9000)
        took = timed(port, sender, [holder])
        rss_busy.append(rss_kb(holder))
        return took
    finally:
        sh("secpod", "rm", "-f", cid)


def through_podman(sender: Sender, receiver: str, image: str,
                   network: list[str]) -> tuple[float, float]:
    port = free_port()
    cid = sh(*PODMAN, "run", "-d", *network, "-p", f"127.0.0.1:{port}:9000", image,
             *serve(receiver, 9000)).stdout.strip()
    try:
        pid = int(sh(*PODMAN, "inspect", "-f", "{{.State.Pid}}", cid).stdout)
        wait_listening(pid, 9000)
        return timed(port, sender, mine(PODMAN_FORWARDERS))
    finally:
        podman_rm(cid)


def podman_rm(cid: str) -> None:
    """``podman rm -f``, again when it raced the container's own exit (Podman 4.3.1:
    "container state improper: stopped" once nc has ended)."""
    for _ in range(10):
        r = subprocess.run([*PODMAN, "rm", "-f", "-t", "0", cid], text=True,
                           capture_output=True, check=False)
        if r.returncode == 0:
            return
        time.sleep(0.2)
    raise SystemExit(f"podman rm -f {cid}: {r.stderr.strip()}")


def holder_pid(cid: str) -> int:
    record = json.loads((HOME / "data" / "secpod" / "containers" / cid /
                         "container.json").read_text())
    return int(record["holder_pid"])


def podman_image(layout: Path) -> str:
    pulled = subprocess.run([*PODMAN, "pull", "-q", f"oci:{layout}"], text=True,
                            capture_output=True, check=False)
    if pulled.returncode != 0:
        raise SystemExit(f"podman pull failed: {pulled.stderr}")
    return "localhost" + str(layout)


def idle_rss() -> int:
    port = free_port()
    cid = sh("secpod", "run", "-d", "--profile", "strict", "-p", f"{port}:80", IMAGE,
             "sleep", "30").stdout.strip()
    try:
        return rss_kb(holder_pid(cid))
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
    # Before Podman's first command: it keeps the run root it chose then.
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        measure(args.runs, args.starts)
    finally:
        for pid in mine({"catatonit", *PODMAN_FORWARDERS}):   # Podman's pause process
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def measure(runs: int, starts: int) -> None:
    image = podman_image(setup_image())
    send_with = senders(os.urandom(1 << 20) * (SIZE >> 20))
    rss_busy: list[int] = []

    def way(path: str, end: str) -> Callable[[], tuple[float, float]]:
        sender, receiver = send_with[ENDS[end][0]], ENDS[end][1]
        return {
            "loopback": lambda: through_loopback(sender, receiver),
            "secpod": lambda: through_secpod(sender, receiver, rss_busy),
            "podman": lambda: through_podman(sender, receiver, image, []),
            "slirp": lambda: through_podman(sender, receiver, image, SLIRP_PORTS),
        }[path]

    ways = {(p, e): way(p, e) for e in ENDS for p in PATHS}
    before = load()
    for w in ways.values():            # untimed: warm page cache, code, podman's pause
        w()
    rss_busy.clear()
    took: dict[tuple[str, str], list[float]] = {n: [] for n in ways}
    used: dict[tuple[str, str], list[float]] = {n: [] for n in ways}
    names = list(ways)
    for i in range(runs):
        for n in names[i % len(names):] + names[:i % len(names)]:
            t, c = ways[n]()
            took[n].append(t)
            used[n].append(c)
    plain, with_p = [], []
    start_time(False)
    start_time(True)
    for i in range(starts):
        for publish in ((True, False) if i % 2 else (False, True)):
            (with_p if publish else plain).append(start_time(publish))
    report(runs, starts, before, took, used, (plain, with_p, rss_busy))


def report(runs: int, starts: int, before: str, took: dict[tuple[str, str], list[float]],
           used: dict[tuple[str, str], list[float]],
           rest: tuple[list[float], list[float], list[int]]) -> None:
    mib = SIZE / (1 << 20)
    med = {n: statistics.median(v) for n, v in took.items()}
    print("| 100 MiB, median | " + " | ".join(e[2] for e in ENDS.values()) + " |")
    print("|---" + "|---:" * len(ENDS) + "|")
    for p, label in PATHS.items():
        cells = [f"{med[p, e] * 1000:.0f} ms ({mib / med[p, e]:.0f} MiB/s)" for e in ENDS]
        print(f"| {label} | {' | '.join(cells)} |")
    for p, label in (("podman", "rootlessport"), ("slirp", "slirp4netns port handler")):
        ratios = " | ".join(f"{med[p, e] / med['secpod', e]:.2f} ×" for e in ENDS)
        print(f"| **secpod / podman ({label})** (goal ≥ 1.5 ×) | {ratios} |")
    ratios = " | ".join(f"{med['loopback', e] / med['secpod', e] * 100:.0f} %" for e in ENDS)
    print(f"| **secpod / plain loopback** (goal ≥ 70 %) | {ratios} |")
    ratios = " | ".join(f"{med['podman', e] / med['loopback', e]:.2f} ×" for e in ENDS)
    print(f"| plain loopback / podman (rootlessport) | {ratios} |")
    for p, label in (("secpod", "secpod's holder"), ("podman", "rootlessport + slirp4netns"),
                     ("slirp", "slirp4netns (its port handler)")):
        cells = " | ".join(f"{statistics.mean(used[p, e]) * 1000:.0f} ms" for e in ENDS)
        print(f"| forwarder CPU per transfer (mean): {label} | {cells} |")
    plain, with_p, rss_busy = rest
    a, b = statistics.median(plain), statistics.median(with_p)
    print("\n| start, memory | median | |\n|---|---:|---|")
    print(f"| run --rm --profile strict /bin/true | {a * 1000:.1f} ms | |")
    print(f"| the same with -p PORT:80 | {b * 1000:.1f} ms | +{(b - a) * 1000:.1f} ms |")
    print(f"| forwarder VmRSS, idle | {idle_rss() / 1024:.1f} MB | |")
    print(f"| forwarder VmRSS, after 100 MiB | {statistics.median(rss_busy) / 1024:.1f} MB | |")
    print(f"\n{runs} transfers of each, {starts} starts each; load average before {before}, "
          f"after {load()}; host {os.uname().release}, {os.cpu_count()} cores; "
          f"{time.strftime('%Y-%m-%d %H:%M')}")
    for (p, e), v in took.items():
        print(f"{p}, {e}: {[round(x * 1000) for x in v]} ms")


if __name__ == "__main__":
    main()
