"""Monitors: what holds a container's stdio and waits for its exit.

- Foreground ``run``: secpod itself runs the runtime's ``run``, copies the container's
  stdout and stderr to its own and to the container log, forwards signals,
  and returns the exit status.
- Detached (``create``, ``run -d``): conmon, as Podman uses it. It runs
  the runtime's ``create`` (crun or runc: only ``-r`` and the runtime arguments
  differ), holds the log, waits for the exit, writes the exit status
  to the exit dir and calls ``secpod container-cleanup ID`` back, so that
  no daemon is needed.

Both write the log in the k8s-file format conmon uses
(``TIME STREAM F|P TEXT``), bounded by the profile's ``[logs] size_max``, so
``secpod logs`` reads one format (secpod.sandbox.logs).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import sys
import time
from pathlib import Path

from secpod import paths
from secpod._files import which
from secpod.errors import HostError, RuntimeFailed
from secpod.sandbox import spawn
from secpod.sandbox.logs import DEFAULT_SIZE_MAX, LogWriter, file_max, rotate_for_restart

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from secpod.runtime import OCIRuntime
    from secpod.sandbox.state import Container

FORWARDED = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGWINCH,
)


class Monitors:
    """What holds a container: conmon when detached, secpod itself in the foreground
    (the lifecycle gets these from its Environment; unit tests give fakes)."""

    def detached(self, rt: OCIRuntime, ctr: Container, *, exit_dir: Path,
                 log_size_max: int) -> int:
        """conmon creates the container and holds it; returns the container's pid."""
        with _pod_namespaces(ctr):
            return start_conmon(rt, ctr.id, ctr.name, ctr.bundle, ctr.dir,
                                log_path=ctr.log_path, exit_dir=exit_dir, terminal=ctr.tty,
                                log_size_max=log_size_max, log_driver=ctr.log_driver,
                                stdin=ctr.stdin)

    def foreground(self, rt: OCIRuntime, ctr: Container, *, interactive: bool,
                   log_size_max: int) -> int:
        """Run the container attached to our stdio; returns its exit status."""
        with _pod_namespaces(ctr):
            return run_foreground(rt, ctr.id, ctr.bundle, ctr.dir, interactive=interactive,
                                  log_path=ctr.log_path, terminal=ctr.tty,
                                  log_size_max=log_size_max,
                                  keep_log=ctr.log_driver != "none")


def _pod_namespaces(ctr: Container) -> contextlib.AbstractContextManager[None]:
    """A pod member's runtime joins its pod's namespaces through descriptors this
    process holds while it launches the container (secpod.pods.namespaces)."""
    if not ctr.pod or ctr.pod_infra:
        return contextlib.nullcontext()
    from secpod.pods import namespaces

    return namespaces.passing(ctr)


def run_foreground(
    rt: OCIRuntime,
    cid: str,
    bundle: Path,
    folder: Path,
    *,
    interactive: bool,
    log_path: Path,
    terminal: bool = False,
    log_size_max: int = DEFAULT_SIZE_MAX,
    keep_log: bool = True,
) -> int:
    """Run the container attached; return its exit status (128+N when killed by signal N).
    ``keep_log``: False for ``--log-driver none`` (the output is copied, not logged).

    Raises RuntimeFailed when the runtime fails before the container's process starts.
    """
    pidfile = folder / "pid"
    rt_log = folder / "runtime.log"
    head = rt.run_argv(rt_log)
    tail = ["--bundle", str(bundle), "--pid-file", str(pidfile), cid]
    log = LogWriter(log_path, log_size_max) if keep_log else None
    try:
        code = attach(head, tail, interactive=interactive, terminal=terminal, sink=log,
                      console=console_path(rt, f"{cid[:12]}.console"),
                      force_stop=lambda: _kill_quietly(rt, cid))
    finally:
        if log is not None:
            log.close()
    if code != 0 and not pidfile.exists():
        raise RuntimeFailed(
            f"{rt.name} could not start the container: {rt.error_words(rt_log) or code}",
            hint="secpod doctor checks what this host allows",
        )
    return code


