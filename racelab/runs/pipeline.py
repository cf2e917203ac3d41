"""The one run loop every race goes through, an endpoint named with ``--path`` and a project's
own catalogue of races alike.

Per concurrency level the race window is armed once; per trial, driver and strategy the race's
data is put back, one run is fired, and the race judges what it did. Drivers and strategies take
turns within a trial, so a machine that slows down during a long sweep weighs on all of them
alike. What a race is to the loop is the ``Race`` protocol: what to send, how to reset, which
strategies the window can hold, and its judgement of a run.
"""

import secrets
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from itertools import product
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from django.utils import timezone

from racelab.loadgen.drivers import Driver, LoadResult, save_load_history
from racelab.loadgen.outcomes import Outcome
from racelab.loadgen.target import LoadRequest, Target
from racelab.racewindow.barrier import ArmedBarrier, BarrierStats
from racelab.runs.arming import check_barrier_used

Judgement = TypeVar("Judgement")
Judged = TypeVar("Judged", covariant=True)


@dataclass(frozen=True, kw_only=True)
class Fired:
    """One run as its race judges it: what was sent and seen, and when."""

    load: LoadResult
    level: int
    strategy: str | None
    # What the driver sent as X-Lab-Run with every request, for the server to stamp them; None
    # when the race keeps no timeline.
    run_token: str | None
    started_at: datetime
    # Seconds from the first request sent to the last answer.
    elapsed: float


class Race(Protocol[Judged]):
    """What the run loop needs of a race."""

    @property
    def stamps_requests(self) -> bool:
        """Whether the server is asked to stamp each request (X-Lab-Run) for a timeline."""

    def requests(self, *, strategy: str | None, concurrency: int) -> tuple[LoadRequest, ...]:
        """What one run sends: request i the i-th modulo their number."""

    def reset(self) -> None:
        """Put the race's data back where each run starts (nothing where runs add up)."""

    def held(self, *, strategy: str | None) -> bool:
        """Whether the strategy's requests send the park point's statement at all."""

    def judge(self, fired: Fired) -> Judged:
        """What the run did: the race's audit, check or record of it."""


@dataclass(frozen=True, kw_only=True)
class RaceRun(Generic[Judgement]):
    trial: int
    fired: Fired
    judgement: Judgement
    # What the race window did during this run; None when it was not armed.
    barrier: BarrierStats | None

    @property
    def load(self) -> LoadResult:
        return self.fired.load

    @property
    def level(self) -> int:
        return self.fired.level


@dataclass(frozen=True, kw_only=True)
class Schedule:
    """Which runs to fire, in the loop's order."""

    levels: tuple[int, ...]
    trials: int = 1
    strategies: tuple[str | None, ...] = (None,)
    # Requests per run; None: one burst of the level's size (trials).
    requests: int | None = None

    @property
    def runs(self) -> int:
        return len(self.levels) * self.trials * len(self.strategies)


@dataclass(frozen=True, kw_only=True)
class RaceRuns(Generic[Judgement]):
    runs: list[RaceRun[Judgement]]
    # Per concurrency level, when the race window was armed: what its barriers saw.
    barriers: dict[int, BarrierStats] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class HistoryFile:
    """Where a single run's per-request history goes, and the servers it names."""

    path: Path
    targets: list[Target]


def new_run_token() -> str:
    """What the driver sends as X-Lab-Run with every request of one run."""
    return secrets.token_urlsafe(16)


def run_races(
    *,
    race: Race[Judgement],
    drivers: Sequence[Driver],
    schedule: Schedule,
    arm: Callable[[int], AbstractContextManager[ArmedBarrier | None]],
    history: HistoryFile | None = None,
    on_run: Callable[[RaceRun[Judgement]], None] = lambda run: None,
) -> RaceRuns[Judgement]:
    """Every level, trial, driver and strategy in turn; ``arm(level)`` arms the race window for
    one level's runs (or yields None). A window that held nothing while requests went through
    stops the command: the server ignored it, and the runs prove nothing about a race.
    ``history`` keeps the per-request history of a schedule of one run."""
    if history is not None and schedule.runs * len(drivers) != 1:
        raise ValueError(f"a history file keeps one run, not {schedule.runs * len(drivers)}")
    runs: list[RaceRun[Judgement]] = []
    barriers: dict[int, BarrierStats] = {}
    for level in schedule.levels:
        with arm(level) as barrier:
            turns = product(range(1, schedule.trials + 1), drivers, schedule.strategies)
            for trial, driver, strategy in turns:
                race.reset()
                before = barrier.stats() if barrier is not None else None
                fired = _fire(race=race, driver=driver, strategy=strategy, level=level, schedule=schedule)
                if history is not None:
                    # Kept before the judgement: a check that fails leaves the history to read.
                    save_load_history(fired.load, path=history.path, targets=history.targets)
                # Judged before the window is asked again: a window lost during the run (its
                # Redis gone) fails the command, and what the server did is on record first.
                judgement = race.judge(fired)
                held = barrier.stats().since(before) if barrier is not None else None
                run = RaceRun(trial=trial, fired=fired, judgement=judgement, barrier=held)
                runs.append(run)
                on_run(run)
            stats = barrier.stats() if barrier is not None else None
        if stats is not None:
            ok = sum(
                run.load.totals[Outcome.OK]
                for run in runs
                if run.level == level and race.held(strategy=run.fired.strategy)
            )
            check_barrier_used(stats, ok=ok)
            barriers[level] = stats
    return RaceRuns(runs=runs, barriers=barriers)


def _fire(*, race: Race, driver: Driver, strategy: str | None, level: int, schedule: Schedule) -> Fired:
    token = new_run_token() if race.stamps_requests else None
    started_at, started = timezone.now(), time.monotonic()
    load = driver.fire(
        posts=race.requests(strategy=strategy, concurrency=level),
        requests=level if schedule.requests is None else schedule.requests,
        concurrency=level,
        run_token=token,
    )
    return Fired(
        load=load,
        level=level,
        strategy=strategy,
        run_token=token,
        started_at=started_at,
        elapsed=time.monotonic() - started,
    )
