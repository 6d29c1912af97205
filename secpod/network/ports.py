"""The syntax of published ports, ``--add-host``, ``--dns`` and egress entries: pure
parsers (no I/O but the one sysctl read), each raising UsageError or ProfileError with
the form it takes. docs/networking.md describes every form."""

from __future__ import annotations

from secpod.errors import NetworkRequestError, UsageError
from secpod.spec import PortMapping

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

PROTOCOLS = ("tcp", "udp")
DEFAULT_HOST_IP = "127.0.0.1"
UNPRIVILEGED_PORT_SYSCTL = "net.ipv4.ip_unprivileged_port_start"
_PUBLISH_HINT = ("use -p [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/tcp|/udp], e.g. -p 8080:80, "
                 "-p 0.0.0.0:8080:80, -p 127.0.0.1:5353:53/udp, -p [::1]:8080:80")


def _port(text: str, what: str, spec: str, *, zero: bool = False) -> int:
    if not text.isascii() or not text.isdigit():
        raise NetworkRequestError(f"invalid -p {spec!r}: the {what} {text!r} is not a number",
                         hint=_PUBLISH_HINT)
    n = int(text)
    if n > 65535 or (n == 0 and not zero):
        raise NetworkRequestError(f"invalid -p {spec!r}: the {what} {n} is outside 1-65535",
                         hint=_PUBLISH_HINT)
    return n


def host_address(text: str, where: str) -> str:
    """An IPv4 or IPv6 address as the kernel binds it (brackets removed); raises
    UsageError."""
    import ipaddress

    bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError as e:
        raise NetworkRequestError(f"invalid {where}: {text!r} is not an IP address",
                         hint=_PUBLISH_HINT if where.startswith("-p") else
                         "give an IPv4 or IPv6 address, e.g. 127.0.0.1") from e


def parse_publish(spec: str) -> PortMapping:
    """``-p [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]`` (HOST_IP alone with an empty
    HOST_PORT, ``127.0.0.1::80``, takes a free port). Raises UsageError."""
    body, slash, proto = spec.partition("/")
    proto = proto.lower() if slash else "tcp"
    if proto not in PROTOCOLS:
        raise NetworkRequestError(f"invalid -p {spec!r}: unknown protocol {proto!r}",
                         hint="the protocol is tcp or udp (sctp is not supported)")
    ip = DEFAULT_HOST_IP
    if body.startswith("["):                        # [IPv6]:HOST_PORT:CONTAINER_PORT
        end = body.find("]")
        if end < 0 or body[end + 1:end + 2] != ":":
            raise NetworkRequestError(f"invalid -p {spec!r}: an IPv6 address ends with ']:'",
                             hint=_PUBLISH_HINT)
        ip = host_address(body[:end + 1], f"-p {spec!r}")
        parts = body[end + 2:].split(":")
        if len(parts) != 2:
            raise NetworkRequestError(f"invalid -p {spec!r}", hint=_PUBLISH_HINT)
        host_port, container_port = parts
    else:
        parts = body.split(":")
        if len(parts) == 1:
            host_port, container_port = "", parts[0]
        elif len(parts) == 2:
            host_port, container_port = parts
        elif len(parts) == 3:
            ip = host_address(parts[0], f"-p {spec!r}")
            host_port, container_port = parts[1], parts[2]
        else:
            raise NetworkRequestError(f"invalid -p {spec!r}: too many ':'", hint=_PUBLISH_HINT)
    if "-" in host_port or "-" in container_port:
        raise NetworkRequestError(f"invalid -p {spec!r}: port ranges are not supported",
                         hint="give one -p per port")
    if not container_port:
        raise NetworkRequestError(f"invalid -p {spec!r}: no container port", hint=_PUBLISH_HINT)
    cport = _port(container_port, "container port", spec)
    hport = _port(host_port, "host port", spec, zero=True) if host_port else 0
    return PortMapping(container_port=cport, host_port=hport, host_ip=ip, protocol=proto)


def check_distinct(ports: Iterable[PortMapping]) -> None:
    """Two mappings may not take the same host address, port and protocol."""
    seen: set[tuple[str, int, str]] = set()
    for p in ports:
        key = (p.host_ip, p.host_port, p.protocol)
        if p.host_port and key in seen:
            raise NetworkRequestError(f"-p {p.host_ip}:{p.host_port}/{p.protocol} is given twice",
                             hint="publish each host port once")
        seen.add(key)


