"""`run -t`, `run -it`, `exec -t` and `run -d -t`: a terminal inside the container."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time

import pytest

from tests.conftest import SECPOD_BIN, User

# Each test runs under crun and under runc: they hand a terminal over differently.
pytestmark = [pytest.mark.crun, pytest.mark.userns, pytest.mark.usefixtures("engine")]


def test_run_t_gives_the_container_a_terminal(user: User, busybox: str) -> None:
    r = user.run("run", "--rm", "-t", busybox, "sh", "-c", "tty; [ -t 1 ] && echo is-a-tty")
    assert r.returncode == 0, r.stderr
    assert "/dev/pts/0" in r.stdout and "is-a-tty" in r.stdout


def test_run_it_reads_piped_input_through_the_terminal(user: User, busybox: str) -> None:
    r = user.run("run", "--rm", "-i", "-t", busybox, "sh", "-c", "read x; echo got-$x",
                 input="hello\n")
    assert r.returncode == 0, r.stderr
    assert "got-hello" in r.stdout


def test_interactive_shell_on_a_real_terminal(user: User, busybox: str) -> None:
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        user.command([str(SECPOD_BIN), "run", "--rm", "-it", busybox, "sh"]),
        stdin=slave, stdout=slave, stderr=slave, cwd=str(user.home), start_new_session=True,
    )
    os.close(slave)
    seen = b""

    def read_until(token: bytes, timeout: float = 30) -> None:
        nonlocal seen
        deadline = time.monotonic() + timeout
        while token not in seen:
            left = deadline - time.monotonic()
            assert left > 0, f"{token!r} not seen in {seen!r}"
            ready, _, _ = select.select([master], [], [], left)
            if ready:
                seen += os.read(master, 4096)

    read_until(b"# ")
    if b"\x1b[6n" in seen:  # busybox asks where the cursor is, as a real terminal would answer
        os.write(master, b"\x1b[1;1R")
    os.write(master, b"echo $((6*7))x\r")
    read_until(b"42x")
    os.write(master, b"exit 3\r")
    assert proc.wait(timeout=30) == 3
    os.close(master)


def test_exec_t_and_detached_terminal_logs(user: User, busybox: str) -> None:
    user.run("run", "-d", "-t", "--name", "termbox", busybox, "sh", "-c",
             "tty; sleep 60", check=True)
    deadline = time.monotonic() + 15
    while "/dev/pts/0" not in user.run("logs", "termbox").stdout:
        assert time.monotonic() < deadline, user.run("logs", "termbox")
        time.sleep(0.1)
    r = user.run("exec", "-t", "termbox", "sh", "-c", "[ -t 1 ] && echo exec-tty")
    assert r.returncode == 0, r.stderr
    assert "exec-tty" in r.stdout


def test_run_i_on_a_terminal_gives_the_container_a_pipe_not_the_terminal(
        user: User, busybox: str) -> None:
    """`-i` without `-t` from a terminal: the container reads what you type through a
    pipe; it never holds your terminal, so it cannot change its modes behind you."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        user.command([str(SECPOD_BIN), "run", "--rm", "-i", busybox, "sh", "-c",
                      "ls -l /proc/self/fd/0; [ -t 0 ] && echo TTY; stty -echo 2>&1; "
                      "read x; echo got-$x; cat; echo after-eof"]),
        stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(user.home),
        start_new_session=True,
    )
    os.close(slave)
    os.write(master, b"hello\n")
    time.sleep(0.5)
    os.write(master, b"more\n\x04")  # a line, then Ctrl-D: end of input
    out, err = proc.communicate(timeout=60)
    os.close(master)
    assert proc.returncode == 0, err
    text = out.decode()
    assert "pipe:" in text and "TTY" not in text
    assert "got-hello" in text and "more" in text and "after-eof" in text


def test_run_it_keeps_typed_ahead_input_and_sets_term(user: User, busybox: str) -> None:
    """What was typed before the container started reaches it (raw mode without a flush),
    and the container's TERM is xterm when neither the image nor -e sets one."""
    master, slave = pty.openpty()
    os.write(master, b"typed-ahead\r")  # queued on the terminal before secpod starts
    proc = subprocess.Popen(
        user.command([str(SECPOD_BIN), "run", "--rm", "-it", busybox, "sh", "-c",
                      'read x; echo "got:$x term:$TERM"']),
        stdin=slave, stdout=slave, stderr=slave, cwd=str(user.home), start_new_session=True,
    )
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 60
    while b"term:" not in seen or not seen.rstrip().endswith(b"xterm"):
        left = deadline - time.monotonic()
        assert left > 0, f"no answer in {seen!r}"
        ready, _, _ = select.select([master], [], [], left)
        if ready:
            try:
                seen += os.read(master, 4096)
            except OSError:
                break
    assert proc.wait(timeout=30) == 0
    os.close(master)
    assert b"got:typed-ahead term:xterm" in seen, seen
