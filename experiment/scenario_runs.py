"""Runs of a catalogue scenario: reset its data, fire, audit its invariant; once per strategy,
or as trials per concurrency level, summarised with hit rates and Wilson intervals."""

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from itertools import product

from django.db import connection

from experiment.plan import RunPlan
from experiment.requests import strategy_of, strategy_request
from experiment.runs import arming, logged_in_for
from experiment.stats import mean_or_none, rate, wilson_interval
from racelab.loadgen.drivers import DriverName, LoadResult, save_load_history
from racelab.loadgen.errors import LoadError
from racelab.loadgen.outcomes import Outcome
from racelab.loadgen.target import LoadRequest
from racelab.racewindow.barrier import BarrierStats
from racelab.runs.arming import check_barrier_used
from scenarios.audit import ScenarioAudit
from scenarios.definition import Scenario


@dataclass(frozen=True, kw_only=True)
class ScenarioRun:
    """One run: what the driver saw, the invariant's audit right after, what the barrier held."""

    level: int
    load: LoadResult
    audit: ScenarioAudit
    barrier: BarrierStats | None

    @property
    def violations(self) -> int:
        # A 5xx breaks every scenario's promise: the loser of a race gets a 4xx with a reason.
        return sum(violation.count for violation in self.audit.violations) + self.load.server_errors


@dataclass(frozen=True, kw_only=True)
class ScenarioSummary:
    """One driver, strategy and level over its trials."""

    driver: DriverName
    strategy: str
    concurrency: int
    trials: int
    hits: int
    hit_rate: float
    hit_rate_low: float
    hit_rate_high: float
    mean_violations: float | None
    # Naive under an armed window: trials whose violations are exactly the scenario's formula.
    exact: int | None
    server_errors: int


def scenario_posts(scenario: Scenario, *, strategy: str, concurrency: int) -> tuple[LoadRequest, ...]:
    return tuple(
        strategy_request(
            path=scenario.path, strategy=strategy, fields=tuple(form.items()), method=scenario.method
        )
        for form in scenario.forms_for(concurrency=concurrency)
    )


def run_scenario(
    *, plan: RunPlan, password: str, on_run: Callable[[ScenarioRun], None] = lambda run: None
) -> list[ScenarioRun]:
    """Every level, trial, driver and strategy in turn (one run each when not in trials), each
    from the scenario's reset data; the drivers log in once."""
    scenario = plan.scenario
    if not scenario.is_seeded():
        raise LoadError(
            f"The {scenario.name} scenario has no data to race for: run "
            f"`manage.py seed_scenario {scenario.name}` first."
        )
    runs = []
    with ExitStack() as stack:
        drivers = [
            stack.enter_context(logged_in_for(plan=plan, name=name, password=password))
            for name in plan.drivers
        ]
        for level in plan.levels:
            with arming(plan=plan, level=level) as barrier:
                for _, driver, strategy in product(range(plan.trials or 1), drivers, plan.strategies):
                    scenario.reset()
                    before = barrier.stats() if barrier is not None else None
                    load = driver.fire(
                        posts=scenario_posts(scenario, strategy=strategy, concurrency=level),
                        requests=level if plan.trials is not None else plan.run_requests,
                        concurrency=level,
                    )
                    held = barrier.stats().since(before) if barrier is not None else None
                    run = ScenarioRun(level=level, load=load, audit=scenario.audit(), barrier=held)
                    if plan.history is not None:  # a single burst run (the plan checks)
                        save_load_history(load, path=plan.history, targets=plan.app_servers)
                    runs.append(run)
                    on_run(run)
                if barrier is not None:
                    ok = sum(
                        run.load.totals[Outcome.OK]
                        for run in runs
                        if run.level == level and strategy_of(run.load) not in scenario.never_held
                    )
                    check_barrier_used(barrier.stats(), ok=ok)
    return runs


def summarise(runs: list[ScenarioRun], *, scenario: Scenario, race_window: bool) -> list[ScenarioSummary]:
    groups: dict[tuple, list[ScenarioRun]] = {}
    for run in runs:
        groups.setdefault((run.load.driver, strategy_of(run.load), run.level), []).append(run)
    summaries = []
    for (driver, strategy, level), group in groups.items():
        hits = sum(1 for run in group if run.violations)
        low, high = wilson_interval(successes=hits, trials=len(group))
        # SQLite runs some scenarios' transactions one at a time: nothing to predict there.
        predicted = (
            race_window and strategy == scenario.strategies[0] and connection.vendor in scenario.reproduces_on
        )
        exact = sum(1 for run in group if run.violations == scenario.naive_violations(level, run.audit))
        summaries.append(
            ScenarioSummary(
                driver=driver,
                strategy=strategy,
                concurrency=level,
                trials=len(group),
                hits=hits,
                hit_rate=rate(hits=hits, trials=len(group)),
                hit_rate_low=low,
                hit_rate_high=high,
                mean_violations=mean_or_none(run.violations for run in group),
                exact=exact if predicted else None,
                server_errors=sum(run.load.server_errors for run in group),
            )
        )
    return summaries
