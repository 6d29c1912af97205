"""Rootless networking: published ports of a ``private`` network (docs/networking.md).

A container with published ports joins the user and network namespaces of a small
holder process that secpod starts (:mod:`secpod.network._holder`; the decision is in
docs/adr/0005-network-holder.md). The holder binds the host's addresses before it leaves
the host's network namespace, and forwards each connection into the container's
loopback: the container itself has no route out.

- :func:`spawn` starts one early; :func:`start_holder` gives it the ports, which it binds
  (the errors a user can act on: a port in use, a privileged port, a foreign address);
- :func:`join` points a bundle's ``linux.namespaces`` at it;
- :func:`watch` ties its life to the container's monitor and process;
- :func:`stop` ends it (by its recorded pid and start time, never a reused pid).
"""

from __future__ import annotations

import _socket  # not socket.py: its enum conversions cost a run 2 ms
import contextlib
import errno
import os
import signal
import sys
import time
from pathlib import Path

from secpod.errors import Conflict, HostError, NetworkRequestError
from secpod.spec import PortMapping

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

    from secpod.sandbox.idmap import IdMap
    from secpod.sandbox.preflight import Identity
    from secpod.sandbox.spawn import Child

HANDSHAKE_TIMEOUT = 10.0
_LIVE: dict[str, Holder] = {}   # this process's holders, by container id
_PENDING: list[Holder] = []     # spawned, not yet a container's


class Holder:
    """A holder process: its control socket, and the ports it bound once started."""

    def __init__(self, proc: Child, ctl: _socket.socket) -> None:
        self.proc = proc
        self.ctl = ctl
        self.buf = b""
        self.ports: tuple[PortMapping, ...] = ()
        self.root_pid = 0   # the holder's child whose mount namespace has the overlay root
        self.pasta: tuple[int, str] | None = None   # pasta's pid and identity, once started

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, *words: object) -> None:
        self.ctl.sendall(" ".join(map(str, words)).encode() + b"\n")

    def recv(self) -> list[str]:
        deadline = time.monotonic() + HANDSHAKE_TIMEOUT
        while b"\n" not in self.buf:
            self.ctl.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.ctl.recv(65536)
            except TimeoutError:
                chunk = b""
            if not chunk:
                self.kill()
                raise HostError("secpod's namespace holder ended before it was ready",
                                hint="secpod doctor checks what this host allows")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode().split(" ")

    def kill(self) -> None:
        """End the holder and its pasta, and return once neither runs (nothing of the
        container's network listens any more). Its children die with it on their own
        (PR_SET_PDEATHSIG); pasta is also killed here, so that none is seen running
        after this returns."""
        self.proc.kill()
        if self.pasta is not None:
            _kill(*self.pasta)
        self.proc.wait_for(5)
        if self.pasta is not None:
            _wait_gone(*self.pasta)
        self.ctl.close()
        with contextlib.suppress(ValueError):
            _PENDING.remove(self)
        for cid, h in list(_LIVE.items()):
            if h is self:
                del _LIVE[cid]


def _bind_error(p: PortMapping, code: int) -> Exception:
    from secpod.network.ports import UNPRIVILEGED_PORT_SYSCTL, unprivileged_port_start

    where = f"-p {p.host_ip}:{p.host_port}:{p.container_port}/{p.protocol}"
    if code == errno.EADDRINUSE:
        return Conflict(f"{where}: the host port {p.host_ip}:{p.host_port}/{p.protocol} is "
                        "already in use",
                        hint="choose another host port, or stop what listens there "
                             "(secpod ps shows the ports of containers)")
    if code == errno.EACCES:
        return NetworkRequestError(
            f"{where}: the host port {p.host_port} is privileged on this host "
            f"({UNPRIVILEGED_PORT_SYSCTL} = {unprivileged_port_start()})",
            hint="use a host port at or above that value")
    if code == errno.EADDRNOTAVAIL:
        return NetworkRequestError(f"{where}: {p.host_ip} is not an address of this host",
                                   hint="use 127.0.0.1, 0.0.0.0 or an address `ip addr` shows")
    return HostError(f"{where}: cannot bind {p.host_ip}:{p.host_port}: {os.strerror(code)}")


_MAP_HINT = "secpod doctor checks your subordinate id ranges"


