"""The Locust driver end to end: a real Locust master and workers as processes, a real Gunicorn,
the one history they make, a worker killed mid-run, workers started by hand.

What the driver does with its processes, users and requests is the same on every database
(database_independent: CI runs it on SQLite); what the strategies and the race window do under
it runs on each."""

import json
import os
import re
import shutil
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
from racelab.loadgen.locust.runner import LOCAL_WORKERS_FILE, MasterAddress, worker_argv
from tests.e2e.arming import armed_window
from tests.helpers import LAB_PASSWORD, LAB_USER, audit, recorded_runs, require, seed, splatter
from tests.json_schema import valid
from tests.lab_database import command, dumped

pytestmark = pytest.mark.e2e

# Every account's opening balance, as tests.helpers.seed leaves it.
OPENING = 1_000_000
RACE_MODE = {"RACE_WINDOW": "armed", "DJANGO_DEBUG": "1"}
# Long enough for every withdrawal of a burst to reach the barrier on a busy machine; the window
# closes as soon as all have read, so a naive burst never waits it out.
RACE_WINDOW_TIMEOUT = "1"
# The naive window closes as soon as all K have read, so a timeout far above any machine's
# arrival spread costs nothing (on one busy core, 1 s was not enough for K = 4).
NAIVE_WINDOW_TIMEOUT = "10"
# A run that takes this long has hung; the test fails instead of waiting for ever.
HANG_SECONDS = 300
# Where the test's own window holds withdrawals: after their write, at the table's one barrier,
# which the test can close at once (tests/e2e/arming.py).
HELD_AT_WRITE = "accounts_account:write"
# Held requests wait for the test to let them go; this only bounds a test that fails to.
HOLD_TIMEOUT = 10
# The kill test: 2 steady users on each of 2 workers, each user's first withdrawal held at the
# server until the kill, its second sent after it.
KILL_USERS = 4
KILL_RUN_REQUESTS = 2 * KILL_USERS


@pytest.fixture(scope="module")
def locust_lab(tmp_path_factory, seeded_lab_template):
    with lab(workdir=tmp_path_factory.mktemp("locust-lab"), template=seeded_lab_template) as prepared:
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
    command(locust_lab, "reset_balances", "--no-input")
    return locust_lab


def locust(lab_env: Lab, server, *args: str, check: bool = True):
    return splatter(lab_env, server, "--driver", "locust", *args, check=check, timeout=HANG_SECONDS)


def dump(lab_env: Lab, model: str) -> list[dict]:
    return [row["fields"] for row in dumped(lab_env, model)]


def reconciles(account: dict) -> bool:
    """The ledger holds every acknowledged withdrawal and at most the indeterminate ones more."""
    client = account["client"]
    return client["ok"] <= account["ledger_rows"] <= client["ok"] + client["indeterminate"]


@pytest.mark.database_independent
def test_the_history_holds_every_workers_requests_and_matches_the_ledger(lab_env, locust_server, tmp_path):
    history_path, output = tmp_path / "history.json", tmp_path / "locust"
    result = locust(
        lab_env, locust_server, "--locust-mode", "burst", "--locust-workers", "2", "-n", "20", "-c", "4",
        "--history", str(history_path), "--locust-output", str(output),
    )  # fmt: skip

    history = json.loads(history_path.read_text())
    entries = history["history"]
    assert (history["driver"], history["mode"], history["requests"]) == ("locust", "burst", 20)
    assert history["outcomes"] == {"ok": 20, "refused": 0, "indeterminate": 0}
    assert [entry["index"] for entry in entries] == list(range(20))
    assert Counter(entry["burst"] for entry in entries) == {burst: 4 for burst in range(5)}
    # Two workers, each with half of every burst, and every request answered by its worker.
    workers = {worker["id"]: worker for worker in history["workers"]}
    assert len(workers) == 2
    assert all((w["requests"], w["answered"], w["lost"]) == (10, 10, None) for w in workers.values())
    for burst in range(5):
        assert len({entry["worker"] for entry in entries if entry["burst"] == burst}) == 2
    ledger = dump(lab_env, "accounts.transaction")
    assert Counter(row["balance"] for row in ledger) == Counter(int(entry["answer"]) for entry in entries)
    (run,) = [run for run in dump(lab_env, "accounts.run") if run["since_reset"]]
    assert (run["driver"], run["requests"], run["ok"]) == ("locust", 20, 20)
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
    # Each strategy's run is kept with the audit of its account right after it, before the next
    # reset: each reconciles, naive's too (its anomalies are lost updates, never a ledger row
    # without its request, or a request without its row).
    kept = lab_runs(lab_env)
    runs = {kept[pk]["strategy"]: kept[pk] for pk in map(int, re.findall(r"/lab/runs/(\d+)/", result.stdout))}
    assert set(runs) == set(rows)
    for strategy, run in runs.items():
        account = run["audit"]
        assert account["client"]["ok"] == account["ledger_rows"] == 60, (strategy, account)
        assert run["lost"] == int(rows[strategy][2]), (strategy, run)
        if strategy == "naive":
            assert "phantom rows" not in run["verdict"] and "missing rows" not in run["verdict"], run
        else:
            assert run["verdict"] == "OK", (strategy, run)


