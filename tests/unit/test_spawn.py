"""secpod.sandbox.spawn: what Popen did for the runtime process, without subprocess."""

from __future__ import annotations

import os
import signal

from secpod.sandbox import spawn

SH = "/bin/sh"


def read_all(fd: int) -> bytes:
    chunks = []
    while data := os.read(fd, 65536):
        chunks.append(data)
    os.close(fd)
    return b"".join(chunks)


def test_pipes_carry_stdio_and_the_status_comes_back() -> None:
    child = spawn.spawn([SH, "-c", "read x; echo out:$x; echo err >&2; exit 7"],
                        stdin=spawn.PIPE, stdout=spawn.PIPE, stderr=spawn.PIPE)
    assert child.stdin is not None and child.stdout is not None and child.stderr is not None
    os.write(child.stdin, b"hi\n")
    os.close(child.stdin)
    assert read_all(child.stdout) == b"out:hi\n"
    assert read_all(child.stderr) == b"err\n"
    assert child.wait() == 7 and child.poll() == 7


def test_a_signal_death_is_minus_the_signal_as_popen_says() -> None:
    child = spawn.spawn([SH, "-c", "kill -TERM $$"], stdin=spawn.DEVNULL, stdout=spawn.DEVNULL,
                        stderr=spawn.DEVNULL)
    assert child.wait() == -signal.SIGTERM


def test_the_child_has_its_own_session_and_default_sigpipe() -> None:
    child = spawn.spawn([SH, "-c", "ps -o sid= -p $$; grep SigIgn /proc/$$/status"],
                        stdin=spawn.DEVNULL, stdout=spawn.PIPE, stderr=spawn.DEVNULL)
    assert child.stdout is not None
    out = read_all(child.stdout).decode().split()
    child.wait()
    assert int(out[0]) == child.pid  # the session leader is the child itself
    ignored = int(out[-1], 16)
    assert not ignored & (1 << (signal.SIGPIPE - 1))  # Python ignores it; the child must not


def test_inheritable_descriptors_other_than_stdio_are_closed() -> None:
    r, w = os.pipe()
    os.set_inheritable(w, True)
    try:
        child = spawn.spawn([SH, "-c", f"ls /proc/self/fd; echo x >&{w} && echo leaked"],
                            stdin=spawn.DEVNULL, stdout=spawn.PIPE, stderr=spawn.DEVNULL)
        assert child.stdout is not None
        out = read_all(child.stdout).decode()
        child.wait()
        assert "leaked" not in out
        assert str(w) not in out.split()
    finally:
        os.close(r)
        os.close(w)


def test_a_missing_program_raises_and_leaves_no_descriptor() -> None:
    before = set(os.listdir("/proc/self/fd"))
    try:
        spawn.spawn(["/nonexistent/runtime"], stdin=spawn.PIPE, stdout=spawn.PIPE,
                    stderr=spawn.PIPE)
    except FileNotFoundError:
        pass
    else:
        raise AssertionError("spawn of a missing program did not raise")
    assert set(os.listdir("/proc/self/fd")) == before
