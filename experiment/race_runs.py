"""The demo's races through racelab's one run loop: the bank's withdrawal and each scenario of
the catalogue, as the ``Race`` the loop fires, resets and asks to judge each run."""

from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db import close_old_connections, connection
from django.utils import timezone

from accounts.audit import AccountAudit, audit_account
from accounts.models import Account, Run, Transaction
from accounts.provisioning import reset_accounts
from accounts.selectors import account_for_user
from experiment.plan import RunPlan
from experiment.requests import strategy_of, strategy_request, withdrawal_post
from labreport.runs import file_run
from racelab.loadgen.drivers import Driver, DriverName, logged_in
from racelab.loadgen.errors import LoadError
from racelab.loadgen.login import Credentials
from racelab.loadgen.outcomes import Outcome
from racelab.loadgen.target import LoadRequest
from racelab.racewindow.barrier import ArmedBarrier
from racelab.runs.arming import arming
from racelab.runs.pipeline import Fired, HistoryFile, RaceRun, RaceRuns, Schedule, run_races
from scenarios.audit import ScenarioAudit
from scenarios.definition import Scenario
from scenarios.withdrawals.scenario import WITHDRAWAL


@dataclass(frozen=True, kw_only=True)
class ScenarioRace:
    """A scenario of the catalogue: each run from its reset data, judged by its own audit."""

    scenario: Scenario

    @property
    def stamps_requests(self) -> bool:
        return False

    def requests(self, *, strategy: str | None, concurrency: int) -> tuple[LoadRequest, ...]:
        return scenario_requests(scenario=self.scenario, strategy=strategy, concurrency=concurrency)

    def reset(self) -> None:
        self.scenario.reset()

    def held(self, *, strategy: str | None) -> bool:
        return self.scenario.always_held(strategy)

    def judge(self, fired: Fired) -> ScenarioAudit:
        return self.scenario.audit()


@dataclass(frozen=True, kw_only=True)
class WithdrawalRecord:
    """What one withdrawal run left behind: per account, the run's row (what the client saw, for
    audit_transactions to reconcile the ledger against, and the report page's run) and the audit
    when the run ended; in trials, when each withdrawal arrived (server clock)."""

    runs: list[Run]
    audits: list[AccountAudit]
    arrivals: list[float]


@dataclass(frozen=True, kw_only=True)
class WithdrawalRace:
    """The bank's withdrawal: ``amount`` from each user's account. Runs add up on the accounts
    unless ``resets`` (trials, or every strategy side by side); without ``accounts`` (--no-record)
    nothing is kept."""

    accounts: dict[str, Account]
    amount: int
    resets: bool
    race_window: bool
    times_arrivals: bool

    @property
    def stamps_requests(self) -> bool:
        return bool(self.accounts)

    def requests(self, *, strategy: str | None, concurrency: int) -> tuple[LoadRequest, ...]:
        return (withdrawal_post(strategy=strategy, amount=self.amount),)

    def reset(self) -> None:
        if self.resets:
            for username in self.accounts:
                reset_accounts(opening=None, username=username)

    def held(self, *, strategy: str | None) -> bool:
        return WITHDRAWAL.always_held(strategy)

    def judge(self, fired: Fired) -> WithdrawalRecord:
        if not self.accounts:
            return WithdrawalRecord(runs=[], audits=[], arrivals=[])
        if not connection.in_atomic_block:
            # The connection sat idle through the whole load, maybe through a database restart:
            # check it and reconnect (CONN_HEALTH_CHECKS), as Django does before each request.
            close_old_connections()
        runs = self._record(fired)
        # The audit reads the run just recorded: the client's view is part of what it checks.
        audits = [audit_account(account=run.account) for run in runs]
        for run, audit in zip(runs, audits, strict=True):
            file_run(run=run, audit=audit)
        arrivals = (
            [
                started.timestamp()
                for started in Transaction.objects.filter(holder__in=self.accounts.values()).values_list(
                    "request_started_at", flat=True
                )
            ]
            if self.times_arrivals
            else []
        )
        return WithdrawalRecord(runs=runs, audits=audits, arrivals=arrivals)

    def _record(self, fired: Fired) -> list[Run]:
        """One run row per account: what its user's requests got."""
        load = fired.load
        single = len(load.outcomes) == 1
        return [
            Run.objects.create(
                account=self.accounts[username],
                token=fired.run_token,
                driver=load.driver,
                strategy=strategy_of(load),
                amount=self.amount,
                concurrency=fired.level,
                requests=load.requests if single else sum(outcomes.values()),
                ok=outcomes[Outcome.OK],
                refused=outcomes[Outcome.REFUSED],
                indeterminate=outcomes[Outcome.INDETERMINATE],
                race_window=self.race_window,
                requests_per_second=load.requests_per_second,
                started_at=fired.started_at,
                finished_at=timezone.now(),
            )
            for username, outcomes in load.outcomes.items()
        ]


