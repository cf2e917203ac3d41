"""What one `splatter` invocation is to do, and every rule about which options go together.

A ``RunPlan`` is built once from the command's options and checked as it is built, so a plan
that exists can be run: nothing is sent and nothing is changed before every rule holds.
"""

import enum
import math
from dataclasses import dataclass, field
from pathlib import Path

from accounts.withdrawals import MAX_WITHDRAWAL_AMOUNT, Strategy
from racelab.conf import login_form
from racelab.loadgen.drivers import DriverName
from racelab.loadgen.locust.protocol import LocustMode
from racelab.loadgen.locust.runner import LocustSetup
from racelab.loadgen.login import LoginForm
from racelab.loadgen.target import Target
from racelab.racewindow.barrier import DEFAULT_TIMEOUT_SECONDS
from racelab.runs.plan import (
    DEFAULT_REQUESTS,
    MAX_CONCURRENCY,
    LocustOptions,
    PlanError,
    check_output_folder,
    check_race_window,
    check_run_size,
)
from scenarios.definition import Scenario
from scenarios.withdrawals.scenario import WITHDRAWAL

MAX_TRIALS = 10_000
MAX_USERS = 100


class Mode(enum.StrEnum):
    # One run of one strategy, recorded for audit_transactions.
    SINGLE = "single"
    # One run of each strategy on a freshly reset account, audited side by side.
    MATRIX = "matrix"
    # Repeated one-burst trials per concurrency level, driver and strategy, summarised.
    TRIALS = "trials"


class OutputFormat(enum.StrEnum):
    TABLE = "table"
    JSON = "json"