@pytest.mark.database_independent
def test_steady_mode_history_reconciles_for_naive(lab_env, locust_server, tmp_path):
    history_path = tmp_path / "history.json"
    locust(
        lab_env, locust_server, "--locust-workers", "2", "-n", "80", "-c", "6", "--history", str(history_path)
    )

    history = json.loads(history_path.read_text())
    assert (history["mode"], history["outcomes"]) == ("steady", {"ok": 80, "refused": 0, "indeterminate": 0})
    assert all(entry["sent_at"] <= entry["received_at"] for entry in history["history"])
    account = audit(lab_env)
    assert account["client"]["ok"] == account["ledger_rows"] == 80
    assert "phantom rows" not in account["verdict"] and "missing rows" not in account["verdict"]


# The second user of --users 2, and its account with everything recorded of it, gone.
FORGET_USER = """
from accounts.models import Account
from django.contrib.auth.models import User
Account.objects.filter(user__username={username!r}).delete()
User.objects.filter(username={username!r}).delete()
"""


@pytest.fixture
def second_user(lab_env) -> Iterator[str]:
    """LAB_USER-2 and an account of its own, for --users 2; deleted afterwards, as the module's
    other tests audit the lab's one account."""
    username = f"{LAB_USER}-2"
    seed(lab_env, username=username)
    try:
        yield username
    finally:
        command(lab_env, "shell", "--command", FORGET_USER.format(username=username))


# Withdrawals of 1 the ledger holds but the balance does not show: lost updates.
LOST_WITHDRAWALS = (
    "SELECT (SELECT count(*) FROM accounts_transaction t WHERE t.holder_id = a.id) - (a.opening - a.current) "
    f"FROM accounts_account a JOIN auth_user u ON u.id = a.user_id WHERE u.username = '{LAB_USER}'"
)


def test_any_endpoint_goes_through_locusts_workers_held_and_checked(lab_env, race_server):
    """splatter --path with --driver locust: the workers log in through the project's login form,
    send the form given, meet at the race window, and --check gives the verdict (exit 1)."""
    level = 4
    result = locust(
        lab_env, race_server, "--path", "/accounts/withdraw/?strategy=naive", "--data", "amount=1",
        "-n", str(level), "-c", str(level), "--race-window",
        "--race-window-timeout", NAIVE_WINDOW_TIMEOUT, "--check", LOST_WITHDRAWALS, "--format", "json",
        check=False,
    )  # fmt: skip

    assert result.returncode == 1, result.stdout + result.stderr
    run = valid(json.loads(result.stdout), kind="splatter-endpoint")
    assert (run["driver"], run["ok"], run["refused"], run["indeterminate"]) == ("locust", level, 0, 0), run
    assert run["check"]["violations"] == level - 1
    assert run["race_window"] == {"held": level, "windows": 1, "serialized": 0, "timeouts": 0}


# An endpoint that loses nothing: the --path runs below count requests, not races.
SAFE_ENDPOINT = "/accounts/withdraw/?strategy=atomic_update"


