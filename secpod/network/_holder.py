"""The namespace holder of one container, and its port forwarder
(docs/adr/0005-network-holder.md, docs/adr/0006-overlay-root.md).

Run as :func:`main` in a fork of secpod (``secpod.network.spawn``: no interpreter to
start). A holder that serves (forwards ports, or is pasta's parent) for a detached
container lives as long as the container: once secpod lets go of it (``watch detach``)
and nothing is being relayed, it execs a small interpreter of its own,
``python3 -I -S -c RESUME ...``, which imports this file from its ``__pycache__`` and goes
on in :func:`resume` with the same namespaces, sockets, watched processes and children.
So this file uses the standard library only, no secpod import and no json (its regular
expressions cost half a megabyte), and loads selectors and threading only to serve. It
talks to secpod over the unix socket CTL_FD, one line per message, words separated by
spaces:

1. ``log PATH`` (its stderr from now on), then ``ports IP,HOST_PORT,PORT,PROTO ...`` (none
   for a container that publishes nothing); the holder binds each host address and port
   in the host's network namespace (where it still is) and answers ``bound PORT...`` (the
   ports the kernel gave for 0) or ``error INDEX ERRNO`` and exits;
2. ``unshare [user] [net] [mnt]``: it unshares a user namespace, a network namespace (for
   published ports) and a mount namespace (for an overlay root) as asked, and answers
   ``unshared PID``; after a new user namespace secpod writes the container's id
   mappings into it (newuidmap, newgidmap) and sends ``mapped``. A pod's member does
   not make its own user namespace: ``enter PATH DEV INO`` first (PATH in hex) makes the
   holder join the pod's, once the namespace it opened is the one recorded (device and
   inode of its nsfs file), and it answers ``entered`` (docs/adr/0008-pods.md);
3. with ``net``, it brings ``lo`` up and lets unprivileged processes of that namespace
   bind low ports (``net.ipv4.ip_unprivileged_port_start = 0`` there, as Docker does);
   with ``nft`` (and ``net``), secpod's next line is ``nft PATH`` (hex): the holder runs
   ``nft -f PATH`` there, pasta's egress allow list (secpod.network.egress), before
   anything else joins the namespace; with ``mnt``, secpod's next line is
   ``mount LOWER UPPER WORK TARGET`` (each path in hex): a child of the holder unshares
   a mount namespace and mounts the container's overlay root there. Then it answers
   ``ready ROOT_PID`` (the child's pid, 0 without ``mnt``; or ``error STEP ERRNO``): the
   container joins the namespaces by path, the mount namespace the child's;
4. ``watch detach|stay PID...``: it lives until any of these processes ends (the
   container's monitor, the container) and answers ``ok``. With ``detach`` it stops dying
   with its parent (PR_SET_PDEATHSIG), which it does until then. A holder that serves
   nothing (no port bound, no pasta) exits once it has answered: the container's
   processes hold the namespaces. One that serves lives on, since its children (pasta,
   the overlay's mount namespace holder) die with it.

With ``--network pasta`` secpod sends ``helper`` before the ports: the holder forks a child
that stays in the host's namespaces and dies with the holder (PR_SET_PDEATHSIG, kept
across exec), and after ``ready``, ``exec ERR_PATH HEXWORD...`` makes that child exec the
hex-encoded argv (pasta, in the foreground, attached to the holder's namespaces), its
stderr to ERR_PATH; the holder answers ``helper PID``. So pasta lives no longer than the
holder, whichever way the holder ends (docs/adr/0007-pasta.md).

secpod may start it before it knows what it is for (its start-up overlaps secpod's own
work): until the first line it only waits.

Its listening sockets stay in the host's namespace; every socket it makes afterwards is
made in the container's. A TCP connection is relayed by two threads with splice(2)
through a pipe (no copy through user space); a UDP datagram goes through one connected
socket per peer. The container has no route anywhere but its own loopback.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import signal
import socket
import struct
import sys
import time

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    import selectors
    from typing import Any

EVENT_READ = 1                 # selectors.EVENT_READ, without importing selectors
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
CLONE_NEWNS = 0x00020000
MS_NODEV = 0x4
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
PR_SET_PDEATHSIG = 1
SIOCSIFFLAGS = 0x8914
IFF_UP, IFF_RUNNING = 0x1, 0x40
F_SETPIPE_SZ = 1031
PIPE_SIZE = 1 << 20
CHUNK = 1 << 20
UDP_IDLE = 120.0
CONNECT_TIMEOUT = 5.0

_libc = ctypes.CDLL(None, use_errno=True)


class Ctl:
    def __init__(self, fd: int) -> None:
        self.sock = socket.socket(fileno=fd)
        self.buf = b""

    def send(self, *words: object) -> None:
        self.sock.sendall(" ".join(map(str, words)).encode() + b"\n")

    def recv(self) -> list[str]:
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                os._exit(0)        # secpod ended before the container was made
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode().split(" ")


def _die_with_parent(parent: int) -> None:
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def _keep_only(fd: int) -> None:
    """In a child of the holder: close every descriptor but stdin, stdout, stderr and
    ``fd``. A child holds nothing of its parent's: no listening socket, no control
    socket and no pipe end outlives the holder in it, and the end of file the holder's
    peers wait for (the helper's pipe, secpod's control socket) comes when the holder
    closes its own copy or ends."""
    os.closerange(3, fd)
    os.closerange(fd + 1, os.sysconf("SC_OPEN_MAX"))


def _fork_helper() -> tuple[int, int]:
    """A child in the host's namespaces that waits for an argv on a pipe and execs it;
    (pid, the pipe's write end). It dies with the holder."""
    r, w = os.pipe()
    holder = os.getpid()
    pid = os.fork()
    if pid == 0:
        try:
            _keep_only(r)
            _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() != holder:
                os._exit(1)
            data = b""
            while True:
                chunk = os.read(r, 65536)
                if not chunk:
                    break
                data += chunk
            words = data.decode().split(" ")
            if len(words) < 2:
                os._exit(0)          # the holder ended, or pasta is not wanted after all
            err = os.open(bytes.fromhex(words[0]).decode(),
                          os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(err, 2)
            os.dup2(err, 1)
            argv = [bytes.fromhex(x).decode() for x in words[1:]]
            for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGPIPE):
                signal.signal(sig, signal.SIG_DFL)
            os.execvp(argv[0], argv)  # noqa: S606 - pasta, argv from secpod, no shell
        except BaseException:
            os._exit(127)
    os.close(r)
    return pid, w


class BindFailed(Exception):
    """Binding the I-th port failed with ERRNO."""


def _bind(words: list[str]) -> list[Any]:
    ports: list[dict[str, Any]] = []
    for w in words:
        ip, host_port, port, proto = w.split(",")
        ports.append({"host_ip": ip, "host_port": int(host_port), "container_port": int(port),
                      "protocol": proto})
    out: list[Any] = []
    for i, p in enumerate(ports):
        family = socket.AF_INET6 if ":" in p["host_ip"] else socket.AF_INET
        kind = socket.SOCK_STREAM if p["protocol"] == "tcp" else socket.SOCK_DGRAM
        s = socket.socket(family, kind)
        if kind == socket.SOCK_STREAM:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            s.bind((p["host_ip"], p["host_port"]))
            if kind == socket.SOCK_STREAM:
                s.listen(128)
        except OSError as e:
            raise BindFailed(i, e.errno) from e
        s.setblocking(False)
        out.append((s, p))
    return out


def _loopback_up() -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", IFF_UP | IFF_RUNNING))
    finally:
        s.close()


def _pipe() -> tuple[int, int]:
    r, w = os.pipe()
    try:
        fcntl.fcntl(w, F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:
        pass     # the default pipe size (above /proc/sys/fs/pipe-max-size for users)
    return r, w


def _splice(src: int, dst: int) -> None:
    r, w = _pipe()
    try:
        while True:
            n = os.splice(src, w, CHUNK, flags=os.SPLICE_F_MOVE)
            if n == 0:
                break
            while n:
                n -= os.splice(r, dst, n, flags=os.SPLICE_F_MOVE)
    except OSError:
        pass
    finally:
        os.close(r)
        os.close(w)
        try:
            socket.socket(fileno=os.dup(dst)).shutdown(socket.SHUT_WR)
        except OSError:
            pass


def _serve_tcp(client: socket.socket, port: int) -> None:
    import threading

    try:
        inner = socket.create_connection(("127.0.0.1", port), timeout=CONNECT_TIMEOUT)
    except OSError:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()     # a reset: nothing listens on that port in the container
        return
    inner.settimeout(None)
    client.setblocking(True)
    back = threading.Thread(target=_splice, args=(inner.fileno(), client.fileno()),
                            daemon=True)
    back.start()
    _splice(client.fileno(), inner.fileno())
    back.join()
    inner.close()
    client.close()


class Udp:
    """One published UDP port: a connected socket in the namespace per peer."""

    def __init__(self, sock: socket.socket, port: int, sel: selectors.BaseSelector) -> None:
        self.sock, self.port, self.sel = sock, port, sel
        self.peers: dict[Any, list[Any]] = {}

    def from_outside(self) -> None:
        try:
            data, peer = self.sock.recvfrom(65535)
        except OSError:
            return
        entry = self.peers.get(peer)
        if entry is None:
            inner = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            inner.connect(("127.0.0.1", self.port))
            inner.setblocking(False)
            entry = self.peers[peer] = [inner, 0.0]
            self.sel.register(inner, EVENT_READ, ("udp-back", self, peer))
        entry[1] = time.monotonic()
        try:
            entry[0].send(data)
        except OSError:
            pass

    def from_inside(self, peer: Any) -> None:
        entry = self.peers.get(peer)
        if entry is None:
            return
        try:
            data = entry[0].recv(65535)
            self.sock.sendto(data, peer)
        except OSError:
            return
        entry[1] = time.monotonic()

    def sweep(self, now: float) -> None:
        for peer, (inner, last) in list(self.peers.items()):
            if now - last > UDP_IDLE:
                self.sel.unregister(inner)
                inner.close()
                del self.peers[peer]


def _watch(ctl: Ctl, sel: selectors.BaseSelector, words: list[str]) -> None:
    """``watch detach|stay PID...``: live until one of the PIDs ends."""
    for pid in map(int, words[2:]):
        try:
            pidfd = os.pidfd_open(pid)
        except OSError as e:
            if e.errno == errno.ESRCH:
                os._exit(0)
            raise
        sel.register(pidfd, EVENT_READ, ("pid",))
    if words[1] == "detach":
        _libc.prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0)
    ctl.send("ok")


def _enter(path: bytes, dev: int, ino: int) -> int:
    """Join the user namespace at ``path`` if it is the one with ``dev`` and ``ino``
    (a pod's, opened through its infra's /proc entry); 0, or the errno."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        return e.errno or errno.EIO
    try:
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != (dev, ino):
            return errno.ESTALE
        if _libc.setns(fd, CLONE_NEWUSER) != 0:
            return ctypes.get_errno() or errno.EPERM
        return 0
    finally:
        os.close(fd)


def _root_holder(paths: list[bytes]) -> int:
    """Fork the process whose mount namespace the container joins, and return its pid
    once the overlay root is mounted there. It does nothing else, and touches no file
    after the mount: the runtime's pivot_root in that namespace moves its root into the
    container's. It dies with this process (its parent), which it outlives never."""
    r, w = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        _keep_only(w)
        code = 0
        try:
            _die_with_parent(parent)
            if _libc.unshare(CLONE_NEWNS) != 0:
                raise OSError(ctypes.get_errno(), "unshare")
            _mount_overlay(*paths)
        except OSError as e:
            code = e.errno or errno.EIO
        os.write(w, str(code).encode())
        os.close(w)
        if code:
            os._exit(1)
        while True:
            signal.pause()
    os.close(w)
    answer = os.read(r, 64)
    os.close(r)
    code = int(answer or errno.EIO)
    if code:
        os.waitpid(pid, 0)
        raise OSError(code, "mount")
    return pid


def _nft(path: bytes, ctl_fd: int) -> int:
    """Run ``nft -f PATH`` in this process's namespaces, where it is root (its output to
    this process's stderr, the log); its exit status, or 127 when it cannot run."""
    try:
        pid = os.posix_spawnp("nft", [b"nft", b"-f", path], os.environ,
                              file_actions=[(os.POSIX_SPAWN_CLOSE, ctl_fd),
                                            (os.POSIX_SPAWN_DUP2, 2, 1)])
    except OSError:
        return 127
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) or 0


