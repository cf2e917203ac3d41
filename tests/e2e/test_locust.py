"""The Locust driver end to end: a real Locust master and workers as processes, a real Gunicorn,
the one history they make, a worker killed mid-run, workers started by hand."""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from labserver.lab import PROJECT_DIR, Lab, free_port, lab
from loadgen.locust.runner import MasterAddress, worker_argv
from tests.helpers import LAB_PASSWORD, LAB_USER, audit, recorded_runs, seed, splatter

pytestmark = pytest.mark.e2e

RACE_MODE = {"RACE_WINDOW": "armed", "DJANGO_DEBUG": "1"}
# Long enough for every withdrawal of a burst to reach the barrier on a busy machine; the window
# closes as soon as all have read, so a naive burst never waits it out.
RACE_WINDOW_TIMEOUT = "1"
# A run that takes this long has hung; the test fails instead of waiting for ever.
HANG_SECONDS = 300
# Steady mode: enough requests that one worker is still sending when the test kills the other.
KILL_RUN_REQUESTS = 1200


@pytest.fixture(scope="module")
def locust_lab(tmp_path_factory):
    with lab(workdir=tmp_path_factory.mktemp("locust-lab")) as prepared:
        seed(prepared)
        yield prepared


@pytest.fixture(scope="module")
def locust_server(locust_lab):
    with locust_lab.serve(workers=4) as server:
        yield server


@pytest.fixture(scope="module")
def race_server(locust_lab):
    """Gunicorn in race mode on the same database: it holds withdrawals while a client arms the
    window."""
    with locust_lab.serve(workers=8, env=RACE_MODE) as server:
        yield server


@pytest.fixture
def lab_env(locust_lab):
    locust_lab.manage("reset_balances", "--no-input")
    return locust_lab


def locust(lab_env: Lab, server, *args: str, check: bool = True):
    return splatter(lab_env, server, "--driver", "locust", *args, check=check, timeout=HANG_SECONDS)


def dump(lab_env: Lab, model: str) -> list[dict]:
    return [row["fields"] for row in json.loads(lab_env.manage("dumpdata", model).stdout)]


def reconciles(account: dict) -> bool:
    """The ledger holds every acknowledged withdrawal and at most the indeterminate ones more."""
    client = account["client"]
    return client["ok"] <= account["ledger_rows"] <= client["ok"] + client["indeterminate"]


def test_the_history_holds_every_workers_requests_and_matches_the_ledger(lab_env, locust_server, tmp_path):
    history_path, output = tmp_path / "history.json", tmp_path / "locust"
    result = locust(
        lab_env, locust_server, "--locust-mode", "burst", "--locust-workers", "2", "-n", "20", "-c", "4",
        "--history", str(history_path), "--locust-output", str(output),
    )  # fmt: skip

    history = json.loads(history_path.read_text())
    entries = history["history"]
    assert (history["driver"], history["mode"], history["requests"]) == ("locust", "burst", 20)
    assert history["outcomes"] == {"ok": 20, "fail": 0, "indeterminate": 0}
    assert [entry["index"] for entry in entries] == list(range(20))
    assert Counter(entry["burst"] for entry in entries) == {burst: 4 for burst in range(5)}
    # Two workers, each with half of every burst, and every request answered by its worker.
    workers = {worker["id"]: worker for worker in history["workers"]}
    assert len(workers) == 2
    assert all((w["requests"], w["answered"], w["lost"]) == (10, 10, None) for w in workers.values())
    for burst in range(5):
        assert len({entry["worker"] for entry in entries if entry["burst"] == burst}) == 2
    ledger = dump(lab_env, "accounts.transaction")
    assert Counter(row["balance"] for row in ledger) == Counter(entry["balance"] for entry in entries)
    (client_run,) = dump(lab_env, "accounts.clientrun")
    assert (client_run["driver"], client_run["requests"], client_run["ok"]) == ("locust", 20, 20)
    assert recorded_runs(result.stdout) == [
        {"id": recorded_runs(result.stdout)[0]["id"], "ok": 20, "refused": 0, "indeterminate": 0}
    ]
    # Locust's own reports, beside the run, count the same requests.
    (run_folder,) = output.iterdir()
    stats = (run_folder / "locust_stats.csv").read_text().splitlines()
    aggregated = next(line for line in stats if line.startswith(",Aggregated,")).split(",")
    assert (aggregated[2], aggregated[3]) == ("20", "0")
    assert (run_folder / "locust.html").exists() and (run_folder / "locust.json").exists()
    assert "Traceback" not in locust_server.log()


