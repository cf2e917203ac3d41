"""The burst driver end to end: real Gunicorn, Python's own login, bursts, history, the audit."""

import json
import struct
import zlib
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest

from accounts.withdrawals import SAFE_STRATEGIES
from labserver.lab import Lab, lab
from tests.helpers import LAB_PASSWORD, LAB_USER, audit, seed, splatter
from tests.json_schema import valid
from tests.lab_database import command, dumped

pytestmark = pytest.mark.e2e

WORKERS = 5
REQUESTS = 60
BURST = 5
# The server stamps a request once its body is whole; allow the client this long to note that
# it sent the last byte after the server had already seen it.
CLOCK_SLACK_SECONDS = 0.005
SECOND_USER = f"{LAB_USER}-2"


@pytest.fixture(scope="module")
def burst_lab(tmp_path_factory, lab_template):
    """One lab for the module: a migrated database, two seeded users, a Gunicorn on it."""
    with lab(workdir=tmp_path_factory.mktemp("burst-lab"), template=lab_template) as prepared:
        for username in (LAB_USER, SECOND_USER):
            seed(prepared, username=username)
        yield prepared


@pytest.fixture(scope="module")
def burst_server(burst_lab):
    with burst_lab.serve(workers=WORKERS) as server:
        yield server


@pytest.fixture
def lab_env(burst_lab):
    """The module's lab, its accounts reset to their opening balance, ledgers and runs cleared."""
    command(burst_lab, "reset_balances", "--no-input")
    return burst_lab


def dump(lab_env: Lab, model: str) -> list[dict]:
    return [row["fields"] for row in dumped(lab_env, model)]