def _write_map(tool: str, pid: int, maps: tuple[IdMap, ...]) -> Any:
    from secpod._files import which
    from secpod.sandbox import spawn as spawnmod

    binary = which(tool)
    if binary is None:
        raise HostError(f"{tool} not found: secpod's namespace holder needs it",
                        hint="apt-get install uidmap")
    args = [binary, str(pid)]
    for m in maps:
        args += [str(m.container_id), str(m.host_id), str(m.size)]
    try:
        return spawnmod.spawn(args, stdin=spawnmod.DEVNULL, stdout=spawnmod.DEVNULL,
                              stderr=spawnmod.PIPE)
    except OSError as e:
        raise HostError(f"cannot run {tool}: {e.strerror}", hint=_MAP_HINT) from e


def _wait_map(tool: str, child: Any) -> None:
    chunks = []
    while chunk := os.read(child.stderr, 65536):
        chunks.append(chunk)
    os.close(child.stderr)
    code = child.wait()
    if code != 0:
        err = b"".join(chunks).decode(errors="replace").strip()
        raise HostError(f"{tool} failed for secpod's namespace holder: {err or code}",
                        hint=_MAP_HINT)


def spawn() -> Holder:
    """Start a holder that waits for its first line (its start-up then overlaps the rest
    of ``create``). It dies with this process until :func:`watch` says otherwise;
    :func:`discard_pending` ends those never started. Raises HostError.

    It is a fork of this process (no interpreter to start, no module to load again);
    one that ends up forwarding ports or being pasta's parent, and so lives as long as
    the container, becomes a small interpreter of its own once the container's
    namespaces are ready (``python3 -I -S``, about 11 MB; docs/adr/0005-network-holder.md,
    0006-overlay-root.md)."""
    ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        pid = _fork_holder(theirs.fileno())
    except OSError as e:
        ours.close()
        raise HostError(f"cannot start secpod's namespace holder: {e.strerror}") from e
    finally:
        theirs.close()
    from secpod.sandbox.spawn import Child

    holder = Holder(Child(pid, None, None, None), ours)
    _PENDING.append(holder)
    return holder


def _fork_holder(fd: int) -> int:
    """Fork the holder: the child keeps only ``fd`` (and /dev/null as its stdio), runs
    :func:`secpod.network._holder.main` and ends with ``os._exit``: it never returns into
    this process's code, runs no finalizer of its objects and holds none of its files."""
    parent = os.getpid()
    pid = os.fork()
    if pid:
        return pid
    try:
        import gc

        gc.disable()   # no finalizer of the parent's objects runs in the child
        os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        for target in (0, 1, 2):
            os.dup2(null, target)
        os.closerange(3, fd)
        os.closerange(fd + 1, os.sysconf("SC_OPEN_MAX"))
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        sys.argv = ["secpod-holder", str(fd), str(parent)]
        from secpod.network import _holder

        _holder.main()
    finally:
        os._exit(0)


def discard_pending() -> None:
    """End the holders this process spawned and did not give a container."""
    for holder in list(_PENDING):
        holder.kill()


