"""Trials and sweeps: fire the same small run again and again on freshly reset accounts, audit
each one, and sum up how often the race window was hit and how badly.

For each concurrency level, each trial and each driver and strategy: reset the accounts, fire
``level`` withdrawals at once (one burst, across Locust's workers for the Locust driver, or
``ab -c level -n level``), record what the client
saw, audit. Drivers and strategies take turns within a trial, so a machine that slows down
during a long sweep weighs on all of them alike.
"""

from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from itertools import product

from accounts.audit import audit_account
from accounts.models import Account, Transaction
from accounts.withdrawals import Strategy
from experiment.plan import RunPlan
from experiment.runs import (
    arming,
    fire_and_record,
    lab_accounts,
    logged_in_for,
    reset_lab_accounts,
)
from experiment.stats import first_gap, mean_or_none, median_or_none, rate, spread, wilson_interval
from racelab.loadgen.drivers import Driver
from racelab.loadgen.locust.result import LocustRun
from racelab.loadgen.outcomes import Outcome
from racelab.racewindow.barrier import BarrierStats
from racelab.runs.arming import check_barrier_used

MILLISECONDS = 1_000


@dataclass(frozen=True)
class TrialOutcome:
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


@dataclass(frozen=True)
class LevelSummary:
    driver: str
    strategy: str
    concurrency: int
    trials: int
    hits: int
    hit_rate: float
    hit_rate_low: float
    hit_rate_high: float
    mean_lost_fraction: float
    median_spread_ms: float | None
    median_first_gap_ms: float | None
    server_errors: int


@dataclass(frozen=True)
class SweepReport:
    summaries: list[LevelSummary]
    outcomes: list[TrialOutcome]
    # Per concurrency level, when the race window was armed: what its barriers saw.
    barriers: dict[int, BarrierStats] = field(default_factory=dict)


def run_sweep(
    *, plan: RunPlan, password: str, on_trial: Callable[[TrialOutcome], None] | None = None
) -> SweepReport:
    """Run ``plan.trials`` trials per level, driver and strategy; see the module docstring.

    With ``plan.race_window`` the race window is armed at each level for that level's share of
    withdrawals per account: a server started with ``RACE_WINDOW=armed`` then makes every
    naive trial lose all but one of them.
    """
    run_trial = partial(_trial, accounts=lab_accounts(plan=plan), plan=plan)
    outcomes: list[TrialOutcome] = []
    barriers: dict[int, BarrierStats] = {}
    with ExitStack() as stack:
        drivers = [
            stack.enter_context(logged_in_for(plan=plan, name=name, password=password))
            for name in plan.drivers
        ]
        for level in plan.levels:
            with arming(plan=plan, level=level) as barrier:
                # Drivers and strategies take turns within each trial (see the module docstring).
                for trial, driver, strategy in product(range(1, plan.trials + 1), drivers, plan.strategies):
                    outcome = run_trial(driver=driver, strategy=strategy, level=level, trial=trial)
                    outcomes.append(outcome)
                    if on_trial is not None:
                        on_trial(outcome)
                stats = barrier.stats() if barrier is not None else None
            if stats is not None:
                level_ok = sum(outcome.ok for outcome in outcomes if outcome.concurrency == level)
                check_barrier_used(stats, ok=level_ok)
                barriers[level] = stats
    return SweepReport(summaries=summarize(outcomes), outcomes=outcomes, barriers=barriers)


def summarize(outcomes: Sequence[TrialOutcome]) -> list[LevelSummary]:
    """One summary per driver, strategy and level, in the order they first appear."""
    groups: dict[tuple[str, str, int], list[TrialOutcome]] = {}
    for outcome in outcomes:
        groups.setdefault((outcome.driver, outcome.strategy, outcome.concurrency), []).append(outcome)
    summaries = []
    for (driver, strategy, level), group in groups.items():
        hits = sum(outcome.hit for outcome in group)
        low, high = wilson_interval(successes=hits, trials=len(group))
        summaries.append(
            LevelSummary(
                driver=driver,
                strategy=strategy,
                concurrency=level,
                trials=len(group),
                hits=hits,
                hit_rate=rate(hits=hits, trials=len(group)),
                hit_rate_low=low,
                hit_rate_high=high,
                mean_lost_fraction=mean_or_none(outcome.lost_fraction for outcome in group) or 0.0,
                median_spread_ms=median_or_none(o.spread_ms for o in group if o.spread_ms is not None),
                median_first_gap_ms=median_or_none(
                    o.first_gap_ms for o in group if o.first_gap_ms is not None
                ),
                server_errors=sum(outcome.server_errors for outcome in group),
            )
        )
    return summaries


def _trial(
    *,
    driver: Driver,
    accounts: dict[str, Account],
    strategy: Strategy,
    plan: RunPlan,
    level: int,
    trial: int,
) -> TrialOutcome:
    reset_lab_accounts(accounts)
    load = fire_and_record(driver=driver, accounts=accounts, strategy=strategy, plan=plan, level=level).load
    audits = [
        audit_account(account=Account.objects.select_related("user").get(pk=account.pk))
        for account in accounts.values()
    ]
    arrivals = [
        started.timestamp()
        for started in Transaction.objects.filter(holder__in=accounts.values()).values_list(
            "request_started_at", flat=True
        )
    ]
    totals = load.totals
    return TrialOutcome(
        driver=load.driver,
        strategy=str(strategy),
        concurrency=level,
        trial=trial,
        ok=totals[Outcome.OK],
        refused=totals[Outcome.REFUSED],
        indeterminate=totals[Outcome.INDETERMINATE],
        server_errors=load.server_errors,
        lost=sum(audit.lost_withdrawals for audit in audits),
        anomalies=sorted({anomaly.kind for audit in audits for anomaly in audit.anomalies}),
        spread_ms=_milliseconds(spread(arrivals)),
        first_gap_ms=_milliseconds(first_gap(arrivals)),
        lost_workers=len(load.report.lost_workers) if isinstance(load.report, LocustRun) else 0,
    )


def _milliseconds(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * MILLISECONDS