@dataclass(frozen=True, kw_only=True)
class RunPlan:
    target: Target
    username: str
    strategies: tuple[str, ...]
    # A scenario of the catalogue (scenarios/catalogue.py); None: the bank's withdrawal.
    scenario: Scenario | None = None
    # True when the user asked for every strategy (--strategy all): a comparison, not one run.
    compare_strategies: bool = False
    drivers: tuple[DriverName, ...] = (DriverName.AB,)
    # Requests in flight at once (ab -c, the burst size); several only in trials.
    levels: tuple[int, ...] = (3,)
    # Requests per run, as given (-n); see run_requests.
    requests: int | None = None
    amount: int = 1
    users: int = 1
    trials: int | None = None
    # Arm the deterministic race mode for each burst's share of withdrawals per account.
    race_window: bool = False
    # Seconds a held withdrawal waits for another before all go on.
    race_window_timeout: float = DEFAULT_TIMEOUT_SECONDS
    # Where the server holds them (park points); None: the server's RACE_WINDOW_AT.
    race_window_at: str | None = None
    record: bool = True
    history: Path | None = None
    plot: Path | None = None
    output_format: OutputFormat = OutputFormat.TABLE
    # Every app server when there are several (request i goes to targets[i % len]); the Locust
    # driver's only. Empty: ``target`` alone.
    targets: tuple[Target, ...] = ()
    # The Locust driver's options as given (see locust_setup for the defaults).
    locust: LocustOptions = field(default_factory=LocustOptions)
    # The project's login form (settings.LOGIN_URL).
    login: LoginForm = field(default_factory=login_form)

    def __post_init__(self) -> None:
        if self.trials is not None:
            self._check_trials()
        else:
            self._check_single_or_matrix()
        self._check_ranges()
        self._check_users()
        self._check_strategies()
        self._check_locust()
        check_output_folder(self.history, option="--history")
        check_output_folder(self.plot, option="--plot")

    @property
    def mode(self) -> Mode:
        if self.trials is not None:
            return Mode.TRIALS
        return Mode.MATRIX if self.compare_strategies else Mode.SINGLE

    @property
    def run_requests(self) -> int:
        """Requests per run: -n, else DEFAULT_REQUESTS; in trials, where -n does not apply, each
        trial sends one burst of its level instead."""
        return DEFAULT_REQUESTS if self.requests is None else self.requests

    @property
    def app_servers(self) -> list[Target]:
        return list(self.targets) or [self.target]

    @property
    def locust_setup(self) -> LocustSetup:
        """How the Locust driver runs: in bursts in trials and race mode, where the requests must
        meet, steady (the ab equivalent) otherwise, unless --locust-mode says; one local worker
        unless told."""
        meet = self.trials is not None or self.race_window
        return self.locust.setup(default_mode=LocustMode.BURST if meet else LocustMode.STEADY)

    @property
    def usernames(self) -> list[str]:
        """``username``, then ``username-2`` up to ``username-K`` for a multi-account run."""
        return [self.username, *(f"{self.username}-{number}" for number in range(2, self.users + 1))]

    @property
    def resets(self) -> bool:
        """Whether running the plan resets data: every scenario run starts from its seeded state."""
        return self.mode is not Mode.SINGLE or self.scenario is not None

    @property
    def reset_warning(self) -> str:
        """What running this plan resets, for the confirmation prompt."""
        if self.scenario is not None:
            name, recorded = self.scenario.name, self.scenario.recorded
            return f"--scenario {name} resets the scenario's data ({recorded}) before each run."
        if self.mode is Mode.MATRIX:
            return f"--strategy all resets {self.username}'s account before each strategy."
        if self.users == 1:
            return f"--trials resets {self.username}'s account before each trial."
        return f"--trials resets the accounts of {self.username} to {self.usernames[-1]} before each trial."

    @property
    def park_points(self) -> str | None:
        """Where the armed window holds requests: as given, else the scenario's, else the server's."""
        if self.race_window_at is not None or self.scenario is None:
            return self.race_window_at
        return self.scenario.park_point

    def race_window_parties(self, *, level: int) -> int | None:
        """How many requests the barrier waits for on each resource, or None when the race window
        is not armed: one burst's share per account, or the whole burst on a scenario's one subject."""
        if not self.race_window:
            return None
        return level if self.scenario is not None else math.ceil(level / self.users)

    def _check_strategies(self) -> None:
        known = self.scenario.strategies if self.scenario is not None else tuple(Strategy)
        for strategy in self.strategies:
            if strategy not in known:
                subject = (
                    f"the {self.scenario.name} scenario" if self.scenario is not None else "the withdrawal"
                )
                raise PlanError(
                    f"{strategy!r} is not a strategy of {subject}: use one of {', '.join(known)}, or all."
                )
        if self.scenario is not None:
            self._check_scenario(self.scenario)

    def _check_scenario(self, scenario: Scenario) -> None:
        if self.plot is not None:
            raise PlanError("--plot draws the withdrawal trials' lost updates (without --scenario); drop it.")
        if scenario is WITHDRAWAL and self.users > 1:
            raise PlanError(
                "The withdrawal scenario races on one account, its window on that account's row: drop "
                "--users, or run the withdrawal without --scenario, which takes --users."
            )
        for level in self.levels:
            most = scenario.race_parties_max
            if self.race_window and most is not None and level > most:
                raise PlanError(
                    f"Race mode holds at most {most} requests of the {scenario.name} scenario together "
                    f"(docs/scenarios.md says why), not -c {level}."
                )
            forms = len(scenario.forms_for(concurrency=level))
            requests = level if self.trials is not None else self.run_requests
            if DriverName.AB in self.drivers and forms > min(level, requests):
                raise PlanError(
                    f"The {scenario.name} scenario sends {forms} different forms at -c {level}, and ab one "
                    f"form per process: give -n and -c of at least {forms}, or use --driver burst."
                )

    def _check_trials(self) -> None:
        if not 1 <= self.trials <= MAX_TRIALS:
            raise PlanError(f"--trials must be from 1 to {MAX_TRIALS}, not {self.trials}.")
        if self.requests is not None:
            raise PlanError("-n does not apply with --trials: each trial fires one burst of -c requests.")
        if not self.record:
            raise PlanError("--trials audits every trial, so it cannot be combined with --no-record.")
        if self.history is not None:
            raise PlanError("--history saves a single run; drop --trials or --history.")
        if self.plot is not None and self.plot.suffix.lower() != ".png":
            raise PlanError(f"--plot writes a PNG: give a file name ending in .png, not {self.plot}.")

    def _check_single_or_matrix(self) -> None:
        if len(self.drivers) > 1:
            raise PlanError("Several drivers can only be compared in trials: add --trials N, or name one.")
        if len(self.levels) > 1:
            raise PlanError("A list of -c levels needs --trials N; for a single run give one number.")
        if self.plot is not None or (self.output_format is OutputFormat.JSON and self.scenario is None):
            raise PlanError("--format json and --plot summarise trials: add --trials N.")
        if self.history is not None and self.drivers[0] is DriverName.AB:
            raise PlanError(
                "--history records the burst driver's requests: add --driver burst (or --driver locust)."
            )
        check_run_size(requests=self.run_requests, concurrency=self.levels[0])
        if self.compare_strategies and self.history is not None:
            raise PlanError("--history saves a single run; drop --strategy all or --history.")
        if self.compare_strategies and not self.record:
            raise PlanError("--strategy all audits every run, so it cannot be combined with --no-record.")
        if self.compare_strategies and self.users > 1:
            raise PlanError("--strategy all compares the strategies on one account: drop --users.")
        if self.compare_strategies and self.race_window:
            raise PlanError("--race-window with --strategy all needs --trials N.")

    def _check_ranges(self) -> None:
        for level in self.levels:
            if not 1 <= level <= MAX_CONCURRENCY:
                raise PlanError(f"Each -c level must be from 1 to {MAX_CONCURRENCY}, not {level}.")
        if not 1 <= self.amount <= MAX_WITHDRAWAL_AMOUNT:
            raise PlanError(f"--amount must be from 1 to {MAX_WITHDRAWAL_AMOUNT}, not {self.amount}.")
        check_race_window(armed=self.race_window, timeout=self.race_window_timeout, at=self.race_window_at)

    def _check_users(self) -> None:
        if not 1 <= self.users <= MAX_USERS:
            raise PlanError(f"--users must be from 1 to {MAX_USERS}, not {self.users}.")
        if self.users > 1 and DriverName.AB in self.drivers:
            raise PlanError(
                "ab sends a single session cookie, so --users above 1 needs --driver burst (or locust)."
            )
        if self.users > min(self.levels):
            raise PlanError(
                f"--users ({self.users}) must be at most -c ({min(self.levels)}): each user needs a request."
            )

    def _check_locust(self) -> None:
        self.locust.check(locust=DriverName.LOCUST in self.drivers, levels=self.levels)
        if len(self.targets) > 1 and self.drivers != (DriverName.LOCUST,):
            raise PlanError(
                "Several --url app servers take turns only with --driver locust: give one URL, or add "
                "--driver locust."
            )