def scenario_requests(*, scenario: Scenario, strategy: str, concurrency: int) -> tuple[LoadRequest, ...]:
    return tuple(
        strategy_request(
            path=scenario.path, strategy=strategy, fields=tuple(form.items()), method=scenario.method
        )
        for form in scenario.forms_for(concurrency=concurrency)
    )


def run_plan(
    *, plan: RunPlan, password: str, on_run: Callable[[RaceRun], None] = lambda run: None
) -> RaceRuns:
    """Every run the plan asks for, of its scenario or of the withdrawal, through one loop; the
    drivers log in once. Nothing is sent before the race's data is found."""
    race = _race(plan=plan)
    with ExitStack() as stack:
        drivers = [
            stack.enter_context(logged_in_for(plan=plan, name=name, password=password))
            for name in plan.drivers
        ]
        return run_races(
            race=race,
            drivers=drivers,
            schedule=Schedule(
                levels=plan.levels,
                trials=plan.trials or 1,
                strategies=plan.strategies,
                requests=None if plan.trials is not None else plan.run_requests,
            ),
            arm=lambda level: _arming(plan=plan, level=level),
            history=None
            if plan.history is None
            else HistoryFile(path=plan.history, targets=plan.app_servers),
            on_run=on_run,
        )


def logged_in_for(*, plan: RunPlan, name: DriverName, password: str) -> AbstractContextManager[Driver]:
    """The named driver with the plan's users logged in through the project's login form."""
    credentials = Credentials(usernames=tuple(plan.usernames), password=password, form=plan.login)
    return logged_in(
        name=name, targets=plan.app_servers, credentials=credentials, locust_setup=plan.locust_setup
    )


def _race(*, plan: RunPlan) -> ScenarioRace | WithdrawalRace:
    scenario = plan.scenario
    if scenario is not None:
        if not scenario.is_seeded():
            raise LoadError(
                f"The {scenario.name} scenario has no data to race for: run "
                f"`manage.py seed_scenario {scenario.name}` first."
            )
        if scenario is WITHDRAWAL:
            # The scenario's data is every owned account; the requests withdraw from this one.
            _lab_account(username=plan.username)
        return ScenarioRace(scenario=scenario)
    return WithdrawalRace(
        accounts={username: _lab_account(username=username) for username in plan.usernames}
        if plan.record
        else {},
        amount=plan.amount,
        resets=plan.resets,
        race_window=plan.race_window,
        times_arrivals=plan.trials is not None,
    )


def _arming(*, plan: RunPlan, level: int) -> AbstractContextManager[ArmedBarrier | None]:
    return arming(
        parties=plan.race_window_parties(level=level), timeout=plan.race_window_timeout, at=plan.park_points
    )


def _lab_account(*, username: str) -> Account:
    user = User.objects.filter(username=username).first()
    if user is None:
        raise LoadError(f"There is no user named {username!r}: create it with `manage.py seed_account`.")
    account = account_for_user(user=user)
    if account is None:
        raise LoadError(f"User {username!r} has no account: create it with `manage.py seed_account`.")
    return account
