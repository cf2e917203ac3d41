"""The simulated hosts themselves (labserver/hosts.py): each its own address, reachable from the
others and from the hub, shared services through the hub's forwards, nothing beyond the subnet,
and nothing left behind."""

import subprocess
import urllib.request

import pytest

from labserver.databases import reached_at, server_port
from labserver.hosts import topology, unavailable_reason
from tests.helpers import require, seed

# TEST-NET-3 (RFC 5737): documentation only, and outside every simulated host's one route.
OUTSIDE_ADDRESS = "203.0.113.7"


@pytest.fixture
def hosts():
    reason = unavailable_reason()
    require(reason is None, f"cannot simulate hosts on this machine: {reason}")
    with topology(names=("app", "client")) as built:
        yield built


def _connect_from(host, address: str, port: int) -> subprocess.CompletedProcess:
    script = (
        "import socket, sys\n"
        "try:\n"
        f"    socket.create_connection(({address!r}, {port}), timeout=5).close()\n"
        "except OSError as error:\n"
        "    sys.exit(f'{type(error).__name__}: {error}')\n"
    )
    return subprocess.run(host.argv(["python3", "-c", script]), capture_output=True, text=True, timeout=30)


def test_an_app_host_serves_the_lab_to_a_client_host_and_the_hub(lab_env, hosts):
    app, client = hosts.hosts["app"], hosts.hosts["client"]
    port = server_port(lab_env.database_url)
    database_url = (
        lab_env.database_url
        if port is None
        else reached_at(lab_env.database_url, address=hosts.hub_address, port=hosts.forward(port=port))
    )
    seed(lab_env)
    with lab_env.serve(workers=1, host=app, env={"DATABASE_URL": database_url}) as server:
        assert server.url == f"http://{app.address}:8000"
        with urllib.request.urlopen(f"{server.url}/auth/login/", timeout=10) as answer:
            assert answer.status == 200
        fetched = subprocess.run(
            client.argv(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{remote_ip}",
                         f"{server.url}/auth/login/"]),
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    assert fetched.stdout == f"200 {app.address}", fetched.stderr


def test_a_host_reaches_nothing_outside_its_subnet(hosts):
    client = hosts.hosts["client"]
    assert _connect_from(client, hosts.hub_address, 1).stderr.strip().startswith("ConnectionRefusedError")
    outside = _connect_from(client, OUTSIDE_ADDRESS, 80)
    assert "Network is unreachable" in outside.stderr
    # Nor the machine's own loopback services: a host's 127.0.0.1 is its own.
    assert "ConnectionRefusedError" in _connect_from(client, "127.0.0.1", 6379).stderr


def test_the_delay_is_netems_or_says_why_not(hosts):
    qdiscs = subprocess.run(
        hosts.hosts["app"].argv(["tc", "qdisc", "show", "dev", "eth0"]), capture_output=True, text=True
    ).stdout
    if hosts.delay is None:
        assert "no netem qdisc" in hosts.delay_note
        assert "netem" not in qdiscs
    else:
        assert "netem" in qdiscs and "delay 200us" in qdiscs.replace("0.2ms", "200us")


def test_nothing_is_left_behind():
    reason = unavailable_reason()
    require(reason is None, f"cannot simulate hosts on this machine: {reason}")
    with topology(names=("one", "two")) as built:
        namespaces = [host.namespace for host in built.hosts.values()]
        hub = built.hub_address
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert all(namespace in listed for namespace in namespaces)
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(namespace in listed for namespace in namespaces)
    assert f" {hub}/" not in subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True).stdout


def test_names_are_checked_before_anything_is_built():
    with pytest.raises(ValueError, match="distinct host names"), topology(names=("app", "app")):
        pass
