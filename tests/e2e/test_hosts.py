"""The simulated hosts themselves (labserver/hosts.py): each its own address, reachable from the
others and from the hub, shared services through the hub's forwards, nothing beyond the subnet,
and nothing left behind."""

import subprocess
import urllib.request
from urllib.parse import urlencode

import pytest

from accounts.withdrawals import Strategy
from experiment.requests import withdrawal_post
from labserver.databases import reached_at, server_port
from labserver.hosts import Host, topology, unavailable_reason
from labserver.lab import LAB_LOGIN
from racelab.loadgen.login import read_cookie_jar
from tests.helpers import LAB_PASSWORD, LAB_USER, audit, require, seed

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


def _curl_from(host: Host, url: str, *options: str, config: str | None = None) -> tuple[str, str]:
    """curl run on ``host``: the body it was answered, and "STATUS REMOTE_IP". ``config`` goes to
    curl on its standard input (``--config -``), as racelab/loadgen/login.py sends the password."""
    fetched = subprocess.run(
        host.argv(["curl", "--silent", "--show-error", "--write-out", "\n%{http_code} %{remote_ip}",
                   *options, *(["--config", "-"] if config is not None else []), url]),
        input=config, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert fetched.returncode == 0, fetched.stderr
    body, _, answer = fetched.stdout.rpartition("\n")
    return body, answer


OPENING_BALANCE = 1_000
AMOUNTS = (7, 5)


def test_a_client_host_logs_in_and_withdraws_on_an_app_host_whose_database_is_behind_the_hub(
    lab_env, hosts, tmp_path
):
    # Every step after the login page reads or writes the database (the user, the session, the
    # account and its ledger): on PostgreSQL and MariaDB, through the hub's forward.
    app, client = hosts.hosts["app"], hosts.hosts["client"]
    port = server_port(lab_env.database_url)
    database_url = (
        lab_env.database_url
        if port is None
        else reached_at(lab_env.database_url, address=hosts.hub_address, port=hosts.forward(port=port))
    )
    seed(lab_env, balance=OPENING_BALANCE)
    anonymous, session = tmp_path / "anonymous.txt", tmp_path / "session.txt"
    with lab_env.serve(workers=1, host=app, env={"DATABASE_URL": database_url}) as server:
        assert server.url == f"http://{app.address}:8000"
        login_url = f"{server.url}{LAB_LOGIN.path}"
        with urllib.request.urlopen(login_url, timeout=10) as answer:
            assert answer.status == 200
        _, page = _curl_from(client, login_url, "--output", "/dev/null", "--cookie-jar", str(anonymous))
        csrftoken = read_cookie_jar(anonymous)["csrftoken"]
        form = urlencode({"csrfmiddlewaretoken": csrftoken, "username": LAB_USER, "password": LAB_PASSWORD})
        _, logged_in = _curl_from(
            client, login_url,
            "--output", "/dev/null", "--cookie", str(anonymous), "--cookie-jar", str(session),
            config=f'header = "X-CSRFToken: {csrftoken}"\ndata-binary = "{form}"\n',
        )  # fmt: skip
        # Django rotates the CSRF token at login: the session jar holds the one to send now.
        token = read_cookie_jar(session)["csrftoken"]
        logged_in_as = ("--cookie", str(session), "--header", f"X-CSRFToken: {token}")
        posts = [withdrawal_post(strategy=Strategy.LOCKING, amount=amount) for amount in AMOUNTS]
        withdrawals = [
            _curl_from(client, server.url + post.path_and_query, *logged_in_as, "--data", post.body)
            for post in posts
        ]
    assert (page, logged_in) == (f"200 {app.address}", f"302 {app.address}")
    # Each answer is the balance the withdrawal left, and the database on the hub shows them.
    assert withdrawals == [
        (str(OPENING_BALANCE - AMOUNTS[0]), f"200 {app.address}"),
        (str(OPENING_BALANCE - sum(AMOUNTS)), f"200 {app.address}"),
    ]
    account = audit(lab_env)
    assert (account["final"], account["ledger_rows"], account["anomalies"]) == (
        OPENING_BALANCE - sum(AMOUNTS),
        len(AMOUNTS),
        [],
    )


@pytest.mark.database_independent
def test_a_host_reaches_nothing_outside_its_subnet(hosts):
    client = hosts.hosts["client"]
    assert _connect_from(client, hosts.hub_address, 1).stderr.strip().startswith("ConnectionRefusedError")
    outside = _connect_from(client, OUTSIDE_ADDRESS, 80)
    assert "Network is unreachable" in outside.stderr
    # Nor the machine's own loopback services: a host's 127.0.0.1 is its own.
    assert "ConnectionRefusedError" in _connect_from(client, "127.0.0.1", 6379).stderr


@pytest.mark.database_independent
def test_the_delay_is_netems_or_says_why_not(hosts):
    qdiscs = subprocess.run(
        hosts.hosts["app"].argv(["tc", "qdisc", "show", "dev", "eth0"]), capture_output=True, text=True
    ).stdout
    if hosts.delay is None:
        assert "no netem qdisc" in hosts.delay_note
        assert "netem" not in qdiscs
    else:
        assert "netem" in qdiscs and "delay 200us" in qdiscs.replace("0.2ms", "200us")


@pytest.mark.database_independent
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


@pytest.mark.database_independent
def test_names_are_checked_before_anything_is_built():
    with pytest.raises(ValueError, match="distinct host names"), topology(names=("app", "app")):
        pass
