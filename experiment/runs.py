"""One run against the lab: log in, fire, and record what the client saw for the checker."""

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
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
from experiment.drivers import Driver, LoadResult, logged_in, save_load_history
from experiment.plan import RunPlan
from labreport.models import LabRun
from labreport.runs import RunSummary, file_lab_run, new_run_token
from racelab.loadgen.errors import LoadError
from racelab.loadgen.outcomes import Outcome
from racelab.loadgen.target import FormPost
from racelab.racewindow import barrier as race_window

WITHDRAW_PATH = "/accounts/withdraw/"


def withdrawal_post(*, strategy: str, amount: int) -> FormPost:
    """The bank's withdrawal of ``amount`` with ``strategy``."""
    return FormPost(path=WITHDRAW_PATH, strategy=strategy, fields=(("amount", str(amount)),))


SERVER_IGNORED_RACE_WINDOW = (
    "The race window was armed, but the server held no request: restart it with "
    "RACE_WINDOW=armed (and DJANGO_DEBUG=1) on the same database, and check that the park "
    "points (--race-window-at, else the scenario's or the server's RACE_WINDOW_AT) name a "
    "statement the requests send; then try again."
)


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


def run_load(*, plan: RunPlan, strategy: Strategy, password: str) -> RecordedRun:
    """The single run: log in, arm the race window if asked, fire, record, save the history."""
    accounts = lab_accounts(plan=plan) if plan.record else {}
    (driver,) = plan.drivers
    (level,) = plan.levels
    with (
        logged_in(plan=plan, name=driver, password=password) as logged,
        arming(plan=plan, level=level) as barrier,
    ):
        run = fire_and_record(driver=logged, accounts=accounts, strategy=strategy, plan=plan, level=level)
        stats = barrier.stats() if barrier is not None else None
    if plan.history is not None:
        save_load_history(run.load, plan=plan)
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
                strategy=load.strategy,
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
    """Arm the race window around a block for one burst's share of ``level`` per account, or do
    nothing when the plan does not ask for it."""
    parties = plan.race_window_parties(level=level)
    try:
        with ExitStack() as stack:
            barrier = None
            if parties is not None:
                try:
                    barrier = stack.enter_context(
                        race_window.armed(
                            parties=parties, timeout=plan.race_window_timeout, at=plan.park_points
                        )
                    )
                except (race_window.RaceWindowError, ValueError) as error:
                    raise LoadError(f"Cannot arm the race window: {error}") from error
            yield barrier
    except race_window.RaceWindowError as error:
        # Armed, then lost (its Redis lease lapsed): its figures can no longer be trusted.
        raise LoadError(f"The race window failed during the run: {error}") from error


def check_barrier_used(stats: race_window.BarrierStats | None, *, ok: int) -> None:
    """Withdrawals went through an armed race window, yet the server held none: say so."""
    if stats is not None and ok and not stats.held:
        raise LoadError(SERVER_IGNORED_RACE_WINDOW)


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
            strategy=load.strategy,
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
