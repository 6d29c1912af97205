"""``secpod attach`` and ``secpod start -a``: a detached container's output, live,
through its monitor, and its stdin when it was made with ``-i``.

conmon, the monitor of every detached container, listens on a SOCK_SEQPACKET socket,
``SOCKETS/CUUID/attach``, and sends each piece of the container's output to every
client as one packet whose first byte says the stream (2 stdout, 3 stderr). attach
copies those to its own stdout and stderr until the container exits (conmon closes the
socket), then waits for the exit to be recorded and returns the container's status, as
``docker attach`` does. Signals to attach (Ctrl-C, ...) are passed on to the container
unless ``--sig-proxy=false``, each recorded as a ``container.kill``.

A container made with ``-i`` (``create -i``, ``run -d -i``) has a conmon that holds a
pipe as its stdin (``conmon --stdin``): what a client writes to the socket goes there,
and the end of a client's input (its half of the socket shut) closes it, so that the
container sees end-of-file. ``start -a`` connects to the socket once conmon holds the
created container and before its process is let go (operations.start's
``before_start``): the output is followed from its first byte.

What it cannot do here: a ``-t`` container's terminal output arrives as stdout, and
secpod does not put its own terminal into raw mode (input goes a line at a time);
a container made without ``-i`` has no stdin to write to. Output from before attach is
in ``secpod logs``.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import sys

from secpod.errors import Conflict, HostError
from secpod.sandbox import operations, state
from secpod.sandbox.environment import Environment

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from collections.abc import Callable

    from secpod.sandbox.state import Container

STDOUT, STDERR = 2, 3
PROXIED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
           signal.SIGUSR2)


def attach(ref: str, *, sig_proxy: bool = True, stdin: bool = True,
           env: Environment | None = None) -> int:
    """Copy the running container ``ref``'s output here until it exits, and, with
    ``stdin``, our stdin to it when it was made with ``-i``; return its exit status
    (-1 when it is unknown). Raises NotFound, Conflict (not running, or not held by
    conmon), HostError (the attach socket cannot be reached)."""
    env = env or Environment.load(check_host=False)
    ctr = state.lookup(ref)
    rt = env.runtime_for(ctr)
    now = operations.status_of(ctr, rt.state(ctr.id))
    if now is not operations.Status.RUNNING:
        raise Conflict(f"container {ctr.name} is not running ({now})",
                       hint=f"secpod start {ctr.name}; what it wrote: secpod logs {ctr.name}")
    _check_held(ctr)
    return _follow(ctr, _connect(ctr), env, sig_proxy=sig_proxy, stdin=stdin and ctr.stdin)


def start_attached(ref: str, *, interactive: bool = False, sig_proxy: bool = True,
                   env: Environment | None = None) -> int:
    """Docker's ``start -a [-i]``: start the created or exited container ``ref`` with
    this process attached to its output (and, with ``interactive``, its stdin) from
    the first byte; a running one is attached to. Returns its exit status (-1 when it
    is unknown). Raises NotFound, Conflict (made without -i and ``interactive``; paused;
    run in the foreground by another secpod), what ``start`` raises, HostError."""
    looking = env or Environment.load(check_host=False)
    ctr = state.lookup(ref)
    if interactive and not ctr.stdin:
        raise Conflict(f"container {ctr.name} was made without -i: it has no stdin to attach",
                       hint=f"secpod start -a {ctr.name} follows its output; for input, "
                            "make it with secpod create -i")
    now = operations.status(ctr, looking)
    if now is operations.Status.RUNNING:
        return attach(ref, sig_proxy=sig_proxy, stdin=interactive, env=looking)
    connected: list[socket.socket] = []

    def connect(current: Container) -> None:
        _check_held(current)
        connected.append(_connect(current))

    try:
        operations.start(ctr, env, before_start=connect)
    except BaseException:
        for sock in connected:
            sock.close()
        raise
    return _follow(ctr, connected[0], looking, sig_proxy=sig_proxy, stdin=interactive)


def _check_held(ctr: Container) -> None:
    if ctr.monitor != "conmon":
        raise Conflict(f"container {ctr.name} runs in the foreground of another secpod run: "
                       "its output goes to that terminal",
                       hint=f"follow its log instead: secpod logs -f {ctr.name}")


def _connect(ctr: Container) -> socket.socket:
    path = state.exits_dir().parent / "sockets" / ctr.id[:12] / "attach"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    try:
        sock.connect(str(path))
    except OSError as e:
        sock.close()
        raise HostError(f"cannot reach the monitor of {ctr.name} at {path}: "
                        f"{e.strerror or e}",
                        hint=f"secpod logs -f {ctr.name} follows its log") from e
    return sock


def _follow(ctr: Container, sock: socket.socket, env: Environment, *, sig_proxy: bool,
            stdin: bool) -> int:
    """Copy until the container exits; then its recorded exit status (-1: unknown)."""
    pending: list[int] = []
    previous = {}
    if sig_proxy:
        previous = {sig: signal.signal(sig, lambda n, _f: pending.append(n)) for sig in PROXIED}
    try:
        _copy(sock, pending, lambda sig: _forward(ctr.id, sig, env),
              sys.stdin.fileno() if stdin else None)
    finally:
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    early = _exit_status(ctr)
    code = operations.wait_exit(ctr.id, env)
    code = early if code is None else code
    return -1 if code is None else code


def _exit_status(ctr: Container, timeout: float = 10) -> int | None:
    """The status conmon writes to its exit file right after it closes the socket,
    watched for until the exit is recorded: a --rm container's record (and that file)
    go with its removal, which its cleanup command starts as soon as conmon ends."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            return int(ctr.exit_file.read_text().strip())
        try:
            current = ctr.reload()
        except (OSError, ValueError):
            return None  # removed already: what wait_exit saw is all there is
        if current.exit_recorded:
            return current.exit_code
        time.sleep(0.002)
    return None


