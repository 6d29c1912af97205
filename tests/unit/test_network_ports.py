"""The network requests' syntax (secpod.network.ports, spec.flags), the profile's and
the floor's [network], and what the namespaces layer refuses."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from secpod._record import replace
from secpod.errors import (
    AdminPolicyError,
    FloorRefused,
    NetworkRequestError,
    ProfileError,
    Refused,
)
from secpod.network import describe_port, egress, ports
from secpod.policies import load
from secpod.policies.confine import weakenings
from secpod.policies.floor import check, parse_admin_policy
from secpod.policies.layers import namespaces
from secpod.policies.profile import build
from secpod.sandbox.views import port_bindings
from secpod.spec import ContainerSpec, Network, PortMapping

USER = os.environ.get("SECPOD_TEST_USER", "secpodtest")
STRICT = load("strict")
DEFAULT = load("default")


def pm(text: str) -> tuple[str, int, int, str]:
    p = ports.parse_publish(text)
    return p.host_ip, p.host_port, p.container_port, p.protocol


@pytest.mark.parametrize(("text", "want"), [
    ("80", ("127.0.0.1", 0, 80, "tcp")),
    ("8080:80", ("127.0.0.1", 8080, 80, "tcp")),
    ("0.0.0.0:8080:80", ("0.0.0.0", 8080, 80, "tcp")),    # noqa: S104
    ("127.0.0.1:5353:53/udp", ("127.0.0.1", 5353, 53, "udp")),
    ("127.0.0.1::80", ("127.0.0.1", 0, 80, "tcp")),
    ("[::1]:8080:80/TCP", ("::1", 8080, 80, "tcp")),
    ("53/udp", ("127.0.0.1", 0, 53, "udp")),
    ("65535:65535", ("127.0.0.1", 65535, 65535, "tcp")),
])
def test_publish_forms(text: str, want: tuple[str, int, int, str]) -> None:
    assert pm(text) == want


@pytest.mark.parametrize(("text", "message"), [
    ("", "no container port"),
    ("8080:", "no container port"),
    ("abc", "the container port 'abc' is not a number"),
    ("8080:http", "the container port 'http' is not a number"),
    ("70000:80", "the host port 70000 is outside 1-65535"),
    ("8080:65536", "the container port 65536 is outside 1-65535"),
    ("8080:0", "the container port 0 is outside 1-65535"),
    ("8080:80/sctp", "unknown protocol 'sctp'"),
    ("1.2.3:8080:80", "'1.2.3' is not an IP address"),
    ("localhost:8080:80", "'localhost' is not an IP address"),
    ("[::1:8080:80", "an IPv6 address ends with ']:'"),
    ("1:2:3:4", "too many ':'"),
    ("8080-8081:80-81", "port ranges are not supported"),
    ("٣:80", "is not a number"),
])
def test_publish_errors(text: str, message: str) -> None:
    with pytest.raises(NetworkRequestError, match="invalid -p") as e:
        ports.parse_publish(text)
    assert message in e.value.message and e.value.hint
    assert e.value.exit_code == 125


def test_distinct_and_exposed() -> None:
    ports.check_distinct([ports.parse_publish("8080:80"), ports.parse_publish("8080:80/udp"),
                          ports.parse_publish("80"), ports.parse_publish("81")])
    with pytest.raises(NetworkRequestError, match="given twice"):
        ports.check_distinct([ports.parse_publish("8080:80"), ports.parse_publish("8080:81")])
    got = ports.exposed_ports({"config": {"ExposedPorts": {"80/tcp": {}, "53/udp": {},
                                                           "443": {}}}})
    assert [(p.container_port, p.protocol, p.host_port) for p in got] == [
        (443, "tcp", 0), (53, "udp", 0), (80, "tcp", 0)]
    assert ports.exposed_ports({"config": {}}) == []
    with pytest.raises(NetworkRequestError, match="exposes '80/sctp'"):
        ports.exposed_ports({"config": {"ExposedPorts": {"80/sctp": {}}}})


def test_privileged_host_port_names_the_sysctl() -> None:
    ports.check_host_port(PortMapping(80, 1024), 1024)
    ports.check_host_port(PortMapping(80, 0), 1024)
    with pytest.raises(NetworkRequestError,
                       match=r"net.ipv4.ip_unprivileged_port_start = 1024"):
        ports.check_host_port(PortMapping(80, 80), 1024)
    assert ports.unprivileged_port_start() >= 0


def test_add_host_and_dns() -> None:
    assert ports.parse_add_host("db:192.0.2.10") == ("db", "192.0.2.10")
    assert ports.parse_add_host("db=2001:db8::1") == ("db", "2001:db8::1")
    assert ports.parse_add_host("db:[2001:db8::1]") == ("db", "2001:db8::1")
    for bad in ("db", "db:", ":1.2.3.4", "bad_name:1.2.3.4", "db:nowhere"):
        with pytest.raises(NetworkRequestError, match="--add-host"):
            ports.parse_add_host(bad)
    assert ports.parse_dns("192.0.2.53") == "192.0.2.53"
    with pytest.raises(NetworkRequestError, match="--dns 'x'"):
        ports.parse_dns("x")


def test_egress_and_ranges() -> None:
    assert ports.parse_egress("192.0.2.0/24:443/tcp", "e") == {
        "network": "192.0.2.0/24", "ports": [443, 443], "protocol": "tcp"}
    assert ports.parse_egress("192.0.2.53:53/udp", "e")["network"] == "192.0.2.53/32"
    assert ports.parse_egress("[2001:db8::/32]:8000-8100/tcp", "e")["ports"] == [8000, 8100]
    for bad in ("192.0.2.0/24:443", "192.0.2.1/24:443/tcp", "192.0.2.0/24:0/tcp",
                "host:443/tcp", "192.0.2.0/24:443/icmp", "[::1:443/tcp"):
        with pytest.raises(ValueError, match="e: "):
            ports.parse_egress(bad, "e")
    rules = egress.ruleset(("192.0.2.0/24:443/tcp", "[2001:db8::/32]:8000-8100/udp"))
    lines = [x.strip() for x in rules.splitlines()]
    assert "policy drop;" in lines[2] and lines[3:5] == [
        'oifname "lo" accept', "ct state established,related accept"]
    assert lines[5:8] == ["ip daddr 192.0.2.0/24 tcp dport 443 accept",
                          "ip6 daddr 2001:db8::/32 udp dport 8000-8100 accept",
                          "reject with icmpx type admin-prohibited"]
    assert ports.parse_port_range("1024-65535", "r") == (1024, 65535)
    assert ports.parse_port_range("443", "r") == (443, 443)
    for bad in ("0", "2-1", "1-70000", "x"):
        with pytest.raises(ValueError):
            ports.parse_port_range(bad, "r")


def test_views() -> None:
    rec = [{"host_ip": "127.0.0.1", "host_port": 8080, "container_port": 80, "protocol": "tcp"},
           {"host_ip": "::1", "host_port": 8080, "container_port": 80, "protocol": "tcp"}]
    assert port_bindings(rec) == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"},
                                             {"HostIp": "::1", "HostPort": "8080"}]}
    assert [describe_port(p) for p in rec] == ["127.0.0.1:8080->80/tcp", "[::1]:8080->80/tcp"]


def _spec(**kw: object) -> ContainerSpec:
    return ContainerSpec(image="busybox", **kw)  # type: ignore[arg-type]


def test_the_layer_refuses_what_a_mode_cannot_give() -> None:
    p = (PortMapping(80, 8080),)
    assert namespaces.check_network(STRICT, _spec(ports=p)) == "private"
    assert namespaces.check_network(STRICT, _spec(network="none")) == "none"
    for mode in ("none", "host"):
        with pytest.raises(NetworkRequestError, match=f"cannot publish ports with --network {mode}"):
            namespaces.check_network(DEFAULT, _spec(network=mode, ports=p))
    with pytest.raises(NetworkRequestError, match="cannot publish"):
        namespaces.check_network(DEFAULT, _spec(network="none",
                                                network_options=Network(publish_all=True)))
    with pytest.raises(NetworkRequestError, match="--dns needs --network pasta"):
        namespaces.check_network(DEFAULT, _spec(network_options=Network(dns=("192.0.2.53",))))
    with pytest.raises(Refused, match="profile strict does not allow --network host"):
        namespaces.check_network(STRICT, _spec(network="host"))
    with pytest.raises(Refused, match="profile strict does not allow --network pasta"):
        namespaces.check_network(STRICT, _spec(network="pasta"))


def test_the_profiles_network_settings(tmp_path: Path) -> None:
    doc = {"network": {"mode": "private", "modes": ["none", "loopback"], "publish": True,
                       "bind_addresses": ["127.0.0.1"], "ports": ["8000-8999", "443"],
                       "egress": ["192.0.2.0/24:443/tcp"]}}
    prof = build(doc, "n", str(tmp_path / "n.toml"), ("n",))
    assert prof.network_modes == ("none", "private") and prof.port_ranges == (
        (8000, 8999), (443, 443))
    assert prof.settings()["network_policy"]["ports"] == ["8000-8999", "443-443"]
    ok = _spec(ports=(PortMapping(80, 8080),))
    namespaces.check_network(prof, ok)
    with pytest.raises(Refused, match="does not allow the host port 9000"):
        namespaces.check_network(prof, _spec(ports=(PortMapping(80, 9000),)))
    with pytest.raises(Refused, match="does not allow publishing on 0.0.0.0"):
        namespaces.check_network(prof, _spec(ports=(PortMapping(80, 8080, "0.0.0.0"),)))  # noqa: S104
    with pytest.raises(Refused, match="does not allow --network pasta"):
        namespaces.check_network(prof, _spec(network="pasta"))
    closed = replace(prof, publish=False)
    with pytest.raises(Refused, match="does not allow published ports"):
        namespaces.check_network(closed, ok)
    for bad, message in (({"modes": ["bridge"]}, "unknown mode 'bridge'"),
                         ({"bind_addresses": ["here"]}, "'here' is not an IP address"),
                         ({"ports": ["0-10"]}, "not a port range"),
                         ({"egress": ["192.0.2.0/24:443"]}, "does not end in /tcp or /udp"),
                         ({"publish": "yes"}, "network.publish")):
        with pytest.raises(ProfileError, match=message):
            build({"network": bad}, "n", "n.toml", ("n",))


def floor(text: str) -> object:
    return parse_admin_policy(Path("/etc/secpod/policy.toml"), text)


def judge(pol: object, spec: ContainerSpec) -> None:
    prof = load(spec.profile)
    check(prof, spec, weakenings(prof, spec), "amd64", user=USER, policy=pol)  # type: ignore[arg-type]


def test_the_floors_network() -> None:
    pol = floor('[network]\nmodes = ["none", "private"]\nbind_addresses = ["127.0.0.1"]\n'
                'ports = ["8000-8999"]\n')
    judge(pol, _spec(ports=(PortMapping(80, 8080),)))
    judge(pol, _spec(ports=(PortMapping(80, 0),)))
    with pytest.raises(FloorRefused, match=r"network.modes in /etc/secpod/policy.toml.*pasta"):
        judge(pol, _spec(network="pasta"))
    with pytest.raises(FloorRefused, match="host port 9000"):
        judge(pol, _spec(ports=(PortMapping(80, 9000),)))
    with pytest.raises(FloorRefused, match="publishing on 0.0.0.0"):
        judge(pol, _spec(ports=(PortMapping(80, 8080, "0.0.0.0"),)))  # noqa: S104
    closed = floor("[network]\npublish = false\n")
    with pytest.raises(FloorRefused, match="publishing ports"):
        judge(closed, _spec(network_options=Network(publish_all=True)))
    for bad in ('[network]\nmodes = ["bridge"]\n', '[network]\nports = ["x"]\n',
                '[network]\nbind_addresses = ["x"]\n', '[network]\nother = 1\n',
                '[network]\npublish = 1\n'):
        with pytest.raises(AdminPolicyError):
            floor(bad)


def test_the_floors_egress_bounds_a_pasta_run() -> None:
    from secpod.policies.floor import egress_beyond

    wide = ("192.0.2.0/24:1-1024/tcp", "[2001:db8::/32]:443/tcp")
    assert egress_beyond(("192.0.2.10:443/tcp", "192.0.2.0/25:80-90/tcp",
                          "[2001:db8:1::/48]:443/tcp"), wide) == []
    assert egress_beyond(("192.0.2.10:443/udp", "192.0.0.0/16:443/tcp", "192.0.2.1:2000/tcp",
                          "[2001:db9::1]:443/tcp"), wide) == [
        "192.0.2.10:443/udp", "192.0.0.0/16:443/tcp", "192.0.2.1:2000/tcp",
        "[2001:db9::1]:443/tcp"]
    pol = floor('[network]\negress = ["192.0.2.0/24:443/tcp"]\n')
    judge(pol, _spec(network="private"))                 # no way out: nothing to bound
    with pytest.raises(FloorRefused, match="--network pasta needs an egress allow list"):
        judge(pol, _spec(network="pasta", profile="default"))
    with pytest.raises(AdminPolicyError, match="does not end in /tcp or /udp"):
        floor('[network]\negress = ["192.0.2.0/24:443"]\n')


def test_a_profile_egress_beyond_the_floor_is_refused() -> None:
    pol = floor('[network]\negress = ["192.0.2.0/24:443/tcp"]\n')
    spec = _spec(network="pasta", profile="default")
    inside = replace(load("default"), egress=("192.0.2.7:443/tcp",))
    check(inside, spec, weakenings(inside, spec), "amd64", user=USER, policy=pol)  # type: ignore[arg-type]
    wider = replace(load("default"), egress=("192.0.2.7:443/tcp", "198.51.100.0/24:443/tcp"))
    with pytest.raises(FloorRefused, match=r"lets out 198.51.100.0/24:443/tcp, beyond the "
                                           r"floor's egress list"):
        check(wider, spec, weakenings(wider, spec), "amd64", user=USER, policy=pol)  # type: ignore[arg-type]