def console_path(rt: OCIRuntime, name: str) -> Path | None:
    """Where the runtime hands a terminal's master over, or None when it wants a
    terminal as its own stdio instead (runc in the foreground)."""
    if not rt.console_socket_in_foreground:
        return None
    return paths.runtime_dir() / "sockets" / name


def _kill_quietly(rt: OCIRuntime, cid: str) -> None:
    with contextlib.suppress(RuntimeFailed):
        rt.kill(cid, "KILL")


def attach(
    head: list[str],
    tail: list[str],
    *,
    interactive: bool,
    terminal: bool,
    sink: LogWriter | None,
    console: Path | None,
    force_stop: Callable[[], None] | None = None,
) -> int:
    """Run ``head [--console-socket S] tail`` (a runtime's run or exec) attached to our
    stdio.

    Signals are forwarded once (the runtime gets its own session); with a terminal the
    container's pty is copied instead of pipes, and SIGWINCH resizes it. With a
    terminal and no ``console`` socket, the runtime's own stdio is a pty of ours, which
    it proxies to the container's (runc refuses a console socket in the foreground).
    Returns the exit status, 128+N for signal N. The third SIGINT (Ctrl-C) calls
    ``force_stop``, as Docker does: a container's PID 1 ignores SIGINT unless it
    handles it, and the user is not left without a way out.
    """
    sock = None
    master: int | None = None
    slave: int | None = None
    if terminal:
        # Only with a terminal: tty pulls in termios, tty and socket.
        from secpod.sandbox import tty

        if console is not None:
            sock = tty.ConsoleSocket(console)
        else:
            master, slave = os.openpty()
            tty.sync_window_size(master)  # the runtime copies it from its stdin
    argv = [*head, *(["--console-socket", str(console)] if sock else []), *tail]
    # -i without -t: a file or pipe on our stdin is handed over as it is, but never
    # your terminal. With the terminal itself as its fd 0 a container could change
    # its modes (echo off, raw) for after it exits; it gets a pipe we copy into.
    stdin: int | None = spawn.DEVNULL
    if interactive and not terminal:
        stdin = spawn.PIPE if _stdin_is_a_terminal() else None
    if slave is not None:
        stdin = slave
    out = spawn.PIPE if not terminal else spawn.DEVNULL if slave is None else slave
    try:
        proc = spawn.spawn(argv, stdin=stdin, stdout=out, stderr=out)
    except OSError as e:
        raise RuntimeFailed(f"cannot start {argv[0]}: {e.strerror or e}",
                            hint="secpod doctor checks what this host allows") from e
    if slave is not None:
        os.close(slave)  # the runtime holds it: our master reads EIO once it exits

    interrupts = 0

    def forward(signum: int, _frame: object) -> None:
        nonlocal interrupts
        if signum == signal.SIGWINCH and master is not None:
            tty.sync_window_size(master)
            if sock is not None:
                return  # the container's own pty; a proxying runtime resizes on WINCH
        if signum == signal.SIGINT and force_stop is not None:
            interrupts += 1
            if interrupts == 3:
                print("secpod: third interrupt: killing the container", file=sys.stderr)
                force_stop()
                return
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signum)

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED}
    try:
        if sock is not None:
            master = sock.receive(proc)
            sock.close()
            if master is not None:
                tty.sync_window_size(master)
                tty.copy(master, interactive=interactive, sink=sink)
                os.close(master)
        elif master is not None:
            tty.copy(master, interactive=interactive, sink=sink)
            os.close(master)
        else:
            _pump(proc, sink)
        code = proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 - code if code < 0 else code


def _stdin_is_a_terminal() -> bool:
    try:
        return os.isatty(0)
    except OSError:
        return False


