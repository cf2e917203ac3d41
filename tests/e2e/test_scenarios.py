"""The scenario catalogue end to end: a real Gunicorn, real logins, ab and the burst driver,
the race held open at the SQL level, and each scenario's invariant checked from its rows."""

import json

import pytest

from labserver.lab import lab
from scenarios.vouchers.scenario import VOUCHER
from tests.helpers import require_ab, seed, splatter

pytestmark = pytest.mark.e2e

WORKERS = 6
RACE_MODE = {"RACE_WINDOW": "armed", "DJANGO_DEBUG": "1"}
HANG_SECONDS = 300


@pytest.fixture(scope="module")
def scenario_lab(tmp_path_factory):
    with lab(workdir=tmp_path_factory.mktemp("scenario-lab")) as prepared:
        seed(prepared)
        yield prepared


@pytest.fixture(scope="module")
def race_server(scenario_lab):
    with scenario_lab.serve(workers=WORKERS, env=RACE_MODE) as server:
        yield server


def run(lab_env, server, *args: str) -> dict:
    result = splatter(
        lab_env, server, "--scenario", "voucher", "--format", "json", *args, timeout=HANG_SECONDS
    )
    return json.loads(result.stdout)


def test_naive_uses_a_single_use_voucher_once_per_held_request_in_every_trial(scenario_lab, race_server):
    scenario_lab.manage("seed_scenario", "voucher", "--limit", "1")
    report = run(
        scenario_lab, race_server, "--driver", "burst", "--trials", "20", "-c", "2,5",
        "--race-window", "--race-window-timeout", "3",
    )  # fmt: skip

    summaries = {summary["level"]: summary for summary in report["summaries"]}
    for level in (2, 5):
        summary = summaries[level]
        # K requests all read "no use taken" and all use it: K-1 uses beyond the limit of 1.
        assert (summary["exact"], summary["hits"], summary["server_errors"]) == (20, 20, 0), summary
    for trial in report["runs"]:
        assert (trial["ok"], trial["violations"]) == (trial["concurrency"], trial["concurrency"] - 1), trial
        assert trial["race_window"] == {"held": trial["concurrency"], "windows": 1, "timeouts": 0}


def test_safe_strategies_use_it_once_and_refuse_the_rest_under_the_held_race(scenario_lab, race_server):
    scenario_lab.manage("seed_scenario", "voucher", "--limit", "1")
    report = run(
        scenario_lab, race_server, "--driver", "burst", "--trials", "3", "-c", "4", "--strategy", "all",
        "--race-window", "--race-window-timeout", "0.3",
    )  # fmt: skip

    for trial in report["runs"]:
        if trial["strategy"] == "naive":
            assert trial["violations"] == 3, trial
            continue
        # One use, three clear refusals (409), nothing beyond the limit, nothing left hanging.
        assert (trial["ok"], trial["fail"], trial["indeterminate"]) == (1, 3, 0), trial
        assert (trial["violations"], trial["server_errors"]) == (0, 0), trial


def test_a_strategy_race_mode_never_holds_is_not_an_error(scenario_lab, race_server):
    # conditional_update writes before it reads the usages: nothing to hold, all go through.
    scenario_lab.manage("seed_scenario", "voucher", "--limit", "1")
    report = run(
        scenario_lab, race_server, "--driver", "burst", "-n", "3", "-c", "3",
        "--strategy", "conditional_update", "--race-window",
    )  # fmt: skip

    (trial,) = report["runs"]
    assert (trial["ok"], trial["fail"], trial["violations"]) == (1, 2, 0), trial
    assert trial["race_window"]["held"] == 0


@pytest.mark.parametrize("strategy", VOUCHER.strategies[1:])
def test_each_safe_strategy_holds_under_ab_load(scenario_lab, strategy):
    require_ab()
    # 1,000 requests for 500 uses: half succeed, half are refused, all at -c 50.
    scenario_lab.manage("seed_scenario", "voucher", "--limit", "500")
    with scenario_lab.serve(workers=4) as server:
        report = run(scenario_lab, server, "--driver", "ab", "-n", "1000", "-c", "50", "--strategy", strategy)

    (trial,) = report["runs"]
    assert (trial["ok"], trial["fail"], trial["indeterminate"]) == (500, 500, 0), trial
    assert (trial["violations"], trial["server_errors"]) == (0, 0), trial
    assert trial["audit"]["figures"]["usage rows"] == 500