def _escaped(path: bytes) -> bytes:
    """A path as overlay's options take it: backslash before a backslash, comma or colon."""
    for c in (b"\\", b",", b":"):
        path = path.replace(c, b"\\" + c)
    return path


def _mount_overlay(lower: bytes, upper: bytes, work: bytes, target: bytes) -> None:
    """The container's writable root: ``lower`` (the image's tree, never written) under
    ``upper``, mounted on ``target`` in this mount namespace, which nothing shares with
    the host's (made private first, so that no mount event leaves it)."""
    if _libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        raise OSError(ctypes.get_errno(), "mount --make-rprivate /")
    options = b",".join((b"lowerdir=" + _escaped(lower), b"upperdir=" + _escaped(upper),
                         b"workdir=" + _escaped(work), b"userxattr"))
    if _libc.mount(b"overlay", target, b"overlay", MS_NODEV, options) != 0:
        raise OSError(ctypes.get_errno(), "mount overlay")


def main() -> None:
    ctl_fd, parent = int(sys.argv[-2]), int(sys.argv[-1])
    _die_with_parent(parent)
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    ctl = Ctl(ctl_fd)
    line = ctl.recv()
    if line[0] == "log":
        log = os.open(" ".join(line[1:]), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(log, 2)
        os.close(log)
        line = ctl.recv()
    helper = None
    if line[0] == "helper":
        helper = _fork_helper()
        line = ctl.recv()
    try:
        bound = _bind(line[1:])
    except BindFailed as e:
        ctl.send("error", *e.args)
        return
    ctl.send("bound", *(s.getsockname()[1] for s, _ in bound))
    line = ctl.recv()
    if line[0] == "enter":
        code = _enter(bytes.fromhex(line[1]), int(line[2]), int(line[3]))
        if code:
            ctl.send("error", "enter", code)
            return
        ctl.send("entered")
        line = ctl.recv()
    if line[0] != "unshare":
        return
    flags = CLONE_NEWUSER if "user" in line else 0
    flags |= CLONE_NEWNET if "net" in line else 0
    mount = "mnt" in line
    if flags and _libc.unshare(flags) != 0:
        ctl.send("error", "unshare", ctypes.get_errno())
        return
    ctl.send("unshared", os.getpid())
    if flags & CLONE_NEWUSER and ctl.recv() != ["mapped"]:
        return
    if flags & CLONE_NEWNET:
        try:
            _loopback_up()
            with open("/proc/sys/net/ipv4/ip_unprivileged_port_start", "w") as f:
                f.write("0")
        except OSError as e:
            ctl.send("error", "loopback", e.errno)
            return
        if "nft" in line:
            status = _nft(bytes.fromhex(ctl.recv()[1]), ctl_fd)
            if status:
                ctl.send("error", "nft", status)
                return
    root_pid = 0
    if mount:
        line = ctl.recv()
        try:
            root_pid = _root_holder([bytes.fromhex(w) for w in line[1:5]])
        except (OSError, ValueError, TypeError) as e:
            ctl.send("error", "mount", getattr(e, "errno", None) or errno.EINVAL)
            return
    ctl.send("ready", root_pid)
    if helper is not None:
        words = ctl.recv()
        if words[0] != "exec":
            return
        os.write(helper[1], " ".join(words[1:]).encode())
        os.close(helper[1])
        ctl.send("helper", helper[0])

    if not bound and helper is None:
        _until_watched(ctl)
    _serve(ctl, bound)


def _until_watched(ctl: Ctl) -> None:
    """A holder that serves nothing (an overlay root, a pod member's mounts) waits for
    ``watch``, answers it and ends: the container's processes hold the namespaces now."""
    while True:
        words = ctl.recv()
        if words[0] == "watch":
            ctl.send("ok")
            os._exit(0)


# What the slim interpreter of a serving holder runs (sys.argv[1]: this file's folder).
_RESUME = "import sys; sys.path.insert(0, sys.argv[1]); import _holder; _holder.resume()"
_RELAYS = [0]      # TCP connections being relayed (threads), under _RELAYS_LOCK


def _become_small(bound: list[Any], pidfds: list[int]) -> None:
    """A detached container's forwarder lives as long as the container: as a small
    interpreter of its own, not as this fork of secpod. exec keeps what matters: the
    namespaces, the bound sockets, the watched processes' pidfds, the children (pasta,
    the overlay's mount namespace holder) and the cleared PR_SET_PDEATHSIG. Done with no
    TCP connection or UDP peer being relayed (a connection waiting to be accepted stays
    queued on its listening socket)."""
    fds = [*(sock.fileno() for sock, _ in bound), *pidfds]
    for fd in fds:
        os.set_inheritable(fd, True)
    words = [os.path.dirname(os.path.abspath(__file__)),
             *(f"{sock.fileno()},{p['protocol']},{p['container_port']}" for sock, p in bound),
             *(f"pid,{fd}" for fd in pidfds)]
    os.execv(sys.executable,  # noqa: S606 - this interpreter, argv of our own, no shell
             [sys.executable, "-I", "-S", "-c", _RESUME, *words])


def resume() -> None:
    """The forwarder after :func:`_become_small`'s exec: it serves until a watched
    process ends (secpod has let go of it: no control socket any more)."""
    bound: list[Any] = []
    pidfds: list[int] = []
    for word in sys.argv[2:]:
        kind, _, rest = word.partition(",")
        if kind == "pid":
            pidfds.append(int(rest))
            os.set_inheritable(int(rest), False)
            continue
        proto, port = rest.split(",")
        sock = socket.socket(fileno=int(kind))
        sock.set_inheritable(False)
        sock.setblocking(False)
        bound.append((sock, {"protocol": proto, "container_port": int(port)}))
    _serve(None, bound, tuple(pidfds))


def _relay(client: socket.socket, port: int, lock: Any) -> None:
    try:
        _serve_tcp(client, port)
    finally:
        with lock:
            _RELAYS[0] -= 1


def _serve(ctl: Ctl | None, bound: list[Any], pidfds: tuple[int, ...] = ()) -> None:
    """Forward the published ports (and be pasta's parent) until a watched process ends.
    In secpod's fork (``ctl`` given), a ``watch detach`` makes it :func:`_become_small`."""
    import selectors
    import threading

    threading.stack_size(256 * 1024)
    lock = threading.Lock()
    sel = selectors.DefaultSelector()
    udps = []
    for s, p in bound:
        if p["protocol"] == "tcp":
            sel.register(s, selectors.EVENT_READ, ("tcp", p["container_port"]))
        else:
            u = Udp(s, p["container_port"], sel)
            udps.append(u)
            sel.register(s, selectors.EVENT_READ, ("udp", u))
    for fd in pidfds:
        sel.register(fd, selectors.EVENT_READ, ("pid",))
    if ctl is not None:
        ctl.sock.setblocking(False)
        sel.register(ctl.sock, selectors.EVENT_READ, ("ctl",))
    watching = ctl is None
    shrink = False          # detached: become small once nothing is being relayed
    last_sweep = time.monotonic()
    while True:
        timeout = 0.2 if shrink else 30 if udps else None
        for key, _ in sel.select(timeout=timeout):
            what = key.data
            if what[0] == "tcp":
                listener: Any = key.fileobj
                try:
                    client, _addr = listener.accept()
                except OSError:
                    continue
                with lock:
                    _RELAYS[0] += 1
                threading.Thread(target=_relay, args=(client, what[1], lock),
                                 daemon=True).start()
            elif what[0] == "udp":
                what[1].from_outside()
            elif what[0] == "udp-back":
                what[1].from_inside(what[2])
            elif what[0] == "pid":
                os._exit(0)            # the container or its monitor ended
            elif what[0] == "ctl" and ctl is not None:
                try:
                    data = ctl.sock.recv(65536)
                except BlockingIOError:
                    continue
                if not data:
                    sel.unregister(ctl.sock)
                    if not watching:
                        os._exit(0)
                    continue
                ctl.buf += data
                while b"\n" in ctl.buf:
                    raw, _, ctl.buf = ctl.buf.partition(b"\n")
                    words = raw.decode().split(" ")
                    if words[0] != "watch":
                        continue
                    ctl.sock.setblocking(True)
                    _watch(ctl, sel, words)
                    watching = True
                    shrink = words[1] == "detach"
                    ctl.sock.setblocking(False)
        now = time.monotonic()
        if udps and now - last_sweep > 30:
            last_sweep = now
            for u in udps:
                u.sweep(now)
        if shrink:
            with lock:
                idle = _RELAYS[0] == 0 and not any(u.peers for u in udps)
            if idle:
                _become_small(bound, [k.fd for k in sel.get_map().values()
                                      if k.data[0] == "pid"])

if __name__ == "__main__":
    main()