def _pump(proc: spawn.Child, log: LogWriter | None) -> None:
    """Copy the container's stdout and stderr to ours (and the log) until both close,
    and, when it has a stdin pipe, our stdin into it."""
    assert proc.stdout is not None and proc.stderr is not None
    targets = {
        proc.stdout: (b"stdout", sys.stdout.buffer),
        proc.stderr: (b"stderr", sys.stderr.buffer),
    }
    poller = select.poll()
    for fd in targets:
        poller.register(fd, select.POLLIN)
    feed = _StdinFeed(proc.stdin, poller) if proc.stdin is not None else None
    try:
        _copy_out(poller, targets, feed, log)
    finally:
        for fd in (proc.stdout, proc.stderr):
            os.close(fd)
        if feed is not None and not feed.closed:
            with contextlib.suppress(OSError):
                os.close(feed.dst)


def _copy_out(poller: select.poll, targets: dict[int, tuple[bytes, Any]],
              feed: _StdinFeed | None, log: LogWriter | None) -> None:
    while targets:
        for fd, _event in poller.poll():
            if feed is not None and feed.handles(fd):
                feed.on_ready(fd)
                continue
            if fd not in targets:
                continue
            try:
                data = os.read(fd, 65536)
            except InterruptedError:
                continue
            if not data:  # end of file (POLLHUP with nothing left to read)
                poller.unregister(fd)
                del targets[fd]
                continue
            stream, out = targets[fd]
            if log is not None:
                log.write(stream, data)
            try:
                out.write(data)
                out.flush()
            except BrokenPipeError:
                targets[fd] = (stream, _Null())  # keep logging when the reader went away


class _Null:
    def write(self, data: bytes) -> int:
        return len(data)


class _StdinFeed:
    """Our stdin (a terminal, in cooked mode: a line at a time) into the container's
    stdin pipe, without ever blocking the copy of its output. End of input (Ctrl-D)
    closes the pipe; a container that stops reading just stops getting input."""

    def __init__(self, pipe: int, poller: select.poll) -> None:
        self.poller, self.pending, self.closed = poller, b"", False
        self.src, self.dst = 0, pipe
        os.set_blocking(self.dst, False)
        poller.register(self.src, select.POLLIN)

    def handles(self, fd: int) -> bool:
        return fd in (0, self.dst)

    def on_ready(self, fd: int) -> None:
        if self.closed:  # an event from the same select() as the close
            return
        if fd == self.src:
            try:
                data = os.read(self.src, 65536)
            except InterruptedError:
                return
            except OSError:
                data = b""
            if not data:
                self._close()
                return
            self.pending = data
            self.poller.unregister(self.src)
            self.poller.register(self.dst, select.POLLOUT)
            return
        try:
            sent = os.write(self.dst, self.pending)
        except BlockingIOError:
            return
        except OSError:  # the container closed its stdin or exited
            self._close()
            return
        self.pending = self.pending[sent:]
        if not self.pending:
            self.poller.unregister(self.dst)
            self.poller.register(self.src, select.POLLIN)

    def _close(self) -> None:
        for fd in (self.src, self.dst):
            with contextlib.suppress(KeyError, ValueError):
                self.poller.unregister(fd)
        with contextlib.suppress(OSError):
            os.close(self.dst)
        self.closed = True

    def flush(self) -> None:
        pass


def conmon_path() -> str:
    path = which("conmon", path=os.environ.get("PATH", "") + ":/usr/bin:/usr/libexec/podman")
    if path is None:
        raise HostError(
            "conmon not found (needed for detached containers)", hint="apt-get install conmon"
        )
    return path