def exposed_ports(image_config: Mapping[str, Any]) -> list[PortMapping]:
    """``-P``: each of the image's ``ExposedPorts`` on a free port of 127.0.0.1.
    Raises UsageError for an entry that is not PORT[/tcp|udp]."""
    exposed = (image_config.get("config") or {}).get("ExposedPorts") or {}
    out = []
    for key in sorted(exposed):
        port, _, proto = str(key).partition("/")
        proto = proto or "tcp"
        if proto not in PROTOCOLS or not port.isdigit() or not 0 < int(port) <= 65535:
            raise NetworkRequestError(f"-P: the image exposes {key!r}, which secpod cannot publish",
                             hint="publish the ports you need with -p instead")
        out.append(PortMapping(container_port=int(port), protocol=proto))
    return out


def parse_add_host(text: str) -> tuple[str, str]:
    """``--add-host NAME:ADDRESS`` (``NAME=ADDRESS`` too; an IPv6 address may be
    bracketed). Raises UsageError."""
    from secpod.spec.flags import check_hostname

    sep = "=" if "=" in text else ":"
    name, found, addr = text.partition(sep)
    if not found or not name or not addr:
        raise NetworkRequestError(f"invalid --add-host {text!r}",
                         hint="use --add-host NAME:ADDRESS, e.g. db:192.0.2.10")
    try:
        check_hostname(name)
    except UsageError as e:
        raise NetworkRequestError(f"invalid --add-host {text!r}: {e.message}", hint=e.hint) from e
    return name, host_address(addr, f"--add-host {text!r}")


def parse_dns(text: str) -> str:
    return host_address(text, f"--dns {text!r}")


def unprivileged_port_start() -> int:
    """This host's ``net.ipv4.ip_unprivileged_port_start`` (1024 where unreadable)."""
    try:
        with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 1024


def check_host_port(p: PortMapping, start: int) -> None:
    """Refuse a host port below ``start`` (the sysctl's value): an unprivileged user
    cannot bind it. Raises UsageError naming the sysctl."""
    if 0 < p.host_port < start:
        raise NetworkRequestError(
            f"-p {p.host_ip}:{p.host_port}:{p.container_port}/{p.protocol}: the host port "
            f"{p.host_port} is privileged on this host ({UNPRIVILEGED_PORT_SYSCTL} = {start})",
            hint=f"use a host port of {start} or above (e.g. -p {8000 + p.host_port % 1000}:"
                 f"{p.container_port}); the container port may stay {p.container_port}")


def parse_port_range(text: str, where: str) -> tuple[int, int]:
    """``"N"`` or ``"LOW-HIGH"`` (profiles and the floor). Raises ValueError."""
    low, dash, high = text.partition("-")
    lo, hi = int(low), int(high) if dash else int(low)
    if not 1 <= lo <= hi <= 65535:
        raise ValueError(f"{where}: {text!r} is not a port range within 1-65535")
    return lo, hi


def parse_egress(text: str, where: str) -> dict[str, Any]:
    """``ADDRESS[/PREFIX]:PORT[-PORT]/tcp|udp`` (IPv6 in brackets). Raises ValueError."""
    import ipaddress

    body, slash, proto = text.rpartition("/")
    if not slash or proto not in PROTOCOLS:
        raise ValueError(f"{where}: {text!r} does not end in /tcp or /udp")
    if body.startswith("["):
        end = body.find("]")
        net_text, rest = body[1:end], body[end + 1:]
        if end < 0 or not rest.startswith(":"):
            raise ValueError(f"{where}: {text!r}: an IPv6 network is written [ADDR/PREFIX]:PORT")
        port_text = rest[1:]
    else:
        net_text, _, port_text = body.rpartition(":")
    try:
        net = ipaddress.ip_network(net_text, strict=True)
    except ValueError as e:
        raise ValueError(f"{where}: {text!r}: {e}") from e
    lo, hi = parse_port_range(port_text, f"{where}: {text!r}")
    return {"network": str(net), "ports": [lo, hi], "protocol": proto}
