"""Faults under load, with a safe strategy: nothing may be lost.

A Gunicorn worker is killed with SIGKILL while withdrawals are in flight, or PostgreSQL is
stopped and started again under them. The load keeps coming until the faults are done (see
``Load``), however fast or slow the machine. Requests caught in the fault fail (ab counts them
unanswered, or the server answers 5xx) and are recorded as indeterminate; the audit must still
reconcile: every ledger row matches a balance change, the final balance lies within what the ok
and indeterminate requests allow, and no withdrawal is half written.
"""

import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from labserver.lab import lab
from tests.helpers import audit, recorded_runs, seed, splatter
from tests.private_postgres import private_postgres

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("needs_ab")]

WORKERS = 4
CONCURRENCY = 4
# The load stops by itself after this long, whatever happens to the test.
LOAD_SECONDS = 240
RUN_TIMEOUT_SECONDS = 300
KILLS = 3
# The kill test's server holds each withdrawal, right after it has read the balance and before
# it commits, until a window of more parties than can ever be in flight closes by its timeout
# (the race window of docs/race-mode.md). A worker busy on a withdrawal then stays busy long
# enough for the kill to catch it mid-transaction, however fast the machine: without the hold
# a fast worker is often done, or idle again, by the time the kill lands. atomic_update has no
# such moment (its check and write are one statement, nothing holds it), so it is not here;
# optimistic is held after its read, before its transaction.
HELD_MID_TRANSACTION = {
    "RACE_WINDOW": str(CONCURRENCY + 1),
    "RACE_WINDOW_TIMEOUT": "0.05",
    "DJANGO_DEBUG": "1",
}
# Held 0.05 s each, one at a time where the strategy queues them: a run of the kill test's load
# lasts a few seconds, so it ends soon once the test says stop.
KILL_CHUNK = 60
# A fault waits this long at most for its moment (busy workers, withdrawals answered).
FAULT_WAIT_SECONDS = 60


class Load:
    """Withdrawals that keep coming for as long as the test breaks things, however fast the machine.

    A thread runs ``splatter -n chunk`` again and again until the test stops it (leaving the
    ``with`` block) or LOAD_SECONDS pass. Each run records its outcome counts, and the audit adds
    up every run recorded on the account, so the test compares it with all the requests sent.
    """

    def __init__(self, lab_env, server, *, strategy: str, driver: str = "ab", chunk: int) -> None:
        self.chunk = chunk
        self.results: list[subprocess.CompletedProcess] = []
        self.error: BaseException | None = None
        self._args = ("--driver", driver, "--strategy", strategy, "-n", str(chunk), "-c", str(CONCURRENCY))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(lab_env, server), daemon=True)

    def _run(self, lab_env, server) -> None:
        deadline = time.monotonic() + LOAD_SECONDS
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                result = splatter(lab_env, server, *self._args, check=False, timeout=RUN_TIMEOUT_SECONDS)
                self.results.append(result)
        except BaseException as error:  # a run that hung (TimeoutExpired): the test reports it
            self.error = error

    def __enter__(self) -> "Load":
        self._thread.start()
        return self

    def __exit__(self, exc_type, *exc_info) -> None:
        # The run in flight goes on to its end and records what it saw.
        self._stop.set()
        self._thread.join(timeout=RUN_TIMEOUT_SECONDS + 30)
        if exc_type is None:
            assert not self._thread.is_alive(), f"the load did not stop within {RUN_TIMEOUT_SECONDS} s"

    def requests_sent(self) -> int:
        """Check that every run ended well and recorded all of its requests; how many they sent."""
        assert self.error is None, f"a splatter run failed to end: {self.error!r}"
        assert self.results, "no splatter run ended"
        for number, result in enumerate(self.results, 1):
            assert result.returncode == 0, f"run {number} of {len(self.results)} failed:\n{result.stderr}"
            (run,) = recorded_runs(result.stdout)
            assert run["ok"] + run["refused"] + run["indeterminate"] == self.chunk, result.stdout
        return len(self.results) * self.chunk


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


def serve_logging_access(lab_env, env: dict[str, str] | None = None):
    """Gunicorn with an access log, which tells what the withdrawals were answered."""
    return lab_env.serve(
        workers=WORKERS, env={"GUNICORN_ACCESS_LOG": str(access_log(lab_env)), **(env or {})}
    )


