"""``--network pasta``: an outbound network through Debian's pasta (docs/networking.md,
docs/adr/0007-pasta.md).

pasta runs in the user's own namespaces, attached to the holder's user and network
namespaces by path, in the foreground, as the holder's child (so it dies with it). It
copies the host's addresses and routes into the container's namespace (``--config-net``)
and translates the container's traffic into ordinary sockets of the user. secpod gives it:

- ``-t/-u`` only for the ports published (``-p``): pasta itself listens on the host (a
  loopback client is seen as 127.0.0.1; others, docs/networking.md); ``-T none -U
  none``: nothing of the host's loopback is forwarded into the container;
- ``--no-map-gw``: the gateway address is not a way to the host's loopback services;
- ``--dns-forward 169.254.1.1``: the name server the container's resolv.conf names
  (unless ``--dns``), forwarded to the host's first resolver.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from secpod.errors import HostError
from secpod.spec import PortMapping

DNS_FORWARD = "169.254.1.1"
TUN = "/dev/net/tun"
READY_TIMEOUT = 10.0
TUN_HINT = (f"as root: chmod 0666 {TUN} (its usual mode, which udev sets on most "
            "distributions; lasting with the tmpfiles.d line 'z /dev/net/tun 0666 root root -'); "
            "secpod doctor checks it")


def check_available(tun: str = TUN) -> None:
    """Refuse pasta mode on a host where pasta cannot work for this user: pasta not
    installed, or the tun device not readable and writable. Raises HostError."""
    import shutil

    if shutil.which("pasta") is None:
        raise HostError("--network pasta needs pasta, which is not installed",
                        hint="apt-get install passt (Debian's package of pasta)")
    if not os.access(tun, os.R_OK | os.W_OK):
        try:
            mode = f"mode {os.stat(tun).st_mode & 0o7777:04o}"
        except OSError as e:
            mode = e.strerror or "missing"
        raise HostError(f"--network pasta needs {tun}, which you cannot open ({mode}): "
                        "pasta makes the container's network interface with it", hint=TUN_HINT)


def host_ports(ports: tuple[PortMapping, ...]) -> tuple[PortMapping, ...]:
    """Each mapping with a concrete host port, checked free now: a port in use, a
    privileged port or a foreign address is refused before pasta starts (pasta only
    warns about a port it cannot bind). Raises Conflict, NetworkRequestError, HostError."""
    import socket

    from secpod.network import _bind_error
    from secpod.network.ports import check_host_port, unprivileged_port_start

    start = unprivileged_port_start()
    out = []
    for p in ports:
        check_host_port(p, start)
        family = socket.AF_INET6 if ":" in p.host_ip else socket.AF_INET
        kind = socket.SOCK_STREAM if p.protocol == "tcp" else socket.SOCK_DGRAM
        with socket.socket(family, kind) as s:
            try:
                s.bind((p.host_ip, p.host_port))
            except OSError as e:
                raise _bind_error(p, e.errno or 0) from e
            out.append(PortMapping(container_port=p.container_port,
                                   host_port=s.getsockname()[1], host_ip=p.host_ip,
                                   protocol=p.protocol))
    return tuple(out)


def argv(holder_pid: int, ports: tuple[PortMapping, ...], pidfile: Path) -> list[str]:
    """pasta's command line for the container whose namespaces ``holder_pid`` holds."""
    args = ["pasta", "--foreground", "--quiet", "--config-net",
            "--netns", f"/proc/{holder_pid}/ns/net", "--userns", f"/proc/{holder_pid}/ns/user",
            "--no-map-gw", "--dns-forward", DNS_FORWARD, "-T", "none", "-U", "none",
            "--pid", str(pidfile)]
    for proto, flag in (("tcp", "-t"), ("udp", "-u")):
        specs = [f"{p.host_ip}/{p.host_port}:{p.container_port}"
                 for p in ports if p.protocol == proto]
        args += [flag, ",".join(specs) if specs else "none"]
    return args


def wait_ready(pid: int, pidfile: Path, errfile: Path) -> None:
    """Wait until pasta has set the namespace up (it writes ``pidfile``); raises
    HostError with pasta's own words when it ends first."""
    deadline = time.monotonic() + READY_TIMEOUT
    while not pidfile.exists():
        if not _alive(pid) or time.monotonic() > deadline:
            try:
                said = errfile.read_text(errors="replace")
            except OSError:
                said = ""
            lines = [x for x in said.splitlines() if x and "syslog" not in x]
            why = "; ".join(lines[-3:]) or "it ended without a message"
            hint = TUN_HINT if "tun" in said.lower() else "secpod doctor checks this host"
            raise HostError(f"pasta failed to set up the container's network: {why}",
                            hint=hint)
        time.sleep(0.005)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


__all__ = ["DNS_FORWARD", "argv", "check_available", "host_ports", "wait_ready"]