def test_steady_mode_loses_nothing_with_a_safe_strategy_and_reconciles_with_naive(lab_env, locust_server):
    result = locust(
        lab_env, locust_server, "--strategy", "all", "--locust-workers", "2", "-n", "60", "-c", "4"
    )

    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[2:7]}
    assert set(rows) == {"naive", "atomic_update", "locking", "optimistic", "serializable"}
    for strategy, row in rows.items():
        ok, lost, _lost_updates, overdrafts, server_errors = (int(value) for value in row[1:6])
        assert (ok, overdrafts, server_errors) == (60, 0, 0), row
        if strategy != "naive":
            assert lost == 0, row
    # The last strategy's run is still in the ledger: the checker reconciles it.
    account = audit(lab_env)
    assert account["client"]["ok"] == account["ledger_rows"] == 60
    assert "ANOMALIES" not in account["verdict"]


def test_steady_mode_history_reconciles_for_naive(lab_env, locust_server, tmp_path):
    history_path = tmp_path / "history.json"
    locust(
        lab_env, locust_server, "--locust-workers", "2", "-n", "80", "-c", "6", "--history", str(history_path)
    )

    history = json.loads(history_path.read_text())
    assert (history["mode"], history["outcomes"]) == ("steady", {"ok": 80, "fail": 0, "indeterminate": 0})
    assert all(entry["sent_at"] <= entry["received_at"] for entry in history["history"])
    account = audit(lab_env)
    assert account["client"]["ok"] == account["ledger_rows"] == 80
    assert "phantom rows" not in account["verdict"] and "missing rows" not in account["verdict"]


def test_burst_mode_with_the_race_window_naive_loses_exactly_all_but_one(lab_env, race_server):
    level, trials = 4, 2
    result = locust(
        lab_env, race_server, "--locust-workers", "2", "--strategy", "all", "--trials", str(trials),
        "-c", str(level), "--race-window", "--race-window-timeout", RACE_WINDOW_TIMEOUT, "--format", "json",
    )  # fmt: skip

    report = json.loads(result.stdout)
    assert len(report["trials"]) == trials * 5
    for trial in report["trials"]:
        assert trial["driver"] == "locust" and trial["server_errors"] == 0, trial
        assert trial["ok"] + trial["failed"] == level and trial["indeterminate"] == 0, trial
        if trial["strategy"] == "naive":
            # The bursts of both workers met at the barrier: each read the same balance.
            assert (trial["ok"], trial["lost"]) == (level, level - 1), trial
        else:
            assert (trial["lost"], trial["anomalies"]) == (0, []), trial
    assert "Traceback" not in race_server.log()


@pytest.mark.parametrize("mode", ["steady", "burst"])
def test_a_scenarios_patches_go_through_both_modes(lab_env, locust_server, mode):
    lab_env.manage("seed_scenario", "profile")
    result = locust(
        lab_env, locust_server, "--scenario", "profile", "--locust-mode", mode, "--locust-workers", "2",
        "-n", "4", "-c", "2", "--format", "json",
    )  # fmt: skip

    (run,) = json.loads(result.stdout)["runs"]
    assert (run["driver"], run["ok"], run["server_errors"]) == ("locust", 4, 0), run
    assert run["audit"]["figures"]["accepted edits"] == 4, run


