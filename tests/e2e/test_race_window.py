"""Deterministic race mode end to end: Gunicorn's worker processes share the barrier, so K
concurrent naive withdrawals lose exactly K-1, and the safe strategies lose none and never hang."""

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from labserver.lab import LabError, lab
from tests.e2e.arming import armed_window
from tests.helpers import audit, recorded_runs, splatter
from tests.json_schema import valid
from tests.lab_database import command

pytestmark = pytest.mark.e2e

# Every account's opening balance, as tests.helpers.seed leaves it.
OPENING = 1_000_000
WORKERS = 8
RACE_MODE = {"RACE_WINDOW": "armed", "DJANGO_DEBUG": "1"}
# Generous for the naive runs: the window closes as soon as all K have read, so a long
# timeout costs nothing unless a withdrawal is lost on the way.
NAIVE_TIMEOUT = "2"
# Short for the safe strategies: each one that blocks before the barrier waits it out in turn.
SAFE_TIMEOUT = 0.3
# A run that takes this long has hung; lab.manage kills it and the test fails.
HANG_SECONDS = 180


@pytest.fixture(scope="module")
def race_lab(tmp_path_factory, seeded_lab_template):
    with lab(workdir=tmp_path_factory.mktemp("race-lab"), template=seeded_lab_template) as prepared:
        yield prepared


@pytest.fixture(scope="module")
def race_server(race_lab):
    """Gunicorn in race mode: it holds withdrawals while a client arms the window."""
    with race_lab.serve(workers=WORKERS, env=RACE_MODE) as server:
        yield server


@pytest.fixture
def lab_env(race_lab):
    command(race_lab, "reset_balances", "--no-input")
    return race_lab


def burst(lab_env, server, *args: str, check: bool = True):
    """splatter with the burst driver, which releases each burst at once, killed if it hangs."""
    return splatter(lab_env, server, "--driver", "burst", *args, check=check, timeout=HANG_SECONDS)


def test_naive_loses_exactly_all_but_one_in_every_trial(lab_env, race_server):
    result = burst(
        lab_env, race_server, "--trials", "5", "-c", f"2,{WORKERS}", "--race-window",
        "--race-window-timeout", NAIVE_TIMEOUT, "--format", "json",
    )  # fmt: skip

    report = valid(json.loads(result.stdout), kind="splatter-trials")
    assert len(report["runs"]) == 10
    for trial in report["runs"]:
        level = trial["concurrency"]
        assert (trial["ok"], trial["lost"]) == (level, level - 1), trial
    for level in (2, WORKERS):
        # Every window closed because all K had read the balance, none by the timeout or a lock.
        assert report["race_window"][str(level)] == {
            "held": 5 * level,
            "windows": 5,
            "timeouts": 0,
            "serialized": 0,
        }
    assert [summary["hit_rate"] for summary in report["summaries"]] == [1.0, 1.0]


def test_safe_strategies_lose_nothing_and_never_hang(lab_env, race_server):
    parties, trials = 4, 2
    sweep = ("--trials", str(trials), "-c", str(parties), "--strategy", "all", "--format", "json")
    # The control: what the same sweep costs on this machine, without the race window.
    started = time.monotonic()
    burst(lab_env, race_server, *sweep)
    without_window = time.monotonic() - started

    started = time.monotonic()
    result = burst(lab_env, race_server, *sweep, "--race-window", "--race-window-timeout", str(SAFE_TIMEOUT))
    elapsed = time.monotonic() - started

    report = valid(json.loads(result.stdout), kind="splatter-trials")
    for trial in report["runs"]:
        assert trial["ok"] + trial["refused"] == parties and trial["indeterminate"] == 0, trial
        if trial["strategy"] == "naive":
            assert trial["lost"] == parties - 1, trial
        else:
            assert (trial["lost"], trial["anomalies"]) == (0, []), trial
    # The window adds at most one timeout per safe withdrawal (they queue on the lock or retry
    # one by one): 4 strategies x 2 trials x 4 x 0.3 s over the control, which may vary by as
    # much again from one run to the next on a busy machine.
    assert elapsed < 2 * without_window + 4 * trials * parties * SAFE_TIMEOUT + 5
    assert "Traceback" not in race_server.log()


def test_a_fixed_window_needs_no_arming(race_lab):
    command(race_lab, "reset_balances", "--no-input")
    # A window closes as soon as its 3 have read: the long timeout only spares a slow machine.
    fixed_window = {"RACE_WINDOW": "3", "RACE_WINDOW_TIMEOUT": "5", "DJANGO_DEBUG": "1"}
    with race_lab.serve(workers=3, env=fixed_window) as server:
        burst(race_lab, server, "-n", "9", "-c", "3")

    account = audit(race_lab)
    assert (account["ledger_rows"], account["lost_withdrawals"]) == (9, 6)  # 3 bursts, 2 lost in each


def test_race_mode_is_refused_with_debug_off(race_lab):
    with pytest.raises(LabError, match="refused with DEBUG off"):  # noqa: SIM117
        with race_lab.serve(workers=1, env={"RACE_WINDOW": "armed"}):
            pass  # pragma: no cover


