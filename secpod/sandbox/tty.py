"""Terminals for ``run -t`` and ``exec -t``.

crun allocates the container's pseudo-terminal and hands its master side over a
unix socket (``--console-socket``) as an SCM_RIGHTS message. secpod then copies
the master to its stdout (and the log), and, with ``-i``, its stdin to the
master, in raw mode when stdin is a terminal; the window size follows ours.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import os
import select
import socket
import sys
import termios
import tty
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Protocol

from secpod.sandbox.spawn import Child


class Sink(Protocol):
    def write(self, stream: bytes, data: bytes) -> None: ...


class ConsoleSocket:
    """A listening unix socket that receives one pty master from crun."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(str(path))
        self._sock.listen(1)

    def receive(self, proc: Child, timeout: float = 60) -> int | None:
        """The master fd, or None when crun exited (failed) before sending one."""
        waited = 0.0
        while waited < timeout:
            ready, _, _ = select.select([self._sock], [], [], 0.05)
            if ready:
                conn, _ = self._sock.accept()
                with conn:
                    fds = array.array("i")
                    _, ancdata, _, _ = conn.recvmsg(1024, socket.CMSG_SPACE(fds.itemsize))
                    for level, kind, data in ancdata:
                        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
                    return fds[0] if fds else None
            if proc.poll() is not None:
                return None
            waited += 0.05
        return None

    def close(self) -> None:
        self._sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def sync_window_size(master: int) -> None:
    """Give the container's terminal the size of ours (when stdout is a terminal)."""
    with contextlib.suppress(OSError):
        size = fcntl.ioctl(sys.stdout.fileno(), termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(master, termios.TIOCSWINSZ, size)


@contextlib.contextmanager
def raw_stdin(enabled: bool) -> Iterator[None]:
    """Put a terminal stdin into raw mode for the session; restore it after."""
    fd = sys.stdin.fileno() if enabled else -1
    if fd < 0 or not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    tty.setraw(fd, termios.TCSANOW)  # not TCSAFLUSH: keep what was typed ahead
    try:
        yield
    finally:
        with contextlib.suppress(termios.error):  # EIO: the terminal hung up
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def copy(master: int, *, interactive: bool, sink: Sink | None) -> None:
    """Copy until the container side closes: master -> stdout (+ sink), stdin -> master.

    A terminal that hangs up ends what is copied to and from it, not the copy: the
    container's output still reaches its log, and secpod lives on to finish the run."""
    out: IO[bytes] | None = sys.stdout.buffer
    inputs = [master]
    stdin = sys.stdin.fileno() if interactive else -1
    if stdin >= 0:
        inputs.append(stdin)
    with raw_stdin(interactive):
        while True:
            try:
                ready, _, _ = select.select(inputs, [], [])
            except InterruptedError:
                continue
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every slave fd is closed, the process is gone
                    data = b""
                if not data:
                    break
                if sink is not None:
                    sink.write(b"stdout", data)
                if out is not None:
                    try:
                        out.write(data)
                        out.flush()
                    except OSError:  # EPIPE, or EIO from a terminal that hung up
                        out = None
            if stdin in ready:
                try:
                    data = os.read(stdin, 65536)
                except OSError:  # EIO: our terminal hung up; that is the end of input
                    data = b""
                if not data:
                    inputs.remove(stdin)
                    os.write(master, b"\x04")  # end of input, as a terminal says it
                    continue
                os.write(master, data)

