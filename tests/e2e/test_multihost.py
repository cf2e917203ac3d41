"""The lab across simulated hosts (labserver/hosts.py): Locust workers on two client hosts, the
lab's Gunicorn on two app hosts, one database and one Redis race window behind the hub.

Every request crosses the simulated network: the master (splatter, on the hub) reaches the
workers, the workers each app host, and the app hosts the database and Redis through the hub's
forwards. Nothing here can reach beyond the test's own subnet.
"""

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pytest

from labserver.databases import reached_at, server_port
from labserver.hosts import Host, Topology, free_port_at, topology, unavailable_reason
from labserver.lab import Lab, Server
from racelab.loadgen.locust.runner import MasterAddress, locust_process, worker_argv
from tests.helpers import LAB_PASSWORD, LAB_USER, require, seed
from tests.json_schema import valid

REDIS_PORT = 6379
APP_HOSTS = ("app-1", "app-2")
CLIENT_HOSTS = ("client-1", "client-2")
LEVELS = (2, 4)
TRIALS = 20
RACE_MODE = {"RACE_WINDOW": "armed", "DJANGO_DEBUG": "1", "GUNICORN_ACCESS_LOG": "-"}
# The window closes once all K have read; the timeout only matters if one is lost on the way.
RACE_WINDOW_TIMEOUT = "2"


@pytest.fixture
def hosts() -> Iterator[Topology]:
    reason = unavailable_reason()
    require(reason is None, f"cannot simulate hosts on this machine: {reason}")
    with topology(names=(*APP_HOSTS, *CLIENT_HOSTS)) as built:
        yield built


@contextmanager
def app_servers(lab_env: Lab, hosts: Topology) -> Iterator[list[Server]]:
    """The lab's Gunicorn on each app host, on the lab's database and the hub's Redis."""
    port = server_port(lab_env.database_url)
    database_url = (
        lab_env.database_url
        if port is None
        else reached_at(lab_env.database_url, address=hosts.hub_address, port=hosts.forward(port=port))
    )
    redis = f"redis://{hosts.hub_address}:{hosts.forward(port=REDIS_PORT)}/0"
    env = {**RACE_MODE, "DATABASE_URL": database_url, "RACE_WINDOW_BACKEND": redis}
    with ExitStack() as stack:
        yield [
            stack.enter_context(lab_env.serve(workers=4, host=hosts.hosts[name], env=env))
            for name in APP_HOSTS
        ]


@contextmanager
def locust_workers(lab_env: Lab, hosts: list[Host], *, master: str, port: int) -> Iterator[None]:
    """`locust --worker` on each client host, as a user would start them on other machines."""
    argv = worker_argv(MasterAddress(host=master, port=port))
    env = {**lab_env.env, "BANK_PASSWORD": LAB_PASSWORD}
    with ExitStack() as stack:
        for host in hosts:
            stack.enter_context(
                locust_process(host.argv(argv), log=lab_env.workdir / f"worker-{host.name}.log", env=env)
            )
        yield


def test_a_burst_across_client_hosts_and_app_hosts_loses_exactly_k_minus_1(lab_env, hosts):
    seed(lab_env)
    master_port = free_port_at(hosts.hub_address)
    clients = [hosts.hosts[name] for name in CLIENT_HOSTS]
    with (
        app_servers(lab_env, hosts) as servers,
        locust_workers(lab_env, clients, master=hosts.hub_address, port=master_port),
    ):
        result = lab_env.manage(
            "splatter", "--url", ",".join(server.url for server in servers), "--allow-remote",
            "--username", LAB_USER, "--no-input", "--driver", "locust",
            "--expect-workers", str(len(clients)), "--locust-bind", f"{hosts.hub_address}:{master_port}",
            "--trials", str(TRIALS), "-c", ",".join(map(str, LEVELS)), "--format", "json",
            "--race-window", "--race-window-timeout", RACE_WINDOW_TIMEOUT,
            env={"BANK_PASSWORD": LAB_PASSWORD, "RACE_WINDOW_BACKEND": f"redis://127.0.0.1:{REDIS_PORT}/0"},
            timeout=900,
        )  # fmt: skip
        logs = [server.log() for server in servers]
    report = valid(json.loads(result.stdout), kind="splatter-trials")
    for level in LEVELS:
        trials = [trial for trial in report["runs"] if trial["concurrency"] == level]
        assert len(trials) == TRIALS
        # Every one of the K answered 200, and the balance shows one of them.
        assert [(trial["ok"], trial["refused"], trial["indeterminate"]) for trial in trials] == [
            (level, 0, 0)
        ] * TRIALS, trials
        assert [trial["lost"] for trial in trials] == [level - 1] * TRIALS, trials
        assert sum(trial["server_errors"] for trial in trials) == 0
        # One window per trial, closed by its K requests across both app hosts, none by the timeout.
        assert report["race_window"][str(level)] == {
            "held": level * TRIALS,
            "windows": TRIALS,
            "timeouts": 0,
            "serialized": 0,
        }
    # A balancer's share: each app host served half of every burst.
    posts = [log.count('"POST /accounts/withdraw/') for log in logs]
    assert posts == [sum(LEVELS) * TRIALS // 2] * 2, posts