def test_arming_a_server_that_is_not_in_race_mode_is_an_error(lab_env):
    with lab_env.serve(workers=2) as server:
        result = burst(lab_env, server, "-n", "2", "-c", "2", "--race-window", check=False)

    assert result.returncode == 1
    assert "the server held no request: restart it with RACE_WINDOW=armed" in result.stderr
    # What was sent is still recorded, so the audit reconciles.
    assert audit(lab_env)["client"]["ok"] == 2


def test_the_server_holds_requests_where_the_client_says(lab_env, race_server):
    # At the first write, after naive's read: 2 naive withdrawals still race, but luck decides,
    # so only the barrier's count is exact. At a table no withdrawal touches: nothing is held.
    held = burst(
        lab_env,
        race_server,
        "-n",
        "2",
        "-c",
        "2",
        "--race-window",
        "--race-window-at",
        "accounts_account:write",
    )
    assert "held 2" in held.stdout, held.stdout

    result = burst(
        lab_env,
        race_server,
        "-n",
        "2",
        "-c",
        "2",
        "--race-window",
        "--race-window-at",
        "auth_group",
        check=False,
    )
    assert result.returncode == 1
    assert "check that the park points (--race-window-at" in result.stderr


# The account's first write. atomic_update and optimistic send it as one statement that commits
# by itself on PostgreSQL, and as one batch from START TRANSACTION to COMMIT on MariaDB: a request
# is held there after its COMMIT. On SQLite the same write runs inside transaction.atomic(), which
# holds the writer queue: a request is held there before its COMMIT, and the others queue behind it.
AT_THE_WRITE = "accounts_account:write"
# The held requests of the order test wait for the test; this only bounds a test that fails to.
HOLD_TIMEOUT = 10


def writes_inside_a_transaction(lab_env) -> bool:
    """SQLite, where the strategies' write is not a statement, or a batch, that commits by itself."""
    return lab_env.database_url.startswith("sqlite")


@pytest.mark.parametrize("strategy", ["atomic_update", "optimistic"])
def test_a_write_park_point_holds_each_withdrawal_once_and_loses_none(lab_env, race_server, strategy):
    parties = 3
    result = burst(
        lab_env, race_server, "--strategy", strategy, "-n", str(parties), "-c", str(parties),
        "--race-window", "--race-window-at", AT_THE_WRITE, "--race-window-timeout", NAIVE_TIMEOUT,
    )  # fmt: skip

    # Where the write commits itself, committed, then held: nothing keeps the others from their
    # write, and all meet at once (optimistic's losers too: a write that changed nothing reaches
    # the point all the same). On SQLite the one held keeps the writer queue the others wait in
    # at BEGIN: counted as arrived, they close its window at once, and go straight on when they
    # get there. Either way one window, none closed by the timeout.
    arrived, serialized = (0, 1) if writes_inside_a_transaction(lab_env) else (1, 0)
    held = (
        f"held {parties} request(s) in 1 window(s): {arrived} closed by every party arriving, "
        f"{serialized} serialized by a lock, 0 by the timeout."
    )
    assert held in result.stdout, result.stdout
    (run,) = recorded_runs(result.stdout)
    assert run["ok"] + run["refused"] == parties and run["indeterminate"] == 0, run
    account = audit(lab_env)
    assert (account["ledger_rows"], account["lost_withdrawals"], account["verdict"]) == (run["ok"], 0, "OK")


@pytest.mark.parametrize("strategy", ["atomic_update", "optimistic"])
def test_a_write_park_point_holds_after_the_commit_where_the_write_commits_itself(
    lab_env, race_server, strategy
):
    """While the window holds them, the account already shows the withdrawals' writes and ledger
    rows on PostgreSQL and MariaDB. On SQLite it shows nothing of the one held: one, since the one
    held keeps the writer queue."""
    in_transaction = writes_inside_a_transaction(lab_env)
    requests = 1 if in_transaction else 3
    # One party more than there are requests: the window stays open until the test closes it.
    with (
        armed_window(lab_env, parties=requests + 1, timeout=HOLD_TIMEOUT, at=AT_THE_WRITE) as window,
        ThreadPoolExecutor(max_workers=1) as pool,
    ):
        fired = pool.submit(
            burst, lab_env, race_server, "--strategy", strategy, "-n", str(requests), "-c", str(requests)
        )
        held = wait_for(lambda: (state := window.state()).held == requests and state)
        window.release()
        result = fired.result(timeout=HANG_SECONDS)

    assert held.windows == 0  # still held, every one, when the account was read
    written = OPENING - held.balance
    if in_transaction:
        assert (written, held.ledger_rows) == (0, 0)
    elif strategy == "atomic_update":
        assert (written, held.ledger_rows) == (requests, requests)
    else:
        # Those whose version was still the row's wrote, the first at least, each with its row.
        assert 1 <= written == held.ledger_rows <= requests, held
    (run,) = recorded_runs(result.stdout)
    assert run["ok"] + run["refused"] == requests and run["indeterminate"] == 0, run
    account = audit(lab_env)
    assert (account["ledger_rows"], account["lost_withdrawals"], account["verdict"]) == (run["ok"], 0, "OK")


def wait_for(condition, *, timeout: float = HANG_SECONDS):
    """``condition()``'s first true value, polled until ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return value