def access_log(lab_env) -> Path:
    return lab_env.workdir / "access.log"


def withdrawal_statuses(lab_env) -> list[str]:
    """The status of every withdrawal the server has answered, oldest first."""
    log = access_log(lab_env)
    text = log.read_text(errors="replace") if log.exists() else ""
    return re.findall(r'"POST /accounts/withdraw/\S* HTTP/1\.[01]" (\d{3}) ', text)


def wait_for(condition, *, timeout: float = FAULT_WAIT_SECONDS, interval: float = 0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(interval)
    raise AssertionError(f"not true within {timeout} s: {condition}")


def assert_reconciles(lab_env, load: Load) -> dict:
    sent = load.requests_sent()
    account = audit(lab_env)
    client = account["client"]
    assert account["verdict"] == "OK", account["anomalies"]
    assert client["runs"] == len(load.results)
    assert client["ok"] + client["refused"] + client["indeterminate"] == sent
    assert client["ok"] <= account["ledger_rows"] <= client["ok"] + client["indeterminate"]
    assert account["withdrawn"] == account["decrease"]  # every row is a balance change, and back
    assert client["lowest_final"] <= account["final"] <= client["highest_final"]
    return account


@pytest.mark.parametrize("strategy", ["locking", "optimistic", "serializable"])
def test_a_worker_killed_mid_run_loses_nothing(lab_env, strategy):
    seed(lab_env)
    with serve_logging_access(lab_env, HELD_MID_TRANSACTION) as server:
        master, port = server.process.pid, urlsplit(server.url).port
        killed = []
        with Load(lab_env, server, strategy=strategy, chunk=KILL_CHUNK) as load:
            for _ in range(KILLS):
                # Two connections at once: ab is firing (splatter's login, and ab's first
                # request, go one at a time), so the victim is serving a withdrawal.
                victim = wait_for(lambda: (busy := busy_workers(master, port))[1:] and busy)[0]
                os.kill(victim, signal.SIGKILL)
                killed.append(victim)
                wait_for(lambda victim=victim: victim not in workers_of(master))

        account = assert_reconciles(lab_env, load)
        # The kills caught withdrawals in flight (one may land just after a worker has answered,
        # before it closes the connection), and Gunicorn replaced every killed worker.
        assert account["client"]["indeterminate"] >= 1
        workers = wait_for(lambda: len(workers_of(master)) == WORKERS and workers_of(master), timeout=30)
        assert not set(killed) & set(workers)


# The load of the restart test: the burst driver waits 0.1 s before each burst of 4, so a run of
# 400 lasts 10 s or more however fast the machine, and the failed requests of the outage cannot
# end it before PostgreSQL is back to record its outcomes.
RESTART_CHUNK = 400


@pytest.mark.parametrize("strategy", ["atomic_update", "locking"])
def test_a_postgresql_restart_mid_run_loses_nothing(tmp_path, strategy):
    if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        pytest.skip("restarts a PostgreSQL server: runs with the PostgreSQL tests")
    # A server of its own: the one DATABASE_URL names serves other tests meanwhile.
    with private_postgres() as cluster, lab(workdir=tmp_path, base_database_url=cluster.url) as lab_env:
        seed(lab_env)
        with serve_logging_access(lab_env) as server:
            workers_before = workers_of(server.process.pid)
            with Load(lab_env, server, strategy=strategy, driver="burst", chunk=RESTART_CHUNK) as load:
                wait_for(lambda: "200" in withdrawal_statuses(lab_env))
                cluster.stop()
                # Down until the load has felt it: a withdrawal answered 500 for want of a database.
                wait_for(lambda: "500" in withdrawal_statuses(lab_env))
                cluster.start()

            account = assert_reconciles(lab_env, load)
            assert account["client"]["indeterminate"] >= 1  # the outage caught requests in flight
            assert account["ledger_rows"] >= 1
            # The server recovered by itself: the same workers, each answering again.
            assert workers_of(server.process.pid) == workers_before
            after = splatter(lab_env, server, "--driver", "ab", "--strategy", strategy, "-n", "40", "-c", "4")
            assert [
                (run["ok"], run["refused"], run["indeterminate"]) for run in recorded_runs(after.stdout)
            ] == [(40, 0, 0)]
            assert audit(lab_env)["verdict"] == "OK"