@pytest.mark.database_independent
@pytest.mark.parametrize(("mode", "expected"), [(None, "steady"), ("burst", "burst")])
def test_any_endpoint_takes_the_locust_options(lab_env, locust_server, tmp_path, mode, expected):
    """splatter --path with --locust-workers, --locust-output and --locust-mode: steady without
    --race-window unless told, each of the workers sending its share, Locust's reports kept."""
    history_path, output = tmp_path / "history.json", tmp_path / "locust"
    result = locust(
        lab_env, locust_server, "--path", SAFE_ENDPOINT, "--data", "amount=1", "-n", "8", "-c", "4",
        *(() if mode is None else ("--locust-mode", mode)), "--locust-workers", "2",
        "--locust-output", str(output), "--history", str(history_path), "--format", "json",
    )  # fmt: skip

    run = valid(json.loads(result.stdout), kind="splatter-endpoint")
    assert (run["driver"], run["requests"], run["ok"], run["refused"], run["indeterminate"]) == (
        "locust", 8, 8, 0, 0,
    ), run  # fmt: skip
    history = json.loads(history_path.read_text())
    assert (history["mode"], history["outcomes"]) == (expected, {"ok": 8, "refused": 0, "indeterminate": 0})
    # Two workers, half of the requests each (two users each in steady mode, two of every burst
    # of 4 in burst mode), every one answered.
    workers = history["workers"]
    assert [(w["requests"], w["answered"], w["lost"]) for w in workers] == [(4, 4, None)] * 2, workers
    (run_folder,) = output.iterdir()
    stats = (run_folder / "locust_stats.csv").read_text().splitlines()
    aggregated = next(line for line in stats if line.startswith(",Aggregated,")).split(",")
    assert (aggregated[2], aggregated[3]) == ("8", "0")
    assert audit(lab_env)["ledger_rows"] == 8


@pytest.mark.database_independent
def test_any_endpoint_goes_through_workers_started_by_hand(lab_env, locust_server):
    port = free_port()
    with hand_started_worker(port=port, env={**lab_env.env, "BANK_PASSWORD": LAB_PASSWORD}) as worker:
        result = locust(
            lab_env, locust_server, "--path", SAFE_ENDPOINT, "--data", "amount=1",
            "--expect-workers", "1", "--locust-bind", f"127.0.0.1:{port}", "-n", "6", "-c", "3",
            "--format", "json",
        )  # fmt: skip
        # The master's quit message ends the worker too.
        worker.wait(timeout=30)

    run = valid(json.loads(result.stdout), kind="splatter-endpoint")
    assert (run["driver"], run["ok"], run["refused"], run["indeterminate"]) == ("locust", 6, 0, 0), run
    assert audit(lab_env)["ledger_rows"] == 6


