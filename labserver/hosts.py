"""Several hosts on one machine: network namespaces joined by veth pairs to one bridge.

Each host is a network namespace with its own address on a private /24 (10.231.X.0/24) and a
veth pair whose other end sits on a bridge in the machine's own namespace, the hub. The hub has
the subnet's first address and stands for the machine the shared services run on: the database
and Redis stay on 127.0.0.1 and are forwarded to the hub's address (``Topology.forward``), so an
app host reaches them over the simulated network as it would over a LAN. A host has no route
but its subnet: whatever it sends elsewhere fails at once, locally, and leaves nothing.

LAN-like delay and jitter come from ``tc netem`` on each host's interface, where the kernel has
the netem qdisc; where it has not (``Specified qdisc kind is unknown``), the hosts run without
added delay and ``Topology.delay_note`` says so.

Needs root (CAP_NET_ADMIN), iproute2's ``ip`` and ``tc``, and socat for the forwards.
"""

import ipaddress
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

SUBNET_TEMPLATE = "10.231.{}.0/24"
MAX_HOSTS = 50
NETEM_DELAY_MS = 0.2
NETEM_JITTER_MS = 0.05
FORWARD_READY_TIMEOUT_SECONDS = 10
COMMAND_TIMEOUT_SECONDS = 30


class HostsError(RuntimeError):
    """The topology cannot be built here; the message says why."""


@dataclass(frozen=True)
class Host:
    name: str
    namespace: str
    address: str

    def argv(self, command: Sequence[str]) -> list[str]:
        """``command`` run inside this host's network namespace."""
        return ["ip", "netns", "exec", self.namespace, *command]


@dataclass(frozen=True)
class Topology:
    # The machine's own end of the bridge: where the shared services are forwarded.
    hub_address: str
    hosts: dict[str, Host]
    # "0.2 ms ± 0.05 ms" when netem added it, else None (delay_note says why).
    delay: str | None
    delay_note: str
    forwards: "_Forwards"

    def forward(self, *, port: int) -> int:
        """Forward a free port on the hub's address to ``127.0.0.1:port``; answer the hub's port."""
        return self.forwards.add(hub_address=self.hub_address, to_port=port)


def unavailable_reason() -> str | None:
    """Why this machine cannot build a topology, or None when it can."""
    if os.geteuid() != 0:
        return "network namespaces need root (CAP_NET_ADMIN)"
    for tool, package in (("ip", "iproute2"), ("tc", "iproute2"), ("socat", "socat")):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install {package})"
    probe = f"labprobe-{secrets.token_hex(3)}"
    result = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if result.returncode != 0:
        return f"cannot create a network namespace here: {result.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


@contextmanager
def topology(*, names: Sequence[str], delay: bool = True) -> Iterator[Topology]:
    """Hosts named ``names`` on a new bridge, with netem delay where the kernel has it; all of
    it (namespaces, veth pairs, bridge, forwards) removed on the way out, whatever happened."""
    if not 1 <= len(names) <= MAX_HOSTS or len(set(names)) != len(names):
        raise ValueError(f"give from 1 to {MAX_HOSTS} distinct host names, not {list(names)}")
    reason = unavailable_reason()
    if reason is not None:
        raise HostsError(reason)
    token = secrets.token_hex(2)
    subnet = _free_subnet()
    addresses = [str(address) for address in subnet.hosts()]
    bridge = f"labbr{token}"
    with ExitStack() as cleanup:
        _ip("link", "add", bridge, "type", "bridge")
        cleanup.callback(_ip_quiet, "link", "del", bridge)
        _ip("addr", "add", f"{addresses[0]}/{subnet.prefixlen}", "dev", bridge)
        _ip("link", "set", bridge, "up")
        hosts = {}
        for number, name in enumerate(names, start=1):
            host = Host(name=name, namespace=f"lab-{token}-{name}", address=addresses[number])
            _ip("netns", "add", host.namespace)
            cleanup.callback(_ip_quiet, "netns", "del", host.namespace)
            outer = f"vl{token}h{number}"
            _ip("link", "add", outer, "type", "veth", "peer", "name", "eth0", "netns", host.namespace)
            _ip("link", "set", outer, "master", bridge, "up")
            _ip("-n", host.namespace, "addr", "add", f"{host.address}/{subnet.prefixlen}", "dev", "eth0")
            _ip("-n", host.namespace, "link", "set", "eth0", "up")
            _ip("-n", host.namespace, "link", "set", "lo", "up")
            hosts[name] = host
        added, note = _add_delay(list(hosts.values())) if delay else (None, "no delay asked for")
        forwards = cleanup.enter_context(_forwards())
        yield Topology(hub_address=addresses[0], hosts=hosts, delay=added, delay_note=note, forwards=forwards)


def _add_delay(hosts: list[Host]) -> tuple[str | None, str]:
    """netem on every host's interface, or none at all, and a sentence saying which."""
    for host in hosts:
        result = subprocess.run(
            host.argv(["tc", "qdisc", "add", "dev", "eth0", "root", "netem",
                       "delay", f"{NETEM_DELAY_MS}ms", f"{NETEM_JITTER_MS}ms"]),
            capture_output=True, text=True, timeout=COMMAND_TIMEOUT_SECONDS,
        )  # fmt: skip
        if result.returncode != 0:
            if host is not hosts[0]:
                raise HostsError(f"netem worked on one host and not on {host.name}: {result.stderr.strip()}")
            return None, (
                f"no added delay: this kernel has no netem qdisc ({result.stderr.strip()}); "
                "the hosts talk at veth speed"
            )
    delay = f"{NETEM_DELAY_MS:g} ms ± {NETEM_JITTER_MS:g} ms"
    return delay, f"netem adds {delay} on every host's interface"


def _free_subnet() -> ipaddress.IPv4Network:
    """A 10.231.X.0/24 that no interface of this machine uses yet (tests may build several)."""
    taken = subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True, check=True).stdout
    candidates = [number for number in range(1, 255) if f" 10.231.{number}." not in taken]
    if not candidates:
        raise HostsError("every 10.231.X.0/24 is in use on this machine: remove old lab bridges (labbr*)")
    return ipaddress.ip_network(SUBNET_TEMPLATE.format(secrets.choice(candidates)))


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=COMMAND_TIMEOUT_SECONDS)
    if result.returncode != 0:
        raise HostsError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")


def _ip_quiet(*args: str) -> None:
    subprocess.run(["ip", *args], capture_output=True, timeout=COMMAND_TIMEOUT_SECONDS)


class _Forwards:
    """socat processes that carry the hub's ports to services on 127.0.0.1."""

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen] = []

    def add(self, *, hub_address: str, to_port: int) -> int:
        port = free_port_at(hub_address)
        process = subprocess.Popen(
            ["socat", f"TCP-LISTEN:{port},bind={hub_address},reuseaddr,fork", f"TCP:127.0.0.1:{to_port}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.processes.append(process)
        _wait_listening(hub_address, port, process=process)
        return port

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def _forwards() -> Iterator[_Forwards]:
    forwards = _Forwards()
    try:
        yield forwards
    finally:
        forwards.stop()


def free_port_at(address: str) -> int:
    """A port nothing listens on at ``address`` (one of the hub's, say) right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((address, 0))
        return probe.getsockname()[1]


def _wait_listening(address: str, port: int, *, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + FORWARD_READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise HostsError(f"socat exited with {process.returncode} forwarding {address}:{port}")
        try:
            socket.create_connection((address, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise HostsError(f"socat did not listen on {address}:{port} within {FORWARD_READY_TIMEOUT_SECONDS} s")
