"""The egress allow list of ``--network pasta`` (a profile's ``[network] egress``;
docs/networking.md, docs/adr/0007-pasta.md).

:func:`ruleset` turns the list into an nftables ruleset (Debian's ``nft``) that the
namespace holder installs in the container's network namespace after it has made it and
before pasta and the container start: the holder is root of that namespace's user
namespace, so it has CAP_NET_ADMIN there; the container runs without it (secpod refuses
an egress list with CAP_NET_ADMIN), so it cannot change the rules.

What leaves the namespace: its own loopback, the replies of connections already made (a
published port's clients), and new connections or datagrams to an allowed network,
protocol and port range. Everything else is rejected (an ICMP "administratively
prohibited", so a connect fails at once rather than hanging).
"""

from __future__ import annotations

from secpod.network.ports import parse_egress

TABLE = "secpod"


def ruleset(rules: tuple[str, ...]) -> str:
    """The nftables ruleset allowing exactly ``rules`` (``NET:PORT[-PORT]/PROTO``) out.
    Raises ValueError for an entry that does not parse (profiles are checked when
    loaded, so only a changed record gets here)."""
    lines = [f"table inet {TABLE} {{",
             "  chain output {",
             "    type filter hook output priority filter; policy drop;",
             '    oifname "lo" accept',
             "    ct state established,related accept"]
    for text in rules:
        rule = parse_egress(text, "egress")
        family = "ip6" if ":" in rule["network"] else "ip"
        lo, hi = rule["ports"]
        port = str(lo) if lo == hi else f"{lo}-{hi}"
        lines.append(f"    {family} daddr {rule['network']} {rule['protocol']} dport {port} "
                     "accept")
    lines += ["    reject with icmpx type admin-prohibited",
              "  }",
              "}"]
    return "\n".join(lines) + "\n"


__all__ = ["TABLE", "ruleset"]
