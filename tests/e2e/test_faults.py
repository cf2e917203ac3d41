"""Faults under load, with a safe strategy: nothing may be lost.

A Gunicorn worker is killed with SIGKILL in the middle of a splatter run, or PostgreSQL is
restarted under it. Requests caught in the fault fail (ab counts them unanswered, or the server
answers 5xx) and are recorded as indeterminate; the audit must still reconcile: every ledger row
matches a balance change, the final balance lies within what the ok and indeterminate requests
allow, and no withdrawal is half written.
"""

import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.helpers import audit, seed, splatter

pytestmark = pytest.mark.e2e

WORKERS = 4
REQUESTS = 1500
CONCURRENCY = 4
RUN_TIMEOUT_SECONDS = 300
KILLS = 3
# Break things only once the load is well under way, not during splatter's login.
STARTED_WITHDRAWALS = 100


class Load:
    """A splatter run in a thread, so the test can break things while it runs."""

    def __init__(self, lab_env, server, strategy: str) -> None:
        self.result = None
        args = ["--driver", "ab", "--strategy", strategy, "-n", str(REQUESTS), "-c", str(CONCURRENCY)]
        self.thread = threading.Thread(target=self._run, args=(lab_env, server, *args), daemon=True)

    def _run(self, lab_env, server, *args: str) -> None:
        self.result = splatter(lab_env, server, *args, check=False)

    def __enter__(self) -> "Load":
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.thread.join(timeout=RUN_TIMEOUT_SECONDS)

    @property
    def running(self) -> bool:
        return self.thread.is_alive()


def workers_of(master: int) -> list[int]:
    return [int(pid) for pid in Path(f"/proc/{master}/task/{master}/children").read_text().split()]


def busy_workers(master: int, port: int) -> list[int]:
    """Workers that hold an accepted connection to ``port``: each is handling a request now."""
    connections = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port, state, inode = int(fields[1].rsplit(":", 1)[1], 16), fields[3], fields[9]
            if state == "01" and local_port == port:  # 01: ESTABLISHED, the server's side
                connections.add(f"socket:[{inode}]")
    busy = []
    for pid in workers_of(master):
        try:
            descriptors = {os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()}
        except (FileNotFoundError, ProcessLookupError):
            continue  # it just exited
        if descriptors & connections:
            busy.append(pid)
    return busy


def serve_logging_access(lab_env):
    """Gunicorn with an access log, which tells when the withdrawals have started."""
    return lab_env.serve(workers=WORKERS, env={"GUNICORN_ACCESS_LOG": str(access_log(lab_env))})


def access_log(lab_env) -> Path:
    return lab_env.workdir / "access.log"


def withdrawals_started(lab_env) -> bool:
    log = access_log(lab_env)
    return log.exists() and log.read_text().count("POST /accounts/withdraw/") >= STARTED_WITHDRAWALS


def wait_for(condition, *, timeout: float, interval: float = 0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(interval)
    raise AssertionError(f"not true within {timeout} s: {condition}")


def assert_reconciles(lab_env, load: Load) -> dict:
    assert load.result is not None, "the splatter run did not finish"
    assert load.result.returncode == 0, load.result.stderr
    account = audit(lab_env)
    client = account["client"]
    assert account["verdict"] == "OK", account["anomalies"]
    assert client["ok"] + client["failed"] + client["indeterminate"] == REQUESTS
    assert client["ok"] <= account["ledger_rows"] <= client["ok"] + client["indeterminate"]
    assert account["withdrawn"] == account["decrease"]  # every row is a balance change, and back
    assert client["lowest_final"] <= account["final"] <= client["highest_final"]
    return account


@pytest.mark.parametrize("strategy", ["atomic_update", "locking", "optimistic", "serializable"])
def test_a_worker_killed_mid_run_loses_nothing(lab_env, strategy):
    seed(lab_env)
    with serve_logging_access(lab_env) as server:
        master, port = server.process.pid, urlsplit(server.url).port
        killed = []
        with Load(lab_env, server, strategy) as load:
            wait_for(lambda: withdrawals_started(lab_env), timeout=60)
            for _ in range(KILLS):
                victim = wait_for(lambda: busy_workers(master, port), timeout=60)[0]
                os.kill(victim, signal.SIGKILL)
                killed.append(victim)
                time.sleep(0.2)
            assert load.running, "the run ended before the workers were killed: raise REQUESTS"

        account = assert_reconciles(lab_env, load)
        # The kills hit requests in flight, and Gunicorn replaced every killed worker.
        assert account["client"]["indeterminate"] >= 1
        workers = wait_for(lambda: len(workers_of(master)) == WORKERS and workers_of(master), timeout=30)
        assert not set(killed) & set(workers)


def postgres_cluster(database_url: str) -> tuple[str, str] | None:
    """(version, name) of the local cluster serving ``database_url``, if this test may restart it."""
    if not database_url.startswith(("postgres://", "postgresql://")) or os.geteuid() != 0:
        return None
    if shutil.which("pg_ctlcluster") is None or shutil.which("pg_lsclusters") is None:
        return None
    port = urlsplit(database_url).port or 5432
    listing = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True, timeout=30)
    for line in listing.stdout.splitlines():
        version, name, cluster_port, status = line.split()[:4]
        if int(cluster_port) == port and status == "online":
            return version, name
    return None


def pg_ctlcluster(version: str, name: str, action: str) -> None:
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, name, action],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize("strategy", ["atomic_update", "locking"])
def test_a_postgresql_restart_mid_run_loses_nothing(lab_env, strategy):
    cluster = postgres_cluster(lab_env.database_url)
    if cluster is None:
        pytest.skip(
            "needs DATABASE_URL on a local PostgreSQL cluster that root can restart with pg_ctlcluster"
        )
    seed(lab_env)
    with serve_logging_access(lab_env) as server:
        workers_before = workers_of(server.process.pid)
        try:
            with Load(lab_env, server, strategy) as load:
                wait_for(lambda: withdrawals_started(lab_env), timeout=60)
                pg_ctlcluster(*cluster, "restart")
                assert load.running, f"the run ended before PostgreSQL restarted: {load.result}"
        finally:
            if postgres_cluster(lab_env.database_url) is None:
                pg_ctlcluster(*cluster, "start")

        account = assert_reconciles(lab_env, load)
        assert account["client"]["indeterminate"] >= 1  # the outage caught requests in flight
        # The server recovered by itself: the same workers, each answering again.
        assert workers_of(server.process.pid) == workers_before
        after = splatter(lab_env, server, "--driver", "ab", "--strategy", strategy, "-n", "40", "-c", "4")
        assert "Recorded run" in after.stdout and ": 40 ok, 0 refused, 0 indeterminate." in after.stdout
        assert audit(lab_env)["verdict"] == "OK"
