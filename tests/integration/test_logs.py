"""Container logs with real crun: long lines, `logs -f` to the last byte, size limits."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.conftest import User
from tests.integration.conftest import audit_records, write_policy

pytestmark = [pytest.mark.crun, pytest.mark.userns]

MB = 1 << 20


def _profile(user: User, name: str, size_max: str) -> None:
    user.file(f"config/secpod/profiles/{name}.toml",
              f'extends = "default"\n[logs]\nsize_max = "{size_max}"\n')


def _log_files(user: User, name: str) -> list[Path]:
    info = json.loads(user.run("inspect", name, check=True).stdout)[0]["Secpod"]
    log = Path(info["log_path"])
    return [p for p in (log.with_name(log.name + ".1"), log) if p.exists()]


def test_a_50_mb_line_without_newline_streams_to_stdout_and_log(user: User, busybox: str) -> None:
    _profile(user, "biglog", "128m")
    size = 52 * MB
    script = f"head -c {size} /dev/zero | tr '\\0' x"
    start = time.monotonic()
    r = user.run("run", "--name", "longline", "--profile", "biglog", busybox, "sh", "-c", script,
                 text=False, timeout=300)
    took = time.monotonic() - start
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"x" * size
    # 52 MB used to take minutes (quadratic); a streamed copy takes seconds.
    assert took < 60, took
    logs = user.run("logs", "longline", text=False, timeout=120)
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout == b"x" * size
    # Split into bounded records as CRI does: partial pieces, nothing left held.
    record = next(iter(_log_files(user, "longline")[-1].open("rb"))).split(b" ", 3)
    assert record[1:3] == [b"stdout", b"P"] and len(record[3]) <= 64 * 1024


def test_logs_follow_gets_every_byte_to_the_end(user: User, busybox: str) -> None:
    # A burst right before the exit: the follower is mid-record when the container ends.
    script = "sleep 1; i=0; while [ $i -lt 3 ]; do seq 1 20000; i=$((i+1)); done; printf last"
    expected = "".join(f"{n}\n" for n in range(1, 20001)) * 3 + "last"
    for attempt in range(3):
        name = f"burst{attempt}"
        user.run("run", "-d", "--name", name, busybox, "sh", "-c", script, check=True)
        r = user.run("logs", "-f", name, timeout=60)
        assert r.returncode == 0, r.stderr
        assert r.stdout == expected, (len(r.stdout), r.stdout[-80:])
        assert user.run("logs", name).stdout == expected


def test_logs_follow_goes_across_conmon_rotations(user: User, busybox: str) -> None:
    _profile(user, "smalllog", "64k")
    # ~25 KiB of records a batch, a second apart (half the limit is 32 KiB): a rotation
    # every other batch, never two between the follower's looks (every 0.1 s).
    script = ("sleep 0.5; i=0; while [ $i -lt 12 ]; do seq $((i*500+1)) $((i*500+500)); "
              "i=$((i+1)); sleep 1; done")
    expected = "".join(f"{n}\n" for n in range(1, 6001))
    user.run("run", "-d", "--name", "rolling", "--profile", "smalllog", busybox, "sh", "-c",
             script, check=True)
    r = user.run("logs", "-f", "rolling", timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == expected, (len(r.stdout), r.stdout[:40])
    files = _log_files(user, "rolling")
    assert sum(p.stat().st_size for p in files) <= 64 * 1024
    kept = user.run("logs", "rolling").stdout
    assert kept and expected.endswith(kept)


def test_foreground_flood_is_bounded_and_rotated(user: User, busybox: str) -> None:
    _profile(user, "smalllog", "1m")
    # 40 MB of lines, far beyond the 1 MB limit.
    script = "yes 0123456789abcdef0123456789abcdef | head -c 41943040"
    r = user.run("run", "--name", "flood", "--profile", "smalllog", busybox, "sh", "-c", script,
                 text=False, timeout=300)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout) == 40 * MB
    files = _log_files(user, "flood")
    assert len(files) == 2, files
    assert sum(p.stat().st_size for p in files) <= 1 * MB
    logs = user.run("logs", "flood", text=False, timeout=60)
    assert logs.returncode == 0
    # What is kept is the end of the output, whole lines, in order.
    kept = logs.stdout
    assert 400 * 1024 < len(kept) <= 1 * MB
    assert r.stdout.endswith(kept)
    assert set(kept.split(b"\n")[:-1]) == {b"0123456789abcdef0123456789abcdef"}
    info = json.loads(user.run("inspect", "flood", check=True).stdout)[0]["Secpod"]
    assert info["confinement"]["log_size_max"] == 1 * MB


def test_detached_flood_is_bounded_and_logs_still_work(user: User, busybox: str) -> None:
    _profile(user, "smalllog", "1m")
    script = "yes 0123456789abcdef0123456789abcdef | head -c 41943040; echo done"
    user.run("run", "-d", "--name", "dflood", "--profile", "smalllog", busybox, "sh", "-c",
             script, check=True)
    r = user.run("logs", "-f", "dflood", text=False, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.endswith(b"done\n")
    files = _log_files(user, "dflood")
    assert sum(p.stat().st_size for p in files) <= 1 * MB, [p.stat().st_size for p in files]
    logs = user.run("logs", "dflood", text=False)
    assert logs.returncode == 0 and logs.stdout.endswith(b"done\n")
    assert 0 < len(logs.stdout) <= 1 * MB
    info = json.loads(user.run("inspect", "dflood", check=True).stdout)[0]["Secpod"]
    assert info["status"] == "exited" and info["confinement"]["log_size_max"] == 1 * MB
    # A restart keeps the previous run's log as the rotated file: both runs are read.
    user.run("start", "dflood", check=True)
    deadline = time.monotonic() + 60
    while user.run("logs", "dflood", text=False).stdout.count(b"done\n") < 2:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    files = _log_files(user, "dflood")
    assert sum(p.stat().st_size for p in files) <= 1 * MB, [p.stat().st_size for p in files]


@pytest.mark.root
@pytest.mark.usefixtures("admin")
def test_floor_caps_the_log_size_and_audits_the_refusal(user: User, busybox: str) -> None:
    write_policy('[logs]\nsize_max = "2m"\n')
    _profile(user, "biglog", "128m")
    r = user.run("run", "--rm", "--profile", "biglog", busybox, "true")
    assert r.returncode == 125, r.stderr
    assert "refused by the administrator's floor (logs.size_max in /etc/secpod/policy.toml)" \
        in r.stderr
    assert "profile biglog keeps up to 134217728 bytes of container log" in r.stderr
    assert "hint:" in r.stderr
    refused = [a for a in audit_records(user) if a["outcome"] == "refused"]
    assert refused and "logs.size_max" in str(refused[-1]["reason"])
    assert user.run("ps", "-a", "-q").stdout == ""       # nothing left half-done
    _profile(user, "smalllog", "1m")
    r = user.run("run", "--rm", "--profile", "smalllog", busybox, "echo", "ran")
    assert r.returncode == 0 and r.stdout == "ran\n", r.stderr
