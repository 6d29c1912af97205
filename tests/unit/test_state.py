"""Container state: recorded pids."""

from __future__ import annotations


def test_a_recorded_pid_counts_only_for_the_process_that_was_recorded(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os
    import time

    from secpod.sandbox.state import process_alive

    pidfile = tmp_path / "pid"
    pidfile.write_text(f"{os.getpid()}\n")
    assert process_alive(pidfile) == os.getpid()
    # a pid file older than the process that now has its pid: a reused pid
    old = time.time() - 24 * 3600
    os.utime(pidfile, (old, old))
    assert process_alive(pidfile) is None
    pidfile.write_text("not a pid")
    assert process_alive(pidfile) is None
    assert process_alive(tmp_path / "missing") is None