@pytest.mark.database_independent
@pytest.mark.parametrize(
    ("allow", "message"),
    [
        ((), "--locust-bind 0.0.0.0: the master would listen beyond this machine; pass --allow-remote"),
        # Past the guard, the driver logs in first, and finds no network in the namespace.
        (("--allow-remote",), "Cannot reach the server at http://127.0.0.1:8001/auth/login/"),
    ],
)
def test_any_endpoints_master_listens_beyond_loopback_only_with_allow_remote(lab_env, allow, message):
    """Run in an empty network namespace, where nothing can listen or connect, should the guard
    fail: exit 2 with the sentence, before any Locust process starts."""
    require(shutil.which("unshare") is not None, "unshare is not installed (util-linux)")
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True, timeout=30)
    require(probe.returncode == 0, f"cannot create a network namespace here: {probe.stderr.decode().strip()}")

    result = subprocess.run(
        [
            "unshare", "--net", "--", sys.executable, str(PROJECT_DIR / "manage.py"), "splatter",
            "--url", "http://127.0.0.1:8001", "--path", SAFE_ENDPOINT, "--driver", "locust",
            "--expect-workers", "1", "--locust-bind", "0.0.0.0:5557", *allow,
            "--username", LAB_USER, "--no-input",
        ],
        cwd=PROJECT_DIR, env={**lab_env.env, "BANK_PASSWORD": LAB_PASSWORD},
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip

    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert audit(lab_env)["ledger_rows"] == 0


@pytest.mark.database_independent
@pytest.mark.parametrize("mode", ["steady", "burst"])
def test_several_users_share_every_run_as_the_master_deals_them(
    lab_env, locust_server, second_user, tmp_path, mode
):
    history_path, users = tmp_path / "history.json", [LAB_USER, second_user]
    result = locust(
        lab_env, locust_server, "--users", "2", "--locust-mode", mode, "--locust-workers", "2",
        "--strategy", "atomic_update", "-n", "20", "-c", "4", "--history", str(history_path),
    )  # fmt: skip

    history = json.loads(history_path.read_text())
    entries = history["history"]
    assert history["outcomes"] == {"ok": 20, "refused": 0, "indeterminate": 0}
    # Request i is user i mod 2's in either mode (slot i mod 4 of its burst in burst mode).
    assert [entry["username"] for entry in entries] == [users[index % 2] for index in range(20)]
    assert all((w["requests"], w["answered"], w["lost"]) == (10, 10, None) for w in history["workers"])
    first, second = sorted(worker["id"] for worker in history["workers"])
    if mode == "steady":
        # Two Locust users on each worker, a seat each: seat k sends requests k, k+4, ...; the
        # first worker's seats 0 and 1 send both users' requests alike.
        shares = {(first, users[0]): 5, (first, users[1]): 5, (second, users[0]): 5, (second, users[1]): 5}
    else:
        # Each burst of 4 dealt round robin: slots 0 and 2, the first user's, to the first worker.
        shares = {(first, users[0]): 10, (second, users[1]): 10}
    assert Counter((entry["worker"], entry["username"]) for entry in entries) == shares
    for user in users:
        # Each user's 10 withdrawals, from an account of its own: each answered a balance of its own.
        balances = sorted(int(entry["answer"]) for entry in entries if entry["username"] == user)
        assert balances == list(range(OPENING - 10, OPENING)), user
        account = audit(lab_env, username=user)
        assert (account["ledger_rows"], account["client"]["ok"], account["verdict"]) == (10, 10, "OK")
    counts = [(run["ok"], run["refused"], run["indeterminate"]) for run in recorded_runs(result.stdout)]
    assert counts == [(10, 0, 0), (10, 0, 0)]


@pytest.mark.database_independent
def test_steady_mode_takes_several_app_servers_in_turn_on_one_database(lab_env, tmp_path):
    logs = [tmp_path / "first-access.log", tmp_path / "second-access.log"]
    history_path = tmp_path / "history.json"
    with (
        lab_env.serve(workers=2, env={"GUNICORN_ACCESS_LOG": str(logs[0])}) as first,
        lab_env.serve(workers=2, env={"GUNICORN_ACCESS_LOG": str(logs[1])}) as second,
    ):
        result = lab_env.manage(
            "splatter", "--url", f"{first.url},{second.url}", "--username", LAB_USER, "--no-input",
            "--driver", "locust", "--locust-workers", "2", "--strategy", "atomic_update",
            "-n", "40", "-c", "4", "--history", str(history_path),
            env={"BANK_PASSWORD": LAB_PASSWORD}, timeout=HANG_SECONDS,
        )  # fmt: skip

    history = json.loads(history_path.read_text())
    assert (history["mode"], history["targets"]) == ("steady", [first.url, second.url])
    assert history["outcomes"] == {"ok": 40, "refused": 0, "indeterminate": 0}
    # Request i went to server i mod 2: each answered half, every one 200.
    for log in logs:
        statuses = re.findall(r'"POST /accounts/withdraw/\S* HTTP/1\.[01]" (\d{3}) ', log.read_text())
        assert statuses == ["200"] * 20, log
    (counts,) = recorded_runs(result.stdout)
    assert (counts["ok"], counts["refused"], counts["indeterminate"]) == (40, 0, 0)
    account = audit(lab_env)
    assert (account["ledger_rows"], account["client"]["ok"], account["verdict"]) == (40, 40, "OK")
    assert sorted(int(entry["answer"]) for entry in history["history"]) == list(range(OPENING - 40, OPENING))


def test_burst_mode_with_the_race_window_naive_loses_exactly_all_but_one(lab_env, race_server):
    level, trials = 4, 2
    result = locust(
        lab_env, race_server, "--locust-workers", "2", "--strategy", "all", "--trials", str(trials),
        "-c", str(level), "--race-window", "--race-window-timeout", RACE_WINDOW_TIMEOUT, "--format", "json",
    )  # fmt: skip

    report = valid(json.loads(result.stdout), kind="splatter-trials")
    assert len(report["runs"]) == trials * 5
    for trial in report["runs"]:
        assert trial["driver"] == "locust" and trial["server_errors"] == 0, trial
        assert trial["ok"] + trial["refused"] == level and trial["indeterminate"] == 0, trial
        if trial["strategy"] == "naive":
            # The bursts of both workers met at the barrier: each read the same balance.
            assert (trial["ok"], trial["lost"]) == (level, level - 1), trial
        else:
            assert (trial["lost"], trial["anomalies"]) == (0, []), trial
    assert "Traceback" not in race_server.log()


@pytest.mark.database_independent
@pytest.mark.parametrize("mode", ["steady", "burst"])
def test_a_scenarios_patches_go_through_both_modes(lab_env, locust_server, mode):
    command(lab_env, "seed_scenario", "profile")
    result = locust(
        lab_env, locust_server, "--scenario", "profile", "--locust-mode", mode, "--locust-workers", "2",
        "-n", "4", "-c", "2", "--format", "json",
    )  # fmt: skip

    (run,) = valid(json.loads(result.stdout), kind="splatter-scenario")["runs"]
    assert (run["driver"], run["ok"], run["server_errors"]) == ("locust", 4, 0), run
    assert run["audit"]["figures"]["accepted edits"] == 4, run


@pytest.mark.database_independent
def test_a_killed_worker_is_reported_and_the_audit_still_reconciles(lab_env, race_server, tmp_path):
    """The test's window, of one party more than there are users, holds every user's first
    withdrawal at the server until the worker is killed: the run cannot end before, however fast
    the machine."""
    output = tmp_path / "locust"
    with armed_window(lab_env, parties=KILL_USERS + 1, timeout=HOLD_TIMEOUT, at=HELD_AT_WRITE) as window:
        splatter_process = start_splatter(
            lab_env, race_server, "--locust-workers", "2", "-n", str(KILL_RUN_REQUESTS),
            "-c", str(KILL_USERS), "--locust-output", str(output),
        )  # fmt: skip
        try:
            wait_for(lambda: window.state().held == KILL_USERS, timeout=HANG_SECONDS)
            (victim, _survivor) = json.loads((output / "run-001" / LOCAL_WORKERS_FILE).read_text())
            os.kill(victim, signal.SIGKILL)
            # Still held when it died: both of its users' withdrawals were at the server.
            assert window.state().windows == 0
            window.release()
            stdout, stderr = splatter_process.communicate(timeout=HANG_SECONDS)
        finally:
            stop(splatter_process)

    assert splatter_process.returncode == 0, stderr
    # Its 2 held withdrawals and the 2 its users had yet to send: no answer came back for any.
    assert (
        f"(pid {victim}) was lost (Locust's heartbeat marked it missing): 4 of its 4 request(s) got no "
        "answer to it and count as indeterminate." in stderr
    ), stderr
    assert recorded_runs(stdout) == [
        {"id": recorded_runs(stdout)[0]["id"], "ok": 4, "refused": 0, "indeterminate": 4}
    ]
    account = audit(lab_env)
    # The survivor's 4, and the victim's 2 that the server finished once the window let them go.
    assert account["ledger_rows"] == 6, account
    assert reconciles(account), account
    assert "phantom rows" not in account["verdict"] and "missing rows" not in account["verdict"]


@pytest.mark.database_independent
@pytest.mark.parametrize("killed", ["during the first trial", "between the first two trials"])
def test_a_worker_lost_in_trials_is_reported_and_the_later_trials_go_on_without_it(
    lab_env, race_server, tmp_path, killed
):
    """Bursts of 2 over 2 workers, one request each; the test's window holds the first trial's
    two at the server until it lets them go."""
    output, runs_before = tmp_path / "locust", lab_runs(lab_env)
    session = output / "run-001"
    with armed_window(lab_env, parties=3, timeout=HOLD_TIMEOUT, at=HELD_AT_WRITE) as window:
        splatter_process = start_splatter(
            lab_env, race_server, "--locust-workers", "2", "--trials", "3", "-c", "2", "--format", "json",
            "--locust-output", str(output),
        )  # fmt: skip
        try:
            wait_for(lambda: window.state().held == 2, timeout=HANG_SECONDS)
            (victim, survivor) = json.loads((session / LOCAL_WORKERS_FILE).read_text())
            if killed == "during the first trial":
                os.kill(victim, signal.SIGKILL)
                assert window.state().windows == 0  # its request still held at the server
                window.release()
            else:
                # Stopped, splatter cannot hand the master the second trial: the worker dies
                # with the first one answered in full and the second not yet begun.
                os.kill(splatter_process.pid, signal.SIGSTOP)
                window.release()
                wait_for(lambda: (session / "result-001.json").exists())
                assert not (session / "spec-002.json").exists()
                os.kill(victim, signal.SIGKILL)
                os.kill(splatter_process.pid, signal.SIGCONT)
            stdout, stderr = splatter_process.communicate(timeout=HANG_SECONDS)
        finally:
            stop(splatter_process)

    assert splatter_process.returncode == 0, stderr
    assert (
        "1 Locust worker(s) were lost during the trials: the requests they held without an answer "
        "count as indeterminate, and later trials ran without them." in stderr
    ), stderr
    trials = valid(json.loads(stdout), kind="splatter-trials")["runs"]
    during = killed == "during the first trial"
    # (trial, ok, indeterminate, workers lost): the trial the worker was lost in counts it, its
    # held request indeterminate; the survivor sends both requests of every later burst.
    assert [(t["trial"], t["ok"], t["indeterminate"], t["lost_workers"]) for t in trials] == [
        (1, 1, 1, 1) if during else (1, 2, 0, 0),
        (2, 2, 0, 0) if during else (2, 2, 0, 1),
        (3, 2, 0, 0),
    ]
    new_runs = [run for pk, run in lab_runs(lab_env).items() if pk not in runs_before]
    assert len(new_runs) == 3
    for run in new_runs:
        assert reconciles(run["audit"]), run
    # The run ended, and took the survivor with it.
    wait_for(lambda: not alive(survivor), timeout=30)


@pytest.mark.database_independent
def test_steady_users_are_respawned_when_a_later_run_asks_for_another_count(lab_env, locust_server):
    """One master serves every trial: its users stay between runs and follow each run's -c."""
    result = locust(
        lab_env, locust_server, "--locust-mode", "steady", "--locust-workers", "2",
        "--strategy", "atomic_update", "--trials", "2", "-c", "2,4,2", "--format", "json",
    )  # fmt: skip

    trials = valid(json.loads(result.stdout), kind="splatter-trials")["runs"]
    assert [(t["concurrency"], t["ok"], t["server_errors"], t["lost"]) for t in trials] == [
        (2, 2, 0, 0), (2, 2, 0, 0), (4, 4, 0, 0), (4, 4, 0, 0), (2, 2, 0, 0), (2, 2, 0, 0),
    ]  # fmt: skip


@pytest.mark.database_independent
def test_the_master_and_its_workers_end_when_splatter_is_killed(lab_env, locust_server, tmp_path):
    output = tmp_path / "locust"
    splatter_process = start_splatter(
        lab_env, locust_server, "--locust-workers", "2", "-n", "100000", "-c", "2",
        "--locust-output", str(output), "--no-record",
    )  # fmt: skip
    session = output / "run-001"
    try:
        wait_for(lambda: "the run starts" in read(session / "master.log"))
        workers = json.loads((session / LOCAL_WORKERS_FILE).read_text())
        master = master_of(session)
        splatter_process.kill()
        splatter_process.wait(timeout=30)
        # Within the steady run, not after it: 100,000 requests would take minutes.
        wait_for(lambda: not any(alive(pid) for pid in [master, *workers]), timeout=60)
    finally:
        stop(splatter_process)
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


@pytest.mark.database_independent
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


@pytest.mark.database_independent
def test_a_worker_without_the_password_stops_the_run_before_any_request(lab_env, locust_server):
    port = free_port()
    env = {name: value for name, value in lab_env.env.items() if name != "BANK_PASSWORD"}
    with hand_started_worker(port=port, env=env):
        result = locust(
            lab_env, locust_server, "--expect-workers", "1", "--locust-bind", f"127.0.0.1:{port}",
            "-n", "4", "-c", "2", check=False,
        )  # fmt: skip

    assert result.returncode == 1
    assert "This worker has no password: set RACELAB_PASSWORD in its environment" in result.stderr
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


def start_splatter(lab_env: Lab, server, *args: str) -> subprocess.Popen:
    """splatter with the Locust driver as a process of its own, for a test that acts on it mid-run."""
    return subprocess.Popen(
        [
            sys.executable, str(PROJECT_DIR / "manage.py"), "splatter", "--url", server.url,
            "--username", LAB_USER, "--no-input", "--driver", "locust", *args,
        ],
        cwd=PROJECT_DIR, env={**lab_env.env, "BANK_PASSWORD": LAB_PASSWORD},
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def stop(process: subprocess.Popen) -> None:
    """Kill ``process`` unless it has ended (woken first, should the test have stopped it)."""
    if process.poll() is None:
        process.send_signal(signal.SIGCONT)
        process.kill()
    process.communicate(timeout=HANG_SECONDS)


def lab_runs(lab_env: Lab) -> dict[int, dict]:
    """Every lab run kept in the lab's database, by id: what splatter recorded of each run and
    the account's audit right after it (resets clear the ledger, not these)."""
    return {row["pk"]: row["fields"] for row in dumped(lab_env, "accounts.run") if row["fields"]["audit"]}


def wait_for(condition, *, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""