#: What conmon reads of a client's input at once (its buffer): one packet each.
INPUT_CHUNK = 8192


def _copy(sock: socket.socket, pending: list[int], forward: Callable[[int], None],
          feed: int | None = None) -> None:
    """The container's output to ours until conmon closes the socket; ``feed`` (our
    stdin) to the container meanwhile, its end shutting our half of the socket."""
    outs = {STDOUT: sys.stdout.buffer, STDERR: sys.stderr.buffer}
    out_fd = sock.fileno()
    while True:
        while pending:
            forward(pending.pop(0))
        try:
            ready, _, _ = select.select([out_fd] if feed is None else [out_fd, feed], [], [],
                                        0.2)
        except InterruptedError:
            continue
        if feed is not None and feed in ready:
            feed = _feed(sock, feed)
        if out_fd not in ready:
            continue
        try:
            packet = sock.recv(65536)
        except InterruptedError:
            continue
        except ConnectionResetError:
            return
        if not packet:
            return  # the container exited: conmon closed the socket
        out = outs.get(packet[0])
        if out is None:
            continue
        with contextlib.suppress(BrokenPipeError):
            out.write(packet[1:])
            out.flush()


def _feed(sock: socket.socket, fd: int) -> int | None:
    """One read of our stdin, sent to conmon; None once it has ended (or the container
    no longer reads: conmon closed its side)."""
    try:
        data = os.read(fd, INPUT_CHUNK)
    except InterruptedError:
        return fd
    except OSError:
        data = b""
    if not data:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)  # conmon closes the container's stdin
        return None
    try:
        sock.sendall(data)
    except OSError:  # the container exited, or conmon closed its stdin
        return None
    return fd


def _forward(cid: str, sig: int, env: Environment) -> None:
    """Pass ``sig`` on as ``secpod kill`` would (and recorded as it is)."""
    from secpod.errors import Error

    name = signal.Signals(sig).name
    try:
        operations.kill(cid, name, env)
    except Error as e:  # it exited meanwhile: the copy ends by itself
        print(f"secpod: {name} not passed on: {e.message}", file=sys.stderr)
        return
    print(f"secpod: {name} passed to the container", file=sys.stderr)