def start_holder(cid: str, ports: tuple[PortMapping, ...], identity: Identity,
                 folder: Path, holder: Holder | None = None, *,
                 overlay: Path | None = None, pasta: bool = False,
                 egress: tuple[str, ...] = (),
                 userns: tuple[Path, int, int] | None = None,
                 net: bool = False) -> Holder:
    """Make ``holder`` (or a new one) the holder of container ``cid``'s namespaces, with
    ``ports`` bound on the host (its stderr, should it fail, goes to
    ``folder/holder.err``). With ``overlay`` (the image's tree), it also holds a mount
    namespace where the container's writable root is mounted: ``folder/upper`` over
    that tree, on ``folder/merged`` (docs/adr/0006-overlay-root.md). With ``userns``
    (the path, device and inode of a pod's user namespace, docs/adr/0008-pods.md) it
    joins that user namespace instead of making one; ``net``: a network namespace even
    without ports (a pod's infra).

    Returns it ready for the container to join, its ``ports`` with the host ports the
    kernel picked for 0. Raises Conflict (a port in use), NetworkRequestError (a
    privileged port, an address not of this host) and HostError (the holder, the id
    mappings or the mount failed); nothing is left running then.

    With ``pasta`` the holder forwards nothing itself: pasta, its child, gets the ports
    and gives the namespace its outbound network (secpod.network.pasta); ``egress``, if
    any, is the only way out it allows: the holder installs its nftables ruleset
    (``folder/egress.nft``, secpod.network.egress) before pasta starts."""
    from secpod.network.ports import check_host_port, unprivileged_port_start

    try:
        start = unprivileged_port_start()
        for p in ports:
            check_host_port(p, start)
        holder = holder or spawn()
        holder.send("log", folder / "holder.err")
        if pasta:
            from secpod.network import pasta as pastamod

            holder.send("helper")
            holder.ports = pastamod.host_ports(ports)
            holder.send("ports")
        else:
            holder.send("ports", *(f"{p.host_ip},{p.host_port},{p.container_port},{p.protocol}"
                                   for p in ports))
        answer = holder.recv()
        if answer[0] == "error":
            raise _bind_error(ports[int(answer[1])], int(answer[2]))
        if not pasta:
            holder.ports = tuple(PortMapping(container_port=p.container_port,
                                             host_port=int(b), host_ip=p.host_ip,
                                             protocol=p.protocol)
                                 for p, b in zip(ports, answer[1:], strict=True))
        if userns is not None:
            path, dev, ino = userns
            holder.send("enter", bytes(path).hex(), dev, ino)
            answer = holder.recv()
            if answer[0] == "error":
                raise HostError("secpod's namespace holder cannot join the pod's user "
                                f"namespace: {os.strerror(int(answer[2]))}",
                                hint="secpod pod ps: the pod's infra must be running")
        rules = folder / "egress.nft" if pasta and egress else None
        if rules is not None:
            from secpod.network.egress import ruleset

            rules.write_text(ruleset(egress))
        holder.send("unshare", *(["user"] if userns is None else []),
                    *(["net"] if ports or pasta or net else []),
                    *(["mnt"] if overlay else []), *(["nft"] if rules else []))
        answer = holder.recv()
        if answer[0] == "error":
            raise HostError("secpod's namespace holder cannot make the container's "
                            f"namespaces: {os.strerror(int(answer[2]))}",
                            hint="secpod doctor checks unprivileged user namespaces")
        if userns is None:
            maps = [("newuidmap", _write_map("newuidmap", holder.pid, identity.uid_map)),
                    ("newgidmap", _write_map("newgidmap", holder.pid, identity.gid_map))]
            for tool, proc in maps:
                _wait_map(tool, proc)
            holder.send("mapped")
        if rules is not None:
            holder.send("nft", bytes(rules).hex())
        if overlay is not None:
            holder.send("mount", *(bytes(p).hex() for p in (
                overlay, folder / "upper", folder / "work", folder / "merged")))
        answer = holder.recv()
        if answer[0] == "error":
            raise _setup_error(answer[1], int(answer[2]), folder)
        holder.root_pid = int(answer[1]) if len(answer) > 1 else 0
        if pasta:
            _start_pasta(holder, folder)
    except BaseException:
        if holder is not None:
            holder.kill()
        raise
    with contextlib.suppress(ValueError):
        _PENDING.remove(holder)
    _LIVE[cid] = holder
    return holder


def _setup_error(step: str, code: int, folder: Path) -> HostError:
    if step == "nft":
        try:
            said = (folder / "holder.err").read_text(errors="replace").strip().splitlines()
        except OSError:
            said = []
        why = "; ".join(said[-3:]) or ("nft is not installed" if code == 127
                                       else f"nft exited with {code}")
        return HostError(f"cannot install the container's egress allow list: {why}",
                         hint="apt-get install nftables; secpod doctor checks this host")
    if step == "mount":
        return HostError(f"cannot mount the container's overlay root: {os.strerror(code)}",
                         hint="secpod doctor checks whether this kernel mounts overlayfs "
                              "in a user namespace; --read-only runs without one")
    return HostError(f"secpod's namespace holder cannot set up the container's loopback: "
                     f"{os.strerror(code)}")


def _start_pasta(holder: Holder, folder: Path) -> None:
    from secpod.network import pasta as pastamod

    pidfile, errfile = folder / "pasta.pid", folder / "pasta.err"
    pidfile.unlink(missing_ok=True)
    args = pastamod.argv(holder.pid, holder.ports, pidfile)
    holder.send("exec", str(errfile).encode().hex(), *(a.encode().hex() for a in args))
    answer = holder.recv()
    pid = int(answer[1])
    holder.pasta = (pid, identity_of(pid))
    pastamod.wait_ready(pid, pidfile, errfile)


def live(cid: str) -> Holder | None:
    """The holder this process started for ``cid`` and still talks to, if any."""
    holder = _LIVE.get(cid)
    if holder is not None and holder.proc.poll() is not None:
        del _LIVE[cid]
        return None
    return holder


_JOINED = {"user": "user", "network": "net", "mount": "mnt"}


