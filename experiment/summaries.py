"""What the runs of one driver, strategy and level add up to: hit rates with Wilson intervals,
and each race's own measure of how badly it broke (the withdrawal's lost fraction and arrival
spreads, a scenario's violations against its prediction)."""

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from django.db import connection

from experiment.race_runs import WithdrawalRecord
from experiment.stats import first_gap, hit_figures, mean_or_none, median_or_none, spread
from racelab.loadgen.locust.result import LocustRun
from racelab.loadgen.outcomes import Outcome
from racelab.racewindow.barrier import BarrierStats
from racelab.runs.pipeline import RaceRun, RaceRuns
from scenarios.audit import ScenarioAudit
from scenarios.definition import Scenario

MILLISECONDS = 1_000


@dataclass(frozen=True)
class TrialOutcome:
    """One withdrawal trial, as the sweep's JSON lists it."""

    driver: str
    strategy: str
    concurrency: int
    trial: int
    ok: int
    refused: int
    indeterminate: int
    server_errors: int
    lost: int
    anomalies: list[str]
    # Server-side, from the ledger's request_started_at: latest minus earliest arrival, and the
    # gap between the first two. None when fewer than two withdrawals went through.
    spread_ms: float | None
    first_gap_ms: float | None
    # Locust workers the master gave up on during the trial (their requests count indeterminate).
    lost_workers: int = 0

    @property
    def hit(self) -> bool:
        return bool(self.anomalies)

    @property
    def lost_fraction(self) -> float:
        """The share of acknowledged withdrawals that the balance does not show."""
        return self.lost / self.ok if self.ok else 0.0


@dataclass(frozen=True, kw_only=True)
class GroupSummary:
    """The runs of one driver, strategy and level: how many, and how often they broke the race's
    invariant, with the rate's 95% Wilson interval."""

    driver: str
    strategy: str
    concurrency: int
    trials: int
    hits: int
    hit_rate: float
    hit_rate_low: float
    hit_rate_high: float


@dataclass(frozen=True, kw_only=True)
class LevelSummary(GroupSummary):
    """The withdrawal's trials: how much of what the client was told the balance lost, and how
    far apart the withdrawals arrived."""

    mean_lost_fraction: float
    median_spread_ms: float | None
    median_first_gap_ms: float | None
    server_errors: int


@dataclass(frozen=True, kw_only=True)
class ScenarioSummary(GroupSummary):
    mean_violations: float | None
    # Naive under an armed window: trials whose violations are exactly the scenario's formula.
    exact: int | None
    server_errors: int


@dataclass(frozen=True)
class SweepReport:
    summaries: list[LevelSummary]
    outcomes: list[TrialOutcome]
    # Per concurrency level, when the race window was armed: what its barriers saw.
    barriers: dict[int, BarrierStats] = field(default_factory=dict)


def trial_outcome(run: RaceRun[WithdrawalRecord]) -> TrialOutcome:
    record, totals = run.judgement, run.load.totals
    return TrialOutcome(
        driver=run.load.driver,
        strategy=str(run.fired.strategy),
        concurrency=run.level,
        trial=run.trial,
        ok=totals[Outcome.OK],
        refused=totals[Outcome.REFUSED],
        indeterminate=totals[Outcome.INDETERMINATE],
        server_errors=run.load.server_errors,
        lost=sum(audit.lost_withdrawals for audit in record.audits),
        anomalies=sorted({anomaly.kind for audit in record.audits for anomaly in audit.anomalies}),
        spread_ms=_milliseconds(spread(record.arrivals)),
        first_gap_ms=_milliseconds(first_gap(record.arrivals)),
        lost_workers=len(run.load.report.lost_workers) if isinstance(run.load.report, LocustRun) else 0,
    )


def sweep_report(runs: RaceRuns[WithdrawalRecord]) -> SweepReport:
    outcomes = [trial_outcome(run) for run in runs.runs]
    return SweepReport(summaries=summarise_trials(outcomes), outcomes=outcomes, barriers=runs.barriers)


def summarise_trials(outcomes: Sequence[TrialOutcome]) -> list[LevelSummary]:
    """One summary per driver, strategy and level, in the order they first appear."""
    return [
        LevelSummary(
            driver=driver,
            strategy=strategy,
            concurrency=level,
            trials=len(group),
            **hit_figures(hits=sum(outcome.hit for outcome in group), trials=len(group)),
            mean_lost_fraction=mean_or_none(outcome.lost_fraction for outcome in group) or 0.0,
            median_spread_ms=median_or_none(o.spread_ms for o in group if o.spread_ms is not None),
            median_first_gap_ms=median_or_none(o.first_gap_ms for o in group if o.first_gap_ms is not None),
            server_errors=sum(outcome.server_errors for outcome in group),
        )
        for (driver, strategy, level), group in _groups(
            outcomes, key=lambda o: (o.driver, o.strategy, o.concurrency)
        ).items()
    ]


def scenario_violations(run: RaceRun[ScenarioAudit]) -> int:
    # A 5xx breaks every scenario's promise: the loser of a race gets a 4xx with a reason.
    return sum(violation.count for violation in run.judgement.violations) + run.load.server_errors


def summarise_scenario(
    runs: Sequence[RaceRun[ScenarioAudit]], *, scenario: Scenario, race_window: bool
) -> list[ScenarioSummary]:
    summaries = []
    groups = _groups(runs, key=lambda run: (run.load.driver, run.fired.strategy, run.level))
    for (driver, strategy, level), group in groups.items():
        # SQLite runs some scenarios' transactions one at a time: nothing to predict there.
        predicted = (
            race_window and strategy == scenario.strategies[0] and connection.vendor in scenario.reproduces_on
        )
        exact = sum(
            1 for run in group if scenario_violations(run) == scenario.naive_violations(level, run.judgement)
        )
        summaries.append(
            ScenarioSummary(
                driver=driver,
                strategy=strategy,
                concurrency=level,
                trials=len(group),
                **hit_figures(hits=sum(1 for run in group if scenario_violations(run)), trials=len(group)),
                mean_violations=mean_or_none(scenario_violations(run) for run in group),
                exact=exact if predicted else None,
                server_errors=sum(run.load.server_errors for run in group),
            )
        )
    return summaries


Item = TypeVar("Item")


def _groups(items: Iterable[Item], *, key: Callable[[Item], Hashable]) -> dict[Hashable, list[Item]]:
    """The items by key, each group and the groups in the order they first appear."""
    groups: dict[Hashable, list[Item]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return groups


def _milliseconds(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * MILLISECONDS
