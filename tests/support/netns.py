"""Hosts that are really separate: Linux network namespaces with addresses of their own.

Each host has two links to this machine (the root namespace), one per bridge: "services" (Redis,
PostgreSQL: what the deployment shares) and "internet" (the provider). Cutting a host's services link
leaves it alive and talking to the provider; cutting both isolates it. Names and subnets are unique
per run, and everything is removed at the end, also when the test fails. Needs root and `ip netns`.
"""

from __future__ import annotations

import ipaddress
import os
import random
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

import pytest


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `ip ARGS`; raise with its message when it fails (and `check`)."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


def skip_unless_netns() -> None:
    """Skip, with the reason, where namespaces cannot be made (not root, no `ip netns`)."""
    if os.geteuid() != 0:
        pytest.skip("separate hosts are network namespaces: run as root (ip netns add needs it)")
    if shutil.which("ip") is None:
        pytest.skip("separate hosts need iproute2's `ip` command")
    probe = f"obxprobe{uuid.uuid4().hex[:6]}"
    made = ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        pytest.skip(f"`ip netns add` does not work here: {made.stderr.strip()}")
    ip("netns", "delete", probe, check=False)


@dataclass
class Host:
    """A namespace with one address on each bridge."""

    name: str  # the namespace
    services_address: str
    internet_address: str
    services_link: str  # the root side of its veth pairs
    internet_link: str

    @property
    def prefix(self) -> list[str]:
        """What runs a command on this host."""
        return ["ip", "netns", "exec", self.name]

    def cut(self, provider_too: bool) -> None:
        """Pull the services cable (and the internet one): the host lives on, its packets go nowhere."""
        ip("link", "set", self.services_link, "down")
        if provider_too:
            ip("link", "set", self.internet_link, "down")

    def restore(self) -> None:
        """Plug every cable back in."""
        for link in (self.services_link, self.internet_link):
            ip("link", "set", link, "up")


@dataclass
class Network:
    """Two bridges on this machine and the hosts hanging off them."""

    tag: str
    services_gateway: str  # this machine's address on the services bridge: Redis, PostgreSQL bind here
    internet_gateway: str  # and on the internet bridge: the provider binds here
    hosts: dict[str, Host] = field(default_factory=dict)
    bridges: list[str] = field(default_factory=list)

    def remove_host(self, host: Host) -> None:
        """A host gone for good: its namespace and links deleted."""
        for link in (host.services_link, host.internet_link):
            ip("link", "delete", link, check=False)
        ip("netns", "delete", host.name, check=False)
        self.hosts.pop(host.name.rsplit("-", 1)[1], None)


def _free_subnets() -> tuple[ipaddress.IPv4Network, ipaddress.IPv4Network]:
    used = ip("-4", "-o", "addr", "show").stdout + ip("-4", "route", "show", "table", "all").stdout
    for _ in range(200):
        base = ipaddress.IPv4Network(f"10.{random.randint(100, 250)}.{random.randrange(0, 256, 2)}.0/23")
        first, second = base.subnets(new_prefix=24)
        if not any(str(net.network_address).rsplit(".", 1)[0] + "." in used for net in (first, second)):
            return first, second
    raise RuntimeError("no free 10.x.y.0/23 for the test network")


@contextmanager
def network(host_names: list[str]) -> Iterator[Network]:
    """Make the bridges and one namespace per host name; remove them all at the end."""
    skip_unless_netns()
    tag = uuid.uuid4().hex[:6]
    services, internet = _free_subnets()
    net = Network(tag, str(services.network_address + 1), str(internet.network_address + 1))
    try:
        for bridge, subnet in ((f"obx{tag}s", services), (f"obx{tag}i", internet)):
            ip("link", "add", bridge, "type", "bridge")
            net.bridges.append(bridge)
            ip("addr", "add", f"{subnet.network_address + 1}/24", "dev", bridge)
            ip("link", "set", bridge, "up")
        for n, name in enumerate(host_names):
            net.hosts[name] = _add_host(net, n, name, services, internet)
        yield net
    finally:
        for host in list(net.hosts.values()):
            net.remove_host(host)
        for bridge in net.bridges:
            ip("link", "delete", bridge, check=False)


def _add_host(
    net: Network, n: int, name: str, services: ipaddress.IPv4Network, internet: ipaddress.IPv4Network
) -> Host:
    host = Host(
        name=f"obx-{net.tag}-{name}",
        services_address=str(services.network_address + 10 + n),
        internet_address=str(internet.network_address + 10 + n),
        services_link=f"obx{net.tag}{n}s",
        internet_link=f"obx{net.tag}{n}i",
    )
    ip("netns", "add", host.name)
    net.hosts[name] = host  # removed at the end even if what follows fails
    ip("-n", host.name, "link", "set", "lo", "up")
    for side, inside, address, bridge in (
        (host.services_link, "svc0", host.services_address, net.bridges[0]),
        (host.internet_link, "net0", host.internet_address, net.bridges[1]),
    ):
        ip("link", "add", side, "type", "veth", "peer", "name", inside, "netns", host.name)
        ip("link", "set", side, "master", bridge)
        ip("link", "set", side, "up")
        ip("-n", host.name, "addr", "add", f"{address}/24", "dev", inside)
        ip("-n", host.name, "link", "set", inside, "up")
    return host


@contextmanager
def forwarder(listen_host: str, listen_port: int, target_host: str, target_port: int) -> Iterator[None]:
    """A TCP forwarder (socat): a service that listens on loopback, reachable at another address."""
    socat = shutil.which("socat")
    if socat is None:
        pytest.skip("the separate-hosts test reaches PostgreSQL through socat: apt-get install socat")
    process = subprocess.Popen(
        [
            socat,
            f"TCP-LISTEN:{listen_port},bind={listen_host},fork,reuseaddr",
            f"TCP:{target_host}:{target_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        process.terminate()
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        if process.poll() is None:
            process.kill()
