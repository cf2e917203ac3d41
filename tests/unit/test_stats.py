"""The statistics helpers and the trial summaries, on inputs whose answers are known."""

import pytest

from experiment.stats import first_gap, mean_or_none, median_or_none, rate, spread, wilson_interval
from experiment.summaries import TrialOutcome, summarise_trials

pytestmark = pytest.mark.database_independent


@pytest.mark.parametrize(
    ("successes", "trials", "low", "high"),
    [
        # Wikipedia's worked example ("Binomial proportion confidence interval", Wilson score).
        (81, 263, 0.2553, 0.3662),
        # Rule-of-three territory: none in 10 still allows up to ~28%.
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        (5, 10, 0.2366, 0.7634),
        (1, 100, 0.0018, 0.0545),
        (0, 1, 0.0, 0.7935),
    ],
)
def test_wilson_interval_matches_known_values(successes, trials, low, high):
    lower, upper = wilson_interval(successes=successes, trials=trials)

    assert lower == pytest.approx(low, abs=5e-5)
    assert upper == pytest.approx(high, abs=5e-5)


def test_wilson_interval_is_exact_at_the_edges():
    assert wilson_interval(successes=0, trials=50)[0] == 0.0
    assert wilson_interval(successes=50, trials=50)[1] == 1.0


def test_wilson_interval_narrows_with_more_trials_and_widens_with_confidence():
    small = wilson_interval(successes=5, trials=10)
    large = wilson_interval(successes=500, trials=1000)
    strict = wilson_interval(successes=5, trials=10, confidence=0.99)

    assert large[1] - large[0] < small[1] - small[0]
    assert strict[0] < small[0] and strict[1] > small[1]


@pytest.mark.parametrize(
    ("successes", "trials", "confidence", "message"),
    [
        (1, 0, 0.95, "trials must be at least 1"),
        (-1, 10, 0.95, "successes must be from 0 to trials"),
        (11, 10, 0.95, "successes must be from 0 to trials"),
        (1, 10, 1.0, "confidence must be between 0 and 1"),
    ],
)
def test_wilson_interval_refuses_nonsense(successes, trials, confidence, message):
    with pytest.raises(ValueError, match=message):
        wilson_interval(successes=successes, trials=trials, confidence=confidence)


def test_rate_mean_and_median():
    assert rate(hits=3, trials=4) == 0.75
    assert mean_or_none([1, 2, 3, 6]) == 3
    assert median_or_none([5, 1, 3]) == 3
    assert median_or_none([4, 1, 3, 2]) == 2.5
    assert mean_or_none([]) is None
    assert median_or_none(iter([])) is None
    with pytest.raises(ValueError, match="^trials must be at least 1, not 0$"):
        rate(hits=0, trials=0)


def test_spread_and_first_gap_ignore_order():
    arrivals = [10.004, 10.000, 10.0015, 10.020]

    assert spread(arrivals) == pytest.approx(0.020)
    assert first_gap(arrivals) == pytest.approx(0.0015)
    assert spread([1.0]) is None
    assert first_gap([]) is None


def _outcome(
    *, driver="burst", strategy="naive", level=2, trial=1, ok=2, lost=0, server_errors=0, spread_ms=1.0
):
    return TrialOutcome(
        driver=driver,
        strategy=strategy,
        concurrency=level,
        trial=trial,
        ok=ok,
        refused=0,
        indeterminate=server_errors,
        server_errors=server_errors,
        lost=lost,
        anomalies=["lost withdrawals"] if lost else [],
        spread_ms=spread_ms,
        first_gap_ms=spread_ms,
    )


def test_summarize_groups_by_driver_strategy_and_level():
    outcomes = [
        _outcome(trial=1, lost=1, spread_ms=0.2),
        _outcome(trial=2, lost=0, spread_ms=0.4),
        _outcome(trial=3, lost=1, spread_ms=0.9, server_errors=1),
        _outcome(trial=4, lost=0, spread_ms=None),
        _outcome(driver="ab", trial=1, lost=0, spread_ms=30.0),
        _outcome(level=5, ok=5, lost=4, spread_ms=2.0),
    ]

    burst_pairs, ab_pairs, burst_fives = summarise_trials(outcomes)

    assert (burst_pairs.driver, burst_pairs.concurrency, burst_pairs.trials) == ("burst", 2, 4)
    assert burst_pairs.hits == 2
    assert burst_pairs.hit_rate == 0.5
    assert (burst_pairs.hit_rate_low, burst_pairs.hit_rate_high) == wilson_interval(successes=2, trials=4)
    assert burst_pairs.mean_lost_fraction == pytest.approx((0.5 + 0 + 0.5 + 0) / 4)
    assert burst_pairs.median_spread_ms == pytest.approx(0.4)  # the trial without a spread is left out
    assert burst_pairs.server_errors == 1
    assert (ab_pairs.driver, ab_pairs.hits, ab_pairs.hit_rate) == ("ab", 0, 0.0)
    assert burst_fives.mean_lost_fraction == pytest.approx(4 / 5)


def test_lost_fraction_of_a_trial_with_nothing_acknowledged_is_zero():
    assert _outcome(ok=0, lost=0).lost_fraction == 0.0
