"""``secpod attach``: a detached container's output, live, through its monitor.

conmon, the monitor of every detached container, listens on a SOCK_SEQPACKET socket,
``SOCKETS/CUUID/attach``, and sends each piece of the container's output to every
client as one packet whose first byte says the stream (2 stdout, 3 stderr). attach
copies those to its own stdout and stderr until the container exits (conmon closes the
socket), then waits for the exit to be recorded and returns the container's status, as
``docker attach`` does. Signals to attach (Ctrl-C, ...) are passed on to the container
unless ``--sig-proxy=false``, each recorded as a ``container.kill``.

What it cannot do here: secpod starts conmon without the container's stdin (a
detached container has none), so attach never sends input; a ``-t`` container's
terminal output arrives as stdout. Output from before attach is in ``secpod logs``.
"""

from __future__ import annotations

import contextlib
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

STDOUT, STDERR = 2, 3
PROXIED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
           signal.SIGUSR2)


def attach(ref: str, *, sig_proxy: bool = True, env: Environment | None = None) -> int:
    """Copy the running container ``ref``'s output here until it exits; return its exit
    status (-1 when it is unknown). Raises NotFound, Conflict (not running, or not held
    by conmon), HostError (the attach socket cannot be reached)."""
    env = env or Environment.load(check_host=False)
    ctr = state.lookup(ref)
    rt = env.runtime_for(ctr)
    now = operations.status_of(ctr, rt.state(ctr.id))
    if now is not operations.Status.RUNNING:
        raise Conflict(f"container {ctr.name} is not running ({now})",
                       hint=f"secpod start {ctr.name}; what it wrote: secpod logs {ctr.name}")
    if ctr.monitor != "conmon":
        raise Conflict(f"container {ctr.name} runs in the foreground of another secpod run: "
                       "its output goes to that terminal",
                       hint=f"follow its log instead: secpod logs -f {ctr.name}")
    path = state.exits_dir().parent / "sockets" / ctr.id[:12] / "attach"
    # Signals are taken from here on (a Ctrl-C while connecting is passed on too).
    pending: list[int] = []
    previous = {}
    if sig_proxy:
        previous = {sig: signal.signal(sig, lambda n, _f: pending.append(n)) for sig in PROXIED}
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    try:
        try:
            sock.connect(str(path))
        except OSError as e:
            raise HostError(f"cannot reach the monitor of {ctr.name} at {path}: "
                            f"{e.strerror or e}",
                            hint=f"secpod logs -f {ctr.name} follows its log") from e
        _copy(sock, pending, lambda sig: _forward(ctr.id, sig, env))
    finally:
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    code = operations.wait_exit(ctr.id, env)
    return -1 if code is None else code


def _copy(sock: socket.socket, pending: list[int], forward: Callable[[int], None]) -> None:
    outs = {STDOUT: sys.stdout.buffer, STDERR: sys.stderr.buffer}
    while True:
        while pending:
            forward(pending.pop(0))
        try:
            ready, _, _ = select.select([sock], [], [], 0.2)
        except InterruptedError:
            continue
        if not ready:
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
