"""Every strategy against a real Gunicorn with real ab, on the database DATABASE_URL names."""

import re

import pytest

from accounts.withdrawals import GAVE_UP, SAFE_STRATEGIES, Strategy
from tests.helpers import audit, recorded_runs, seed, splatter
from tests.lab_database import command

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("needs_ab")]

HEAVY_REQUESTS = 1000
HEAVY_CONCURRENCY = 50
# Strategies that never give up: they queue on a lock (or do the check and the write in one
# UPDATE), so at a large balance they refuse nothing, however heavy the load.
QUEUEING_STRATEGIES = (Strategy.ATOMIC_UPDATE, Strategy.LOCKING)


@pytest.mark.parametrize("strategy", SAFE_STRATEGIES)
def test_safe_strategy_loses_nothing_under_heavy_load(lab_env, lab_server, strategy):
    splatter(
        lab_env, lab_server, "--driver", "ab", "--strategy", strategy,
        "-n", str(HEAVY_REQUESTS), "-c", str(HEAVY_CONCURRENCY),
    )  # fmt: skip

    account = audit(lab_env)
    client = account["client"]
    assert client["indeterminate"] == 0, client  # no 5xx, no dropped connection
    assert client["ok"] + client["refused"] == HEAVY_REQUESTS, client
    if strategy in QUEUEING_STRATEGIES:
        assert client["refused"] == 0, client
    else:
        # optimistic and serializable may answer 409 once their bounded retries run out; that
        # is a clean refusal, but it must stay rare.
        assert client["refused"] <= HEAVY_REQUESTS // 100, client
    assert account["ledger_rows"] == client["ok"]
    assert account["final"] == account["opening"] - client["ok"]
    assert account["lost_withdrawals"] == 0
    assert account["lost_updates"] == 0
    assert account["overdrafts"] == 0
    assert account["anomalies"] == []
    assert "Traceback" not in lab_server.log()


# Funds for 10 withdrawals of 1 above the minimum, and five times as many asking at once.
FUNDED_OPENING = 15
FUNDED_MINIMUM = 5
FUNDED_WITHDRAWALS = FUNDED_OPENING - FUNDED_MINIMUM
CROWD = 50


@pytest.mark.parametrize("strategy", SAFE_STRATEGIES)
def test_safe_strategy_lets_exactly_the_funds_through(lab_env, lab_server, strategy):
    seed(lab_env, balance=FUNDED_OPENING, minimum=FUNDED_MINIMUM)
    command(lab_env, "reset_balances", "--no-input")

    result = splatter(
        lab_env, lab_server, "--driver", "ab", "--strategy", strategy, "-n", str(CROWD), "-c", str(CROWD)
    )

    refused = CROWD - FUNDED_WITHDRAWALS
    assert re.search(rf"^non-2xx\s+{refused} \({refused}x409\)$", result.stdout, re.MULTILINE), result.stdout
    assert [(run["ok"], run["refused"], run["indeterminate"]) for run in recorded_runs(result.stdout)] == [
        (FUNDED_WITHDRAWALS, refused, 0)
    ]
    account = audit(lab_env)
    assert (account["client"]["ok"], account["client"]["refused"]) == (FUNDED_WITHDRAWALS, refused)
    assert account["ledger_rows"] == FUNDED_WITHDRAWALS
    assert account["final"] == FUNDED_MINIMUM
    assert account["anomalies"] == []


# One request at a time: nothing races, so what naive does wrong here is its guard alone.
SEQUENTIAL_REQUESTS = 20


def test_naive_guard_lets_one_withdrawal_past_the_minimum(lab_env, lab_server):
    seed(lab_env, balance=FUNDED_OPENING, minimum=FUNDED_MINIMUM)
    command(lab_env, "reset_balances", "--no-input")

    splatter(lab_env, lab_server, "--driver", "ab", "-n", str(SEQUENTIAL_REQUESTS), "-c", "1")

    account = audit(lab_env)
    # The blog's guard is `current >= minimum`: the withdrawal that finds the balance at the
    # minimum passes it too, and takes the balance one below; the ones after it are refused.
    through = FUNDED_WITHDRAWALS + 1
    assert (account["client"]["ok"], account["client"]["refused"]) == (through, SEQUENTIAL_REQUESTS - through)
    assert account["final"] == FUNDED_MINIMUM - 1
    assert (account["ledger_rows"], account["lost_withdrawals"], account["lost_updates"]) == (through, 0, 0)
    assert account["overdrafts"] == 1
    (overdraft,) = account["anomalies"]
    assert (overdraft["kind"], overdraft["count"]) == ("overdrafts", 1)
    assert overdraft["worst"] == overdraft["first"]
    assert (overdraft["worst"]["balance_before"], overdraft["worst"]["balance"]) == (
        FUNDED_MINIMUM,
        FUNDED_MINIMUM - 1,
    )
    assert account["verdict"] == "ANOMALIES: overdrafts"


# The matrix runs on a server in deterministic race mode (docs/race-mode.md): each withdrawal
# waits after its read until MATRIX_CONCURRENCY have read, or RACE_TIMEOUT has passed since the
# last one came. Concurrent naive withdrawals then lose updates whatever the machine's speed,
# so its row is a control that cannot come out clean by luck; the safe strategies must still
# lose nothing.
MATRIX_REQUESTS = 40
MATRIX_CONCURRENCY = 4
RACE_TIMEOUT = "0.05"
MATRIX_COLUMNS = ("ok", "lost", "lost_updates", "overdrafts", "server_errors")


def test_strategy_matrix_shows_naive_losing_and_the_safe_strategies_not(lab_env):
    seed(lab_env)
    race_mode = {
        "RACE_WINDOW": str(MATRIX_CONCURRENCY), "RACE_WINDOW_TIMEOUT": RACE_TIMEOUT, "DJANGO_DEBUG": "1"
    }  # fmt: skip
    with lab_env.serve(workers=MATRIX_CONCURRENCY, env=race_mode) as server:
        result = splatter(
            lab_env, server, "--driver", "ab", "--strategy", "all",
            "-n", str(MATRIX_REQUESTS), "-c", str(MATRIX_CONCURRENCY),
        )  # fmt: skip
        log = server.log()
    assert "Traceback" not in log

    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    rows = {
        strategy: dict(zip(MATRIX_COLUMNS, map(int, lines[strategy].split()[1:6]), strict=True))
        for strategy in Strategy
    }
    naive = rows[Strategy.NAIVE]
    assert naive["ok"] == MATRIX_REQUESTS, lines[Strategy.NAIVE]
    assert naive["lost"] > 0 and naive["lost_updates"] > 0, lines[Strategy.NAIVE]
    assert "lost withdrawals" in lines[Strategy.NAIVE]
    for strategy in SAFE_STRATEGIES:
        row = rows[strategy]
        assert (row["lost"], row["lost_updates"], row["overdrafts"], row["server_errors"]) == (0, 0, 0, 0), (
            lines[strategy]
        )
        assert lines[strategy].rstrip().endswith("OK"), lines[strategy]
        # None is refused: the balance is large, and no retrying strategy gives up. A request is
        # held once, at its first read (racelab/racewindow/statements.py); the held ones race, one wins and
        # the others retry unheld, the first retry at once, against at most the other
        # MATRIX_CONCURRENCY - 1 in flight. Each refusal takes a rival's commit within one attempt,
        # and the pauses between attempts grow, so a request is refused a few times at most, never
        # the MAX_ATTEMPTS (20) in a row that would make it give up.
        assert row["ok"] == MATRIX_REQUESTS, lines[strategy]
    assert GAVE_UP not in log, log
