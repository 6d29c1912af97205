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


def test_a_zombie_is_not_a_live_maker(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A `run` killed with SIGKILL whose parent died too stays a zombie until PID 1 reaps
    it: its half-made container is swept all the same, and recorded once."""
    import os
    import time

    from secpod.sandbox import state

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    try:
        deadline = time.monotonic() + 5
        while open(f"/proc/{pid}/stat").read().rpartition(")")[2].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert state._process_identity(pid) == ""
        assert state._process_identity(os.getpid()) != ""
        cid, name, folder = state.reserve("stuck")
        started = open(f"/proc/{pid}/stat").read().rpartition(")")[2].split()[19]
        (folder / state.CREATING).write_text(f"{pid} {started}")  # made by the zombie
        (folder / "rootfs").mkdir()
        assert state.sweep_half_made() == [(cid, "stuck")]
        assert not folder.exists() and not (state.containers_dir() / "names" / "stuck").exists()
    finally:
        os.waitpid(pid, 0)