def test_a_killed_worker_is_reported_and_the_audit_still_reconciles(lab_env, locust_server, tmp_path):
    output = tmp_path / "locust"
    splatter_process = subprocess.Popen(
        [
            sys.executable, str(PROJECT_DIR / "manage.py"), "splatter", "--url", locust_server.url,
            "--username", LAB_USER, "--no-input", "--driver", "locust", "--locust-workers", "2",
            "-n", str(KILL_RUN_REQUESTS), "-c", "4", "--locust-output", str(output),
        ],
        cwd=PROJECT_DIR, env={**lab_env.env, "BANK_PASSWORD": LAB_PASSWORD},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        run_folder = output / "run-001"
        # The master logs this line once every worker has logged in and the requests go out.
        wait_for(lambda: "the run starts" in read(run_folder / "master.log"))
        (victim, _survivor) = json.loads((run_folder / "local-workers.json").read_text())
        time.sleep(0.5)
        os.kill(victim, signal.SIGKILL)
        stdout, stderr = splatter_process.communicate(timeout=HANG_SECONDS)
    finally:
        if splatter_process.poll() is None:
            splatter_process.kill()
            splatter_process.communicate()

    assert splatter_process.returncode == 0, stderr
    assert f"(pid {victim}) was lost" in stderr
    assert "count as indeterminate" in stderr
    (counts,) = recorded_runs(stdout)
    assert counts["indeterminate"] > 0
    assert counts["ok"] + counts["refused"] + counts["indeterminate"] == KILL_RUN_REQUESTS
    account = audit(lab_env)
    assert reconciles(account), account
    assert "phantom rows" not in account["verdict"] and "missing rows" not in account["verdict"]


def test_steady_users_are_respawned_when_a_later_run_asks_for_another_count(lab_env, locust_server):
    """One master serves every trial: its users stay between runs and follow each run's -c."""
    result = locust(
        lab_env, locust_server, "--locust-mode", "steady", "--locust-workers", "2",
        "--strategy", "atomic_update", "--trials", "2", "-c", "2,4,2", "--format", "json",
    )  # fmt: skip

    trials = json.loads(result.stdout)["trials"]
    assert [(t["concurrency"], t["ok"], t["server_errors"], t["lost"]) for t in trials] == [
        (2, 2, 0, 0), (2, 2, 0, 0), (4, 4, 0, 0), (4, 4, 0, 0), (2, 2, 0, 0), (2, 2, 0, 0),
    ]  # fmt: skip


def test_the_master_and_its_workers_end_when_splatter_is_killed(lab_env, locust_server, tmp_path):
    output = tmp_path / "locust"
    splatter_process = subprocess.Popen(
        [
            sys.executable, str(PROJECT_DIR / "manage.py"), "splatter", "--url", locust_server.url,
            "--username", LAB_USER, "--no-input", "--driver", "locust", "--locust-workers", "2",
            "-n", "100000", "-c", "2", "--locust-output", str(output), "--no-record",
        ],
        cwd=PROJECT_DIR, env={**lab_env.env, "BANK_PASSWORD": LAB_PASSWORD},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    session = output / "run-001"
    try:
        wait_for(lambda: "the run starts" in read(session / "master.log"))
        workers = json.loads((session / "local-workers.json").read_text())
        master = master_of(session)
        splatter_process.kill()
        splatter_process.wait(timeout=30)
        # Within the steady run, not after it: 100,000 requests would take minutes.
        wait_for(lambda: not any(alive(pid) for pid in [master, *workers]), timeout=60)
    finally:
        if splatter_process.poll() is None:
            splatter_process.kill()
            splatter_process.wait()
    assert "splatter stopped the session" in read(session / "result-001.json")


def master_of(session: Path) -> int:
    """The master's process: the one whose command line names the session folder."""
    found = subprocess.run(["pgrep", "-f", "--", f"--lab-session {session}"], capture_output=True, text=True)
    (pid,) = found.stdout.split()
    return int(pid)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # Killed but not yet reaped by its new parent: as good as gone.
    return "zombie" not in read(Path(f"/proc/{pid}/status")).lower()


def test_workers_started_by_hand_join_a_master_that_expects_them(lab_env, locust_server):
    port = free_port()
    with hand_started_worker(port=port, env={**lab_env.env, "BANK_PASSWORD": LAB_PASSWORD}) as worker:
        result = locust(
            lab_env, locust_server, "--expect-workers", "1", "--locust-bind", f"127.0.0.1:{port}",
            "-n", "12", "-c", "3",
        )  # fmt: skip
        # The master's quit message ends the worker too.
        worker.wait(timeout=30)

    (counts,) = recorded_runs(result.stdout)
    assert (counts["ok"], counts["refused"], counts["indeterminate"]) == (12, 0, 0)
    assert audit(lab_env)["ledger_rows"] == 12


def test_a_worker_without_the_password_stops_the_run_before_any_request(lab_env, locust_server):
    port = free_port()
    env = {name: value for name, value in lab_env.env.items() if name != "BANK_PASSWORD"}
    with hand_started_worker(port=port, env=env):
        result = locust(
            lab_env, locust_server, "--expect-workers", "1", "--locust-bind", f"127.0.0.1:{port}",
            "-n", "4", "-c", "2", check=False,
        )  # fmt: skip

    assert result.returncode == 1
    assert "This worker has no password: set BANK_PASSWORD in its environment" in result.stderr
    assert audit(lab_env)["ledger_rows"] == 0


@contextmanager
def hand_started_worker(*, port: int, env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """``locust --worker`` as a user starts it on another machine, here on 127.0.0.1."""
    worker = subprocess.Popen(
        worker_argv(MasterAddress(host="127.0.0.1", port=port)),
        cwd=PROJECT_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield worker
    finally:
        if worker.poll() is None:
            worker.kill()
        worker.wait(timeout=30)


def wait_for(condition, *, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""
