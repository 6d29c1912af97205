"""The runtime process a foreground ``run`` or an ``exec`` attaches to, started with
``posix_spawn`` (vfork and exec, as subprocess does here) without importing subprocess,
threading and selectors on the way of every run (docs/BENCHMARKS.md, issue 18).

What :class:`subprocess.Popen` does for secpod and this does too: the child gets its own
session (signals reach it only as secpod forwards them); the signals Python ignores or
changes at start-up (SIGPIPE, SIGXFSZ) are back to their defaults in it; every
inheritable descriptor other than its stdio is closed in it (``close_fds``); pipes are
made close-on-exec on secpod's side.
"""

from __future__ import annotations

import os
import signal

DEVNULL = -1  # stdio spec: /dev/null
PIPE = -2     # stdio spec: a pipe, whose other end the Child holds

_RESET = (signal.SIGPIPE, signal.SIGXFSZ)


class Child:
    """A started process: ``pid``, the parent's ends of its pipes (raw fds or None),
    ``poll()`` and ``wait()`` giving the status as Popen's ``returncode`` does (minus N
    for signal N)."""

    __slots__ = ("pid", "stdin", "stdout", "stderr", "returncode")

    def __init__(self, pid: int, stdin: int | None, stdout: int | None,
                 stderr: int | None) -> None:
        self.pid, self.stdin, self.stdout, self.stderr = pid, stdin, stdout, stderr
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self) -> int:
        while self.returncode is None:
            try:
                _, status = os.waitpid(self.pid, 0)
            except InterruptedError:
                continue
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait_for(self, timeout: float) -> int | None:
        """:meth:`wait`, for at most ``timeout`` seconds; None if it still runs."""
        import time

        deadline = time.monotonic() + timeout
        while self.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        return self.returncode

    def kill(self) -> None:
        """SIGKILL, unless it is reaped (an unreaped child's pid is no one else's)."""
        if self.poll() is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def spawn(argv: list[str], *, stdin: int | None, stdout: int | None,
          stderr: int | None) -> Child:
    """Start ``argv`` (``argv[0]`` an absolute path) in a new session.

    Each stdio spec is None (inherit secpod's), DEVNULL, PIPE, or a descriptor to give it.
    Raises OSError when the program cannot be started."""
    actions: list[tuple[int, ...]] = []
    mine: list[int | None] = [None, None, None]
    theirs: list[int] = []
    try:
        for target, spec in enumerate((stdin, stdout, stderr)):
            if spec is None:
                continue
            if spec == DEVNULL:
                fd = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
                theirs.append(fd)
            elif spec == PIPE:
                r, w = os.pipe()  # both close-on-exec
                fd, parent = (r, w) if target == 0 else (w, r)
                mine[target] = parent
                theirs.append(fd)
            else:
                fd = spec
            actions.append((os.POSIX_SPAWN_DUP2, fd, target))
        keep = {action[1] for action in actions} | {0, 1, 2}
        for name in os.listdir("/proc/self/fd"):
            if int(name) not in keep and _inheritable(int(name)):
                actions.append((os.POSIX_SPAWN_CLOSE, int(name)))
        pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions, setsid=True,
                             setsigdef=_RESET)
    except BaseException:
        for end in mine:
            if end is not None:
                os.close(end)
        raise
    finally:
        for end in theirs:
            os.close(end)
    return Child(pid, *mine)


def _inheritable(fd: int) -> bool:
    try:
        return os.get_inheritable(fd)
    except OSError:  # the listing's own descriptor, closed by now
        return False