def start_conmon(
    rt: OCIRuntime,
    cid: str,
    name: str,
    bundle: Path,
    folder: Path,
    *,
    log_path: Path,
    exit_dir: Path,
    terminal: bool = False,
    log_size_max: int = DEFAULT_SIZE_MAX,
    log_driver: str = "k8s-file",
    stdin: bool = False,
) -> int:
    """Create the container under a new conmon; return the container's pid. With
    ``stdin``, conmon holds a pipe as the container's stdin and writes to it what
    attach clients send (closing it when the first of them ends its input).

    conmon double-forks and outlives this process. Raises RuntimeFailed with
    the runtime's words when the container cannot be created.
    """
    import subprocess  # detached only: not on the way of a foreground run

    sockets = paths.runtime_dir() / "sockets"
    sockets.mkdir(mode=0o700, parents=True, exist_ok=True)
    exit_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    rt_log = folder / "runtime.log"
    rotate_for_restart(log_path)
    argv = [
        conmon_path(),
        "--api-version",
        "1",
        "-c",
        cid,
        "-u",
        cid[:12],  # conmon's attach socket is SOCKETS/CUUID/attach: 108 bytes at most
        "-n",
        name,
        "-r",
        rt.binary,
        "-b",
        str(bundle),
        "-p",
        str(folder / "pid"),
        "-P",
        str(folder / "conmon.pid"),
        "-l",
        log_target(log_driver, log_path),
        "--log-size-max",
        str(file_max(log_size_max)),
        "--exit-dir",
        str(exit_dir),
        "--socket-dir-path",
        str(sockets),
        "--log-level",
        "error",
        "--exit-command",
        sys.executable,
        "--exit-command-arg",
        "-m",
        "--exit-command-arg",
        "secpod",
        "--exit-command-arg",
        "container-cleanup",
        "--exit-command-arg",
        cid,
    ]
    if terminal:
        argv.append("--terminal")  # conmon receives the pty and logs its output
    if stdin:
        argv.append("--stdin")
    if log_driver == "journald":
        argv += ["--log-tag", name]

    for arg in rt.global_args(rt_log):
        argv += ["--runtime-arg", arg]
    read_fd, write_fd = os.pipe()
    env = dict(os.environ, _OCI_SYNCPIPE=str(write_fd))
    # systemd's notify socket is secpod's to answer (sandbox/sdnotify.py): the runtime,
    # given it, would hand it to the container, which --sdnotify conmon does not ask.
    env.pop("NOTIFY_SOCKET", None)
    # conmon keeps the sync pipe and stderr open for its whole life: read one message,
    # never wait for EOF; its stderr goes to a file in the container's folder.
    with open(folder / "conmon.err", "wb") as err_file:
        try:
            proc = subprocess.Popen(
                argv,
                pass_fds=(write_fd,),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err_file,
                start_new_session=True,
            )
        finally:
            os.close(write_fd)
    with os.fdopen(read_fd, "rb") as sync:
        message = _read_sync_message(sync.fileno(), timeout=60)
    proc.wait(timeout=60)
    pid = int(message.get("data", -1)) if isinstance(message.get("data"), int) else -1
    if pid <= 0:
        why = (
            message.get("message")
            or rt.error_words(rt_log)
            or _tail(folder / "conmon.err")
            or "conmon failed"
        )
        raise RuntimeFailed(
            f"the container could not be created: {why}",
            hint="secpod doctor checks what this host allows",
        )
    return pid


def log_target(driver: str, log_path: Path) -> str:
    """conmon's ``-l`` for a log driver (conmon 2.1 has k8s-file, journald and none)."""
    return {"none": "none:", "journald": "journald:"}.get(driver, f"k8s-file:{log_path}")


def _read_sync_message(fd: int, timeout: float) -> dict[str, Any]:
    """The first JSON object conmon writes to its sync pipe ({} on EOF or timeout)."""
    buf = b""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        buf += chunk
        try:
            data, _ = json.JSONDecoder().raw_decode(buf.decode(errors="replace").lstrip())
        except json.JSONDecodeError:
            continue
        return data if isinstance(data, dict) else {}
    return {}


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1] if lines else ""


def monitor_pid(folder: Path) -> int | None:
    try:
        return int((folder / "conmon.pid").read_text().strip())
    except (OSError, ValueError):
        return None
