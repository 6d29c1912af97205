"""Audit log benchmarks (run by hand, never by the test pass).

    python bench/audit_bench.py [--records 1000000] [--appends 3000] [--runs 3] [--dir DIR]

Measures, and prints medians as a markdown table:

- durable single appends per second through ``secpod.audit.record`` (each one
  fdatasync'd before it returns), one writer, and 8 writer processes on one log;
- ``verify`` throughput in records per second on a generated log;
- ``report`` time (parse, fold, render JSON and HTML) on the same log.

Goals (issue 5): >= 2,000 appends/s, >= 200,000 records/s verified, a
one-million-record report in < 30 s. The generated log is realistic: container
lifecycles with confinement summaries, CIS findings and trust decisions, image
operations, refusals; about 600 bytes per record, a checkpoint every 100.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from secpod.audit import _canon, _merkle, _note  # noqa: E402

USERS = [("alice", 1001), ("bob", 1002), ("carol", 1003), ("dave", 1004), ("erin", 1005)]
IMAGES = ["docker.io/library/busybox:latest", "docker.io/library/alpine:3.19",
          "registry.example.com/app/api:1.4", "registry.example.com/app/worker:2.0"]
CIS = [{"id": "5.10", "severity": "medium", "title": "Ensure memory usage for the container "
        "is limited"},
       {"id": "5.28", "severity": "medium", "title": "Ensure PIDs cgroup limit is used"},
       {"id": "5.12", "severity": "medium", "title": "Ensure the container's root filesystem "
        "is mounted as read only"}]


def _confinement(rng: random.Random) -> dict[str, Any]:
    return {
        "caps": ["CAP_CHOWN", "CAP_KILL", "CAP_SETUID", "CAP_SETGID"][: rng.randint(0, 4)],
        "seccomp": {"enabled": True, "source": "strict-seccomp.json", "rules": 312,
                    "bpf_instructions": 640, "default": "SCMP_ACT_ERRNO", "unresolved": []},
        "no_new_privileges": True, "selinux": None, "apparmor": "secpod-strict",
        "read_only_root": rng.random() < 0.7,
        "namespaces": ["user", "pid", "network", "ipc", "uts", "mount", "cgroup"],
        "network": "loopback", "rlimits": {"RLIMIT_NOFILE": [1024, 1024]},
        "unenforced": ["pids limit: no cgroup delegation"] if rng.random() < 0.3 else [],
        "cis_findings": rng.sample(CIS, rng.randint(0, 2)),
    }


def _bodies(n: int, seed: int = 1) -> Any:
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    t = 1_714_550_400.0  # 2024-05-01
    made = 0
    while made < n:
        user, uid = rng.choice(USERS)
        img = rng.choice(IMAGES)
        prof = rng.choice(["strict", "strict", "default"])
        signed = "example.com" in img
        trust = {"accepted": True, "reference": img, "scope": img.rsplit(":", 1)[0],
                 "requirements": ["sigstoreSigned"] if signed else ["insecureAcceptAnything"],
                 "policy_path": None, "reasons": [], "notes": []}
        base = {"host": "bench", "uid": uid, "user": user, "reason": None,
                "image": {"ref": img,
                          "digest": "sha256:" + hashlib.sha256(img.encode()).hexdigest()},
                "profile": prof, "profile_hash": "sha256:" + "ab" * 32, "confinement": None,
                "trust": None, "exit_status": None, "outcome": "ok",
                "container": {"id": None, "name": None}}
        t += rng.uniform(0.5, 30)
        if rng.random() < 0.1:
            yield {**base, "time": _ts(t), "action": "container.run.refused",
                   "outcome": "refused", "trust": {**trust, "accepted": False},
                   "reason": rng.choice(["trust: the trust policy rejects " + img,
                                         "policy: profile default is below the floor"])}
            made += 1
            continue
        cid = f"{rng.getrandbits(256):064x}"
        ctr = {"id": cid, "name": f"{user}-{made}"}
        yield {**base, "time": _ts(t), "action": "container.create", "container": ctr,
               "confinement": _confinement(rng), "trust": trust}
        yield {**base, "time": _ts(t + 0.2), "action": "container.start", "container": ctr}
        yield {**base, "time": _ts(t + rng.uniform(1, 600)), "action": "container.exit",
               "container": ctr, "exit_status": rng.choice([0, 0, 0, 1, 137])}
        yield {**base, "time": _ts(t + 601), "action": "container.rm", "container": ctr}
        made += 4


def _ts(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z"


def generate(folder: Path, n: int, *, every: int = 100) -> None:
    """Write an intact log of ``n`` records with checkpoints every ``every`` into ``folder``."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(mode=0o700, parents=True)
    key = _note.SignerKey.generate("bench/secpod/audit/host")
    (folder / "key").write_text(str(key) + "\n")
    (folder / "key.vkey").write_text(str(key.verifier()) + "\n")
    frontier: list[bytes] = []
    prev = _canon.ZERO_HASH
    import json

    with open(folder / "log.jsonl", "wb") as f, open(folder / "checkpoints.jsonl", "w") as c:
        for i, body in enumerate(_bodies(n)):
            if i == n:
                break
            line = _canon.encode(i, prev, body)
            f.write(line + b"\n")
            h = _merkle.leaf_hash(line)
            _merkle.append_leaf(frontier, i, h)
            prev = h.hex()
            if (i + 1) % every == 0:
                note = key.sign_note(_note.checkpoint_text(
                    key.name, i + 1, _merkle.frontier_root(frontier), body["time"]))
                c.write(json.dumps({"note": note}) + "\n")


