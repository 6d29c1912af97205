"""Learning mode: run a workload, record the syscalls it makes, write a minimal allow-list.

Rootless, through seccomp user notification: the workload runs under a filter
whose rule for every syscall of this architecture is ``SCMP_ACT_NOTIFY``, with
``listenerPath`` set to a socket this process listens on. crun sends the
filter's notification fd there (with the container state, SCM_RIGHTS); each
notified syscall is recorded and let through unchanged
(``SECCOMP_USER_NOTIF_FLAG_CONTINUE``). When the workload exits, the recorded
names become a Docker/Podman-format profile: default ERRNO (EPERM), the names
allowed, native architecture only. ``secpod run --security-opt seccomp=FILE``
then accepts it.

What it records is what this run did: a code path the run did not take is not
in the profile. Calls made by the runtime between loading the filter and
``execve`` (``prctl``, ``close``, ``execve`` itself) are recorded too, so the
profile can start the workload.
"""

from __future__ import annotations

import array
import errno
import fcntl
import json
import os
import select
import socket
import struct
import threading
from pathlib import Path

from secpod import paths
from secpod._record import field, record
from secpod.errors import Error, HostError, ProfileError

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

# SECCOMP_IOCTL_NOTIF_RECV / SEND: _IOWR('!', 0, struct seccomp_notif (80 bytes)) and
# _IOWR('!', 1, struct seccomp_notif_resp (24 bytes)), include/uapi/linux/seccomp.h.
_NOTIF_RECV = 0xC0502100
_NOTIF_SEND = 0xC0182101
_NOTIF_SIZE = 80
_FLAG_CONTINUE = 1
_ACCEPT_TIMEOUT = 120.0


@record(frozen=True)
class LearnResult:
    syscalls: tuple[str, ...]
    exit_status: int
    profile: dict[str, Any] = field(repr=False)


def _native_syscalls() -> list[str]:
    import seccomp  # type: ignore[import-not-found]

    names = set()
    for nr in range(0, 1024):
        try:
            name = seccomp.resolve_syscall(seccomp.Arch.NATIVE, nr)
        except (ValueError, RuntimeError):
            continue
        if name:
            names.add(name.decode() if isinstance(name, bytes) else str(name))
    return sorted(names)


def _native_arch() -> str:
    import seccomp

    # The bindings expose the AUDIT_ARCH_* values as signed 32-bit ints.
    native = seccomp.system_arch() & 0xFFFFFFFF
    for name in dir(seccomp.Arch):
        value = getattr(seccomp.Arch, name)
        if (not name.startswith("_") and name != "NATIVE" and isinstance(value, int)
                and value & 0xFFFFFFFF == native):
            return f"SCMP_ARCH_{name}"
    raise HostError("libseccomp does not know this machine's architecture")


class _Listener(threading.Thread):
    """Accepts crun's connection, takes the notify fd, records and continues each call."""

    def __init__(self, path: Path) -> None:
        super().__init__(name="secpod-learn", daemon=True)
        self.path = path
        self.seen: dict[str, int] = {}
        self.error: str | None = None
        self.got_fd = threading.Event()
        self._halt = threading.Event()
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(1)

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        import seccomp

        try:
            self.server.settimeout(_ACCEPT_TIMEOUT)
            conn, _ = self.server.accept()
            with conn:
                fds = array.array("i")
                _, anc, _, _ = conn.recvmsg(1 << 16, socket.CMSG_SPACE(4 * fds.itemsize))
                for level, kind, data in anc:
                    if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                        fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
            if not fds:
                self.error = "the runtime connected but sent no seccomp fd"
                return
            fd = fds[0]
            for extra in fds[1:]:
                os.close(extra)
            self.got_fd.set()
            try:
                self._loop(fd, seccomp)
            finally:
                os.close(fd)
        except OSError as e:
            self.error = f"the seccomp listener failed: {e}"
        finally:
            self.server.close()

    def _loop(self, fd: int, seccomp: Any) -> None:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while True:
            events = poller.poll(200)
            if not events:
                if self._halt.is_set():
                    return
                continue
            if any(ev & (select.POLLHUP | select.POLLERR) for _, ev in events) and not any(
                    ev & select.POLLIN for _, ev in events):
                return          # every filtered task has exited
            buf = bytearray(_NOTIF_SIZE)
            try:
                fcntl.ioctl(fd, _NOTIF_RECV, buf, True)
            except OSError as e:
                if e.errno in (errno.ENOENT, errno.EINTR):
                    continue
                raise
            nid, _pid, _flags, nr, _arch = struct.unpack_from("=QIIiI", buf, 0)
            try:
                name = seccomp.resolve_syscall(seccomp.Arch.NATIVE, nr)
                key = name.decode() if isinstance(name, bytes) else str(name)
            except (ValueError, RuntimeError):
                key = f"#{nr}"
            self.seen[key] = self.seen.get(key, 0) + 1
            resp = bytearray(struct.pack("=QqiI", nid, 0, 0, _FLAG_CONTINUE))
            try:
                fcntl.ioctl(fd, _NOTIF_SEND, resp, True)
            except OSError as e:
                if e.errno != errno.ENOENT:     # the task died meanwhile
                    raise


