"""Network commands: ``port`` (a container's published ports)."""

from __future__ import annotations

import argparse

from secpod.cli._output import emit_json

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    _Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def _port(args: argparse.Namespace) -> int:
    from secpod.errors import NotFound
    from secpod.network import ports as ports_mod
    from secpod.sandbox import state

    ctr = state.lookup(args.container)
    ports = list(ctr.ports)
    if args.port is not None:
        number, _, proto = args.port.partition("/")
        proto = proto or "tcp"
        if not number.isdigit() or proto not in ports_mod.PROTOCOLS:
            from secpod.errors import UsageError

            raise UsageError(f"invalid port {args.port!r}", hint="use PORT[/tcp|/udp], e.g. 80/tcp")
        ports = [p for p in ports if p["container_port"] == int(number) and p["protocol"] == proto]
        if not ports:
            raise NotFound(f"no public port {number}/{proto} published for {ctr.name}",
                           hint=f"secpod port {ctr.name} lists what it publishes")
    if args.json:
        emit_json(ports)
        return 0
    for p in ports:
        ip = f"[{p['host_ip']}]" if ":" in p["host_ip"] else p["host_ip"]
        if args.port is not None:
            print(f"{ip}:{p['host_port']}")
        else:
            print(f"{p['container_port']}/{p['protocol']} -> {ip}:{p['host_port']}")
    return 0


def _add_port(sub: _Subparsers) -> None:
    p = sub.add_parser("port", help="a container's published ports (PORT/PROTO -> HOST:PORT)")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("port", nargs="?", metavar="PORT[/PROTO]",
                   help="only this container port: print its host address and port")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_port)


# Each command's parser, in the order of `secpod --help`.
PARSERS = {
    "port": _add_port,
}