def _appender(data: str, count: int, start: Any) -> None:
    os.environ["XDG_DATA_HOME"] = data
    from secpod.audit import record

    start.wait()
    for i in range(count):
        record("image.tag", "ok", image_ref=f"bench:{i}", details={"pid": os.getpid()})


def appends_per_second(writers: int, total: int) -> float:
    """Durable appends per second with ``writers`` processes sharing one user's log."""
    tmp = Path(tempfile.mkdtemp(prefix="audit-bench-", dir="/var/tmp"))
    try:
        ctx = multiprocessing.get_context("fork")
        start = ctx.Event()
        per = total // writers
        procs = [ctx.Process(target=_appender, args=(str(tmp), per, start))
                 for _ in range(writers)]
        # A first record creates the log and its key outside the timing.
        os.environ["XDG_DATA_HOME"] = str(tmp)
        from secpod.audit import _log, record

        _log._logs.clear()
        record("bench.start", "ok")
        for p in procs:
            p.start()
        time.sleep(0.5)
        t0 = time.perf_counter()
        start.set()
        for p in procs:
            p.join()
        dt = time.perf_counter() - t0
        from secpod.audit import verify_dir

        r = verify_dir(tmp / "secpod" / "audit")
        assert r.intact and r.records == per * writers + 1, r.problems
        return per * writers / dt
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def raw_fdatasync_per_second(total: int) -> float:
    """The disk's ceiling: bare write(2) + fdatasync(2) of a 600-byte line, nothing else."""
    tmp = Path(tempfile.mkdtemp(prefix="audit-bench-", dir="/var/tmp"))
    try:
        fd = os.open(tmp / "raw", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        line = b"x" * 599 + b"\n"
        t0 = time.perf_counter()
        for _ in range(total):
            os.write(fd, line)
            os.fdatasync(fd)
        dt = time.perf_counter() - t0
        os.close(fd)
        return total / dt
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def verify_rate(folder: Path) -> float:
    from secpod.audit import verify_dir

    t0 = time.perf_counter()
    r = verify_dir(folder)
    dt = time.perf_counter() - t0
    assert r.intact, r.problems
    return r.records / dt


def report_seconds(folder: Path) -> tuple[float, int]:
    from secpod.audit import build_report, iter_records, render

    t0 = time.perf_counter()
    rep = build_report(iter_records(folder / "log.jsonl"), source=str(folder))
    render(rep, "json")
    html = render(rep, "html")
    return time.perf_counter() - t0, len(html)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--appends", type=int, default=3000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", type=Path,
                    default=Path("/var/tmp/secpod-audit-bench"))  # noqa: S108 - by hand
    args = ap.parse_args()

    rows: list[tuple[str, str, str]] = []
    raw = [raw_fdatasync_per_second(args.appends) for _ in range(args.runs)]
    rows.append(("bare write+fdatasync (the disk's ceiling)", f"{statistics.median(raw):,.0f} /s",
                 "-"))
    single = [appends_per_second(1, args.appends) for _ in range(args.runs)]
    rows.append(("durable appends, 1 writer", f"{statistics.median(single):,.0f} /s",
                 ">= 2,000 /s"))
    eight = [appends_per_second(8, args.appends) for _ in range(args.runs)]
    rows.append(("durable appends, 8 writers (total)", f"{statistics.median(eight):,.0f} /s",
                 "-"))
    t0 = time.perf_counter()
    generate(args.dir, args.records)
    gen = time.perf_counter() - t0
    size = (args.dir / "log.jsonl").stat().st_size
    verify = [verify_rate(args.dir) for _ in range(args.runs)]
    rows.append((f"verify ({args.records:,} records, {size / 1e6:,.0f} MB)",
                 f"{statistics.median(verify):,.0f} records/s", ">= 200,000 records/s"))
    rep = [report_seconds(args.dir)[0] for _ in range(args.runs)]
    rows.append((f"report json+html ({args.records:,} records)",
                 f"{statistics.median(rep):.1f} s", "< 30 s (1M)"))
    print(f"\n(generated the log in {gen:.0f} s; medians of {args.runs} runs; "
          f"{os.cpu_count()} CPUs)\n")
    print("| benchmark | median | goal |")
    print("|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