def learning_filter(listener: Path) -> dict[str, Any]:
    """The Docker-format filter that notifies every native syscall to ``listener``."""
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": [_native_arch()],
        "listenerPath": str(listener),
        "listenerMetadata": "secpod-learn",
        "syscalls": [{"names": _native_syscalls(), "action": "SCMP_ACT_NOTIFY"}],
    }


def allow_list(names: list[str]) -> dict[str, Any]:
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": errno.EPERM,
        "architectures": [_native_arch()],
        "syscalls": [{"names": sorted(names), "action": "SCMP_ACT_ALLOW",
                      "comment": "recorded by secpod profile learn"}],
    }


def learn(image: str, command: tuple[str, ...], out: Path, *,
          profile: str = "default") -> LearnResult:
    """Run ``image`` (``command``) under ``profile`` with a learning filter; write ``out``.

    The run goes through the runner like any other (floor, trust, audit); the
    floor sees it as ``--security-opt seccomp=FILE``. Raises whatever the run
    raises, HostError if the runtime never hands over the notification fd,
    ProfileError if the recorded profile does not compile, and Error if ``out``
    cannot be written.
    """
    from secpod.policies import seccomp as seccomp_mod
    from secpod.sandbox import run
    from secpod.spec import ContainerSpec, Process, Security

    rundir = paths.ensure_private_dir(paths.runtime_dir())
    sock = rundir / f"learn-{os.getpid()}.sock"
    filt = rundir / f"learn-{os.getpid()}.json"
    sock.unlink(missing_ok=True)
    listener = _Listener(sock)
    try:
        filt.write_text(json.dumps(learning_filter(sock)))
        listener.start()
        opts = ContainerSpec(
            image=image, process=Process(command=command), profile=profile,
            auto_remove=True, security=Security(seccomp=str(filt)))
        status = run.run(opts)
        listener.stop()
        listener.join(timeout=30)
    finally:
        listener.stop()
        sock.unlink(missing_ok=True)
        filt.unlink(missing_ok=True)
    if listener.error:
        raise HostError(listener.error, hint="check that crun supports linux.seccomp.listenerPath")
    if not listener.got_fd.is_set():
        raise HostError("the runtime never sent the seccomp notification fd",
                        hint="crun 0.19 or later passes it to linux.seccomp.listenerPath")
    names = sorted(n for n in listener.seen if not n.startswith("#"))
    data = allow_list(names)
    try:
        from secpod.sandbox.host import probe

        parsed = seccomp_mod.parse(data, str(out))
        seccomp_mod.compile_oci(parsed.to_oci(probe().arch, []), str(out))
    except Error as e:
        raise ProfileError(f"the learned profile does not compile: {e.message}") from e
    from secpod._files import write_atomic

    write_atomic(out, json.dumps(data, indent=2) + "\n")
    return LearnResult(syscalls=tuple(names), exit_status=status, profile=data)