def test_every_request_is_answered_and_the_history_matches_the_ledger(lab_env, burst_server, tmp_path):
    history_path = tmp_path / "history.json"
    result = splatter(
        lab_env, burst_server, "--driver", "burst", "-n", str(REQUESTS), "-c", str(BURST),
        "--history", str(history_path),
    )  # fmt: skip

    history = json.loads(history_path.read_text())
    entries = history["history"]
    assert history["outcomes"] == {"ok": REQUESTS, "refused": 0, "indeterminate": 0}
    assert [entry["status"] for entry in entries] == [200] * REQUESTS
    assert Counter(entry["burst"] for entry in entries) == {
        burst: BURST for burst in range(REQUESTS // BURST)
    }
    ledger = dump(lab_env, "accounts.transaction")
    # Each answer is the balance its withdrawal wrote: the same multiset as the ledger's, lost
    # updates and their duplicate balances included.
    assert Counter(row["balance"] for row in ledger) == Counter(int(entry["answer"]) for entry in entries)
    # reset_balances took the earlier ones out of the checker's count
    (run,) = [run for run in dump(lab_env, "accounts.run") if run["since_reset"]]
    assert (run["driver"], run["requests"], run["ok"]) == ("burst", REQUESTS, REQUESTS)
    assert (run["refused"], run["indeterminate"]) == (0, 0)
    account = audit(lab_env, username=LAB_USER)
    assert account["ledger_rows"] == account["client"]["ok"] == REQUESTS
    assert "phantom rows" not in account["verdict"] and "missing rows" not in account["verdict"]
    assert f"on account {account['account_id']}: {REQUESTS} ok, 0 refused, 0 indeterminate" in result.stdout
    assert "Traceback" not in burst_server.log()


def test_the_server_sees_each_request_only_when_its_burst_is_released(lab_env, burst_server, tmp_path):
    history_path = tmp_path / "history.json"
    splatter(
        lab_env, burst_server, "--driver", "burst", "-n", "30", "-c", "10", "--history", str(history_path)
    )

    entries = json.loads(history_path.read_text())["history"]
    windows = {}
    for entry in entries:
        first, last = windows.get(entry["burst"], (entry["sent_at"], entry["received_at"]))
        windows[entry["burst"]] = (min(first, entry["sent_at"]), max(last, entry["received_at"]))
    for row in dump(lab_env, "accounts.transaction"):
        started = datetime.fromisoformat(row["request_started_at"].replace("Z", "+00:00")).timestamp()
        # Primed ~0.1 s before the release: a stamp taken when the headers came in would fall
        # outside every burst's window.
        assert any(first - CLOCK_SLACK_SECONDS <= started <= last for first, last in windows.values()), (
            f"request stamped at {started} outside every burst: {windows}"
        )


def test_several_users_each_get_their_own_account_and_client_run(lab_env, burst_server):
    splatter(lab_env, burst_server, "--driver", "burst", "-n", "20", "-c", "4", "--users", "2")

    for username in (LAB_USER, SECOND_USER):
        account = audit(lab_env, username=username)
        assert account["client"]["ok"] == account["ledger_rows"] == 10
        assert account["client"]["runs"] == 1


def test_without_ab_the_lab_falls_back_to_the_burst_driver_and_says_so(lab_env, burst_server, tmp_path):
    result = lab_env.manage(
        "splatter", "--url", burst_server.url, "--username", LAB_USER, "--no-input", "-n", "4", "-c", "2",
        env={"BANK_PASSWORD": LAB_PASSWORD, "PATH": str(tmp_path)},  # a PATH with no ab on it
    )  # fmt: skip

    assert "ab is not installed" in result.stderr
    assert "using the built-in burst driver instead" in result.stderr
    assert "bursts x size" in result.stdout
    assert audit(lab_env, username=LAB_USER)["client"]["ok"] == 4


# Hit rates, intervals and a plot: statistics of the drivers, not of the database.
@pytest.mark.database_independent
@pytest.mark.usefixtures("needs_ab")
def test_trials_compare_drivers_as_json_and_as_a_plot(lab_env, burst_server, tmp_path):
    plot = tmp_path / "sweep.png"
    result = splatter(
        lab_env, burst_server, "--driver", "ab,burst", "--trials", "3", "-c", "2,4",
        "--format", "json", "--plot", str(plot),
    )  # fmt: skip

    report = valid(json.loads(result.stdout), kind="splatter-trials")
    assert [(s["driver"], s["concurrency"], s["trials"]) for s in report["summaries"]] == [
        ("ab", 2, 3),
        ("burst", 2, 3),
        ("ab", 4, 3),
        ("burst", 4, 3),
    ]
    assert len(report["runs"]) == 12
    for trial in report["runs"]:
        assert trial["ok"] == trial["concurrency"] and trial["indeterminate"] == 0
        # A trial that lost a withdrawal is a hit, and says what it lost.
        assert not trial["lost"] or (trial["hit"] and "lost withdrawals" in trial["anomalies"]), trial
    for summary in report["summaries"]:
        trials = [
            trial
            for trial in report["runs"]
            if (trial["driver"], trial["concurrency"]) == (summary["driver"], summary["concurrency"])
        ]
        assert summary["hits"] == sum(trial["hit"] for trial in trials)
        assert summary["hit_rate"] == summary["hits"] / summary["trials"]
        assert 0 <= summary["hit_rate_low"] <= summary["hit_rate"] <= summary["hit_rate_high"] <= 1
        assert summary["median_spread_ms"] is not None and summary["server_errors"] == 0
    width, height = png_size(plot)
    assert width > 600 and height > 300


LOW_USER = f"{LAB_USER}-low"


def test_a_trial_is_a_hit_exactly_when_its_audit_finds_an_anomaly(lab_env, burst_server):
    # Two withdrawals of 1 at once from a balance of 1 with a minimum of 0: naive lets both
    # through whatever their timing (both read 1 and one is lost, or the second reads 0 and its
    # off-by-one guard overdraws), so every naive trial is a hit; a safe strategy lets one
    # through and refuses the other, so none of its trials is.
    lab_env.manage(
        "seed_account", "--username", LOW_USER, "--balance", "1", "--minimum", "0", "--no-input",
        env={"BANK_PASSWORD": LAB_PASSWORD},
    )  # fmt: skip
    trials = 3

    result = splatter(
        lab_env, burst_server, "--driver", "burst", "--trials", str(trials), "-c", "2", "--strategy", "all",
        "--format", "json", username=LOW_USER,
    )  # fmt: skip

    report = valid(json.loads(result.stdout), kind="splatter-trials")
    assert len(report["runs"]) == trials * 5
    for trial in report["runs"]:
        if trial["strategy"] == "naive":
            assert (trial["ok"], trial["refused"], trial["hit"]) == (2, 0, True), trial
            # Lost (both read 1), or not lost but overdrawn (the second read 0).
            overdrawn = trial["lost"] == 0 and "overdrafts" in trial["anomalies"]
            assert trial["lost"] == 1 or overdrawn, trial
        else:
            assert (trial["ok"], trial["refused"], trial["lost"]) == (1, 1, 0), trial
            assert (trial["hit"], trial["anomalies"]) == (False, []), trial
    hits = {summary["strategy"]: (summary["hits"], summary["hit_rate"]) for summary in report["summaries"]}
    assert hits == {"naive": (trials, 1.0), **{strategy: (0, 0.0) for strategy in SAFE_STRATEGIES}}


# The table of a sweep; the strategies are proven on each database elsewhere.
@pytest.mark.database_independent
def test_trials_print_one_row_per_driver_strategy_and_level(lab_env, burst_server):
    result = splatter(
        lab_env, burst_server, "--driver", "burst", "--trials", "2", "-c", "2,3", "--strategy", "all"
    )

    rows = [line.split() for line in result.stdout.splitlines() if line.startswith("burst ")]
    assert [(row[1], row[2], row[3]) for row in rows] == [
        (strategy, level, "2")
        for level in ("2", "3")
        for strategy in ("naive", "atomic_update", "locking", "optimistic", "serializable")
    ]
    assert all(row[4] == "0" for row in rows if row[1] != "naive")  # no safe strategy ever hit


def png_size(path: Path) -> tuple[int, int]:
    """Width and height of a PNG, after checking its signature, chunk CRCs and IEND."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    position, chunks = 8, []
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        payload = data[position + 8 : position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length : position + 12 + length])
        assert zlib.crc32(kind + payload) == crc, f"bad CRC in {kind!r} chunk"
        chunks.append((kind, payload))
        position += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    assert any(kind == b"IDAT" for kind, _ in chunks)
    return struct.unpack(">II", chunks[0][1][:8])
