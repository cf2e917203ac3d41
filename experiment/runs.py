"""One run against the lab: log in, fire, and record what the client saw for the checker."""

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from django.contrib.auth.models import User
from django.db import close_old_connections, connection
from django.utils import timezone

from accounts.models import Account, ClientRun
from accounts.provisioning import reset_accounts
from accounts.selectors import account_for_user
from accounts.withdrawals import Strategy
from experiment.plan import RunPlan
from experiment.requests import strategy_of, withdrawal_post
from labreport.models import LabRun
from labreport.runs import RunSummary, file_lab_run, new_run_token
from racelab.loadgen.drivers import Driver, DriverName, LoadResult, logged_in, save_load_history
from racelab.loadgen.errors import LoadError
from racelab.loadgen.login import Credentials
from racelab.loadgen.outcomes import Outcome
from racelab.racewindow import barrier as race_window
from racelab.runs.arming import arming as armed_for
from racelab.runs.arming import check_barrier_used


@dataclass(frozen=True, kw_only=True)
class RecordedRun:
    """A driver's run and what was kept of it: the ClientRun rows, the lab runs the report page
    shows, the history file, the barrier."""

    load: LoadResult
    client_runs: list[ClientRun]
    lab_runs: list[LabRun]
    history: Path | None = None
    barrier: race_window.BarrierStats | None = None


def lab_account(*, username: str) -> Account:
    user = User.objects.filter(username=username).first()
    if user is None:
        raise LoadError(f"There is no user named {username!r}: create it with `manage.py seed_account`.")
    account = account_for_user(user=user)
    if account is None:
        raise LoadError(f"User {username!r} has no account: create it with `manage.py seed_account`.")
    return account


def lab_accounts(*, plan: RunPlan) -> dict[str, Account]:
    """Each user's account, by username, checked before anything is sent."""
    return {username: lab_account(username=username) for username in plan.usernames}


def reset_lab_accounts(accounts: dict[str, Account]) -> None:
    """Each account back to its opening balance, its ledger and client runs cleared."""
    for username in accounts:
        reset_accounts(opening=None, username=username)


def logged_in_for(*, plan: RunPlan, name: DriverName, password: str) -> AbstractContextManager[Driver]:
    """The named driver with the plan's users logged in through the project's login form."""
    credentials = Credentials(usernames=tuple(plan.usernames), password=password, form=plan.login)
    return logged_in(
        name=name, targets=plan.app_servers, credentials=credentials, locust_setup=plan.locust_setup
    )


def run_load(*, plan: RunPlan, strategy: Strategy, password: str) -> RecordedRun:
    """The single run: log in, arm the race window if asked, fire, record, save the history."""
    accounts = lab_accounts(plan=plan) if plan.record else {}
    (driver,) = plan.drivers
    (level,) = plan.levels
    with (
        logged_in_for(plan=plan, name=driver, password=password) as logged,
        arming(plan=plan, level=level) as barrier,
    ):
        run = fire_and_record(driver=logged, accounts=accounts, strategy=strategy, plan=plan, level=level)
        stats = barrier.stats() if barrier is not None else None
    if plan.history is not None:
        save_load_history(run.load, path=plan.history, targets=plan.app_servers)
    check_barrier_used(stats, ok=run.load.totals[Outcome.OK])
    return replace(run, history=plan.history, barrier=stats)


def fire_and_record(
    *,
    driver: Driver,
    accounts: dict[str, Account],
    strategy: Strategy,
    plan: RunPlan,
    level: int,
) -> RecordedRun:
    """Fire one run of the plan's requests (in trials, one burst of ``level``) and record it:
    what the client saw, and (with the requests' timings the server stamped) the lab run."""
    requests = level if plan.trials is not None else plan.run_requests
    # Recording asks the server to stamp each request: only when the run is recorded at all.
    token = new_run_token() if accounts else None
    started_at = timezone.now()
    post = withdrawal_post(strategy=strategy, amount=plan.amount)
    load = driver.fire(posts=(post,), requests=requests, concurrency=level, run_token=token)
    client_runs = _record_client_runs(load=load, amount=plan.amount, accounts=accounts, started_at=started_at)
    lab_runs = [
        file_lab_run(
            account=client_run.account,
            summary=RunSummary(
                token=token,
                driver=load.driver,
                strategy=strategy_of(load),
                concurrency=level,
                amount=plan.amount,
                requests=client_run.requests,
                ok=client_run.ok,
                refused=client_run.failed,
                indeterminate=client_run.indeterminate,
                race_window=plan.race_window,
                requests_per_second=load.requests_per_second,
                started_at=client_run.started_at,
                finished_at=client_run.finished_at,
            ),
        )
        for client_run in client_runs
    ]
    return RecordedRun(load=load, client_runs=client_runs, lab_runs=lab_runs)


@contextmanager
def arming(*, plan: RunPlan, level: int) -> Iterator[race_window.ArmedBarrier | None]:
    """The race window armed for one burst's share of ``level`` per account, or nothing when the
    plan does not ask for it."""
    with armed_for(
        parties=plan.race_window_parties(level=level), timeout=plan.race_window_timeout, at=plan.park_points
    ) as barrier:
        yield barrier


def _record_client_runs(
    *, load: LoadResult, amount: int, accounts: dict[str, Account], started_at: datetime
) -> list[ClientRun]:
    """One ClientRun per account, for the checker to reconcile its ledger against."""
    if not accounts:
        return []
    if not connection.in_atomic_block:
        # The connection sat idle through the whole load, maybe through a database restart:
        # check it and reconnect (CONN_HEALTH_CHECKS), as Django does before each request.
        close_old_connections()
    single = len(load.outcomes) == 1
    return [
        ClientRun.objects.create(
            account=accounts[username],
            driver=load.driver,
            strategy=strategy_of(load),
            amount=amount,
            requests=load.requests if single else sum(outcomes.values()),
            ok=outcomes[Outcome.OK],
            failed=outcomes[Outcome.REFUSED],
            indeterminate=outcomes[Outcome.INDETERMINATE],
            started_at=started_at,
            finished_at=timezone.now(),
        )
        for username, outcomes in load.outcomes.items()
    ]