def join(config: dict[str, Any], folder: Path, holder: Holder | None, *, net: bool,
         mnt: bool, links: tuple[str, ...] = ("user", "net", "mnt")) -> None:
    """Make ``config`` join the holder's user namespace, and its network (``net``) and
    mount (``mnt``) namespaces, through links in ``folder/ns`` (a restart points them at
    the new holder; config.json stays as written). The id mappings are the holder's,
    written by :func:`start_holder`; ``config`` keeps them, as runc requires of a
    joined user namespace (crun checks nothing and writes nothing there)."""
    if holder is not None:
        point_links(folder, holder.pid, holder.root_pid, links)
    linux = config["linux"]
    wanted = ({"user"} if "user" in links else set()) | ({"network"} if net else set()) \
        | ({"mount"} if mnt else set())
    for ns in linux["namespaces"]:
        if ns["type"] in wanted:
            ns["path"] = str(folder / "ns" / _JOINED[ns["type"]])


def point_links(folder: Path, pid: int, root_pid: int = 0,
                names: tuple[str, ...] = ("user", "net", "mnt")) -> None:
    """``folder/ns/{user,net,mnt}`` (or those of ``names``) -> the holder's namespaces
    (the mount namespace its child's, ``root_pid``). A pod member's holder points only
    its mount namespace: the pod's are reached through descriptors (secpod.pods)."""
    links = folder / "ns"
    links.mkdir(mode=0o700, exist_ok=True)
    for name in names:
        tmp = links / f".{name}.tmp"
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(f"/proc/{root_pid if name == 'mnt' and root_pid else pid}/ns/{name}")
        tmp.replace(links / name)


def watch(holder: Holder, pids: list[int], *, detach: bool) -> None:
    """The holder lives until one of ``pids`` ends; with ``detach`` no longer with this
    process. Closes this process's end of the control socket when detached."""
    holder.send("watch", "detach" if detach else "stay", *pids)
    holder.recv()
    if detach:
        holder.ctl.close()
        for cid, h in list(_LIVE.items()):
            if h is holder:
                del _LIVE[cid]


def identity_of(pid: int) -> str:
    from secpod.sandbox.state import process_identity

    return process_identity(pid)


def stop(pid: int | None, ident: str | None, folder: Path | None = None) -> None:
    """End a container's holder and its pasta, and return once neither runs: this
    process's own holder is killed and reaped (:meth:`Holder.kill`); another's is killed
    by its recorded pid if that pid still is the process recorded (``ident``: pid and
    start time), and so is its pasta (its pid in ``folder/pasta.pid``, killed only while
    it is that holder's child)."""
    if not pid or not ident:
        return
    own = next((h for h in _LIVE.values() if h.pid == pid), None)
    if own is not None:
        own.kill()
        return
    if identity_of(pid) != ident:
        return
    pasta = _helper_of(pid, folder)
    _kill(pid, ident)
    if pasta is not None:
        _kill(*pasta)
    _wait_gone(pid, ident)
    if pasta is not None:
        _wait_gone(*pasta)


def _kill(pid: int, ident: str) -> None:
    if identity_of(pid) == ident:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _wait_gone(pid: int, ident: str, timeout: float = 2.0) -> None:
    """Until ``pid`` is no longer the process ``ident`` (ended and reaped by its parent)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and identity_of(pid) == ident:
        time.sleep(0.005)


def _helper_of(pid: int, folder: Path | None) -> tuple[int, str] | None:
    """(pid, identity) of the holder's pasta, if it runs."""
    if folder is None:
        return None
    try:
        helper = int((folder / "pasta.pid").read_text().split()[0])
        with open(f"/proc/{helper}/stat") as f:
            ppid = int(f.read().rpartition(")")[2].split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return (helper, identity_of(helper)) if ppid == pid else None


def as_records(ports: tuple[PortMapping, ...]) -> list[dict[str, Any]]:
    return [{"host_ip": p.host_ip, "host_port": p.host_port,
             "container_port": p.container_port, "protocol": p.protocol} for p in ports]


def describe_port(p: dict[str, Any]) -> str:
    """``127.0.0.1:8080->80/tcp`` (Docker's ps column)."""
    ip = p["host_ip"]
    host = f"[{ip}]" if ":" in ip else ip
    return f"{host}:{p['host_port']}->{p['container_port']}/{p['protocol']}"


__all__ = ["Holder", "as_records", "describe_port", "discard_pending", "join", "live", "spawn",
           "start_holder", "stop", "watch"]
