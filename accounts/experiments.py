"""Services that run load against the lab and record what the client saw."""

import math
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.contrib.auth.models import User
from django.db import close_old_connections, connection
from django.utils import timezone

from accounts import race_window
from accounts.audit import AccountAudit, audit_account
from accounts.models import Account, ClientRun
from accounts.provisioning import reset_accounts
from accounts.selectors import account_for_user
from accounts.withdrawals import Strategy
from loadgen.ab import AbReport, run_ab
from loadgen.burst import FAIL, INDETERMINATE, OK, BurstRun, BurstSession, run_bursts, save_history
from loadgen.errors import LoadError
from loadgen.http_login import log_in_http
from loadgen.login import log_in
from loadgen.target import Target
from loadgen.tools import require_tool

AB_DRIVER = "ab"
BURST_DRIVER = "burst"
DRIVERS = (AB_DRIVER, BURST_DRIVER)

AB_MISSING = "ab is not installed (apt-get install apache2-utils): using the built-in burst driver instead."
AB_ONE_USER = "ab sends a single session cookie, so --users above 1 needs --driver burst."
SERVER_IGNORED_RACE_WINDOW = (
    "The race window was armed, but the server held no withdrawal: restart it with "
    "RACE_WINDOW=armed (and DJANGO_DEBUG=1) on the same database, then try again."
)


@dataclass(frozen=True)
class DriverRun:
    """What one driver saw of one run: its outcome counts per user, and its raw report."""

    driver: str
    strategy: Strategy
    amount: int
    requests: int
    outcomes: dict[str, Counter]
    server_errors: int
    report: AbReport | BurstRun
    argv: list[str]


@dataclass(frozen=True)
class LoadRun:
    strategy: Strategy
    argv: list[str]
    report: AbReport
    client_run: ClientRun | None
    barrier: race_window.BarrierStats | None = None


@dataclass(frozen=True)
class BurstLoadRun:
    strategy: Strategy
    report: BurstRun
    client_runs: list[ClientRun]
    history: Path | None
    barrier: race_window.BarrierStats | None = None


@dataclass(frozen=True)
class MatrixRow:
    strategy: Strategy
    run: LoadRun | BurstLoadRun
    audit: AccountAudit


def lab_account(*, username: str) -> Account:
    user = User.objects.filter(username=username).first()
    if user is None:
        raise LoadError(f"There is no user named {username!r}: create it with `manage.py seed_account`.")
    account = account_for_user(user=user)
    if account is None:
        raise LoadError(f"User {username!r} has no account: create it with `manage.py seed_account`.")
    return account


def lab_usernames(*, username: str, users: int) -> list[str]:
    """The users of a multi-account run: ``username``, then ``username-2`` up to ``username-K``."""
    return [username, *(f"{username}-{number}" for number in range(2, users + 1))]


def resolve_driver(requested: str | None) -> tuple[str, str | None]:
    """The driver to use, and a note to show when ab, the default, is missing and burst stands in."""
    if requested is not None:
        return requested, None
    if shutil.which("ab") is not None:
        return AB_DRIVER, None
    return BURST_DRIVER, AB_MISSING


def race_window_parties(*, race_window_timeout: float | None, concurrency: int, users: int) -> int | None:
    """How many withdrawals the barrier waits for on each account (one burst's share of it), or
    None when the race window is not to be armed."""
    if race_window_timeout is None:
        return None
    return math.ceil(concurrency / users)


class AbDriver:
    """The blog's way: curl logs in once, then each run is one ``ab`` process."""

    name = AB_DRIVER

    def __init__(self, *, target: Target, username: str, password: str, workdir: Path) -> None:
        self.target = target
        self.username = username
        self.workdir = workdir
        self.cookies = log_in(target=target, username=username, password=password, workdir=workdir)

    def fire(self, *, strategy: Strategy, requests: int, concurrency: int, amount: int) -> DriverRun:
        argv, report = run_ab(
            url=self.target.withdraw_url(strategy=strategy),
            cookies=self.cookies,
            requests=requests,
            concurrency=concurrency,
            amount=amount,
            workdir=self.workdir,
        )
        outcomes = Counter({OK: report.ok, FAIL: report.client_errors, INDETERMINATE: report.indeterminate})
        return DriverRun(
            driver=self.name,
            strategy=strategy,
            amount=amount,
            requests=requests,
            outcomes={self.username: outcomes},
            server_errors=report.server_errors,
            report=report,
            argv=argv,
        )


class BurstDriver:
    """The built-in driver: Python logs each user in once, then each run is a series of bursts."""

    name = BURST_DRIVER

    def __init__(self, *, target: Target, usernames: list[str], password: str) -> None:
        self.target = target
        self.sessions = [
            BurstSession(
                username=username, cookies=log_in_http(target=target, username=username, password=password)
            )
            for username in usernames
        ]

    def fire(self, *, strategy: Strategy, requests: int, concurrency: int, amount: int) -> DriverRun:
        run = run_bursts(
            target=self.target,
            sessions=self.sessions,
            strategy=strategy,
            amount=amount,
            requests=requests,
            burst_size=concurrency,
        )
        return DriverRun(
            driver=self.name,
            strategy=strategy,
            amount=amount,
            requests=requests,
            outcomes={session.username: run.outcomes(username=session.username) for session in self.sessions},
            server_errors=run.server_errors,
            report=run,
            argv=[],
        )


@contextmanager
def logged_in(
    *, driver: str, target: Target, usernames: list[str], password: str
) -> Iterator[AbDriver | BurstDriver]:
    """A driver with its users logged in, ready to fire as many runs as needed."""
    if driver == AB_DRIVER:
        if len(usernames) != 1:
            raise LoadError(AB_ONE_USER)
        # Both before the login, so a missing ab changes nothing (not even the user's last_login).
        require_tool("curl")
        require_tool("ab")
        with tempfile.TemporaryDirectory(prefix="splatter-") as workdir:
            yield AbDriver(target=target, username=usernames[0], password=password, workdir=Path(workdir))
    elif driver == BURST_DRIVER:
        yield BurstDriver(target=target, usernames=usernames, password=password)
    else:
        raise LoadError(f"Unknown driver {driver!r}: choose one of {', '.join(DRIVERS)}.")


@contextmanager
def arming(*, parties: int | None, timeout: float) -> Iterator[race_window.ArmedBarrier | None]:
    """Arm the race window for ``parties`` around a block, or do nothing for None."""
    with ExitStack() as stack:
        barrier = None
        if parties is not None:
            try:
                barrier = stack.enter_context(race_window.armed(parties=parties, timeout=timeout))
            except (race_window.RaceWindowError, ValueError) as error:
                raise LoadError(f"Cannot arm the race window: {error}") from error
        yield barrier


def barrier_stats(barrier: race_window.ArmedBarrier | None) -> race_window.BarrierStats | None:
    return barrier.stats() if barrier is not None else None


def check_barrier_used(stats: race_window.BarrierStats | None, *, ok: int) -> None:
    """Withdrawals went through an armed race window, yet the server held none: say so."""
    if stats is not None and ok and not stats.held:
        raise LoadError(SERVER_IGNORED_RACE_WINDOW)


def record_client_runs(
    *, run: DriverRun, accounts: dict[str, Account], started_at: datetime
) -> list[ClientRun]:
    """One ClientRun per account, for the checker to reconcile its ledger against."""
    if not connection.in_atomic_block:
        # The connection sat idle through the whole load, maybe through a database restart:
        # check it and reconnect (CONN_HEALTH_CHECKS), as Django does before each request.
        close_old_connections()
    single = len(run.outcomes) == 1
    return [
        ClientRun.objects.create(
            account=accounts[username],
            driver=run.driver,
            strategy=run.strategy,
            amount=run.amount,
            requests=run.requests if single else sum(outcomes.values()),
            ok=outcomes[OK],
            failed=outcomes[FAIL],
            indeterminate=outcomes[INDETERMINATE],
            started_at=started_at,
            finished_at=timezone.now(),
        )
        for username, outcomes in run.outcomes.items()
    ]


def splatter(
    *,
    target: Target,
    username: str,
    password: str,
    requests: int,
    concurrency: int,
    amount: int,
    strategy: Strategy,
    record: bool = True,
    race_window_timeout: float | None = None,
) -> LoadRun:
    """Log in with curl, fire ab at the withdraw endpoint, and record the outcome counts.

    With ``race_window_timeout`` the race window is armed for ``concurrency`` withdrawals.
    """
    account = lab_account(username=username) if record else None
    started_at = timezone.now()
    run, stats = _fire_once(
        driver=AB_DRIVER,
        target=target,
        usernames=[username],
        password=password,
        fire=dict(strategy=strategy, requests=requests, concurrency=concurrency, amount=amount),
        race_window_timeout=race_window_timeout,
    )
    client_run = None
    if account is not None:
        (client_run,) = record_client_runs(run=run, accounts={username: account}, started_at=started_at)
    check_barrier_used(stats, ok=run.report.ok)
    return LoadRun(strategy=strategy, argv=run.argv, report=run.report, client_run=client_run, barrier=stats)


def burst_splatter(
    *,
    target: Target,
    username: str,
    password: str,
    requests: int,
    concurrency: int,
    amount: int,
    strategy: Strategy,
    users: int = 1,
    record: bool = True,
    history: Path | None = None,
    race_window_timeout: float | None = None,
) -> BurstLoadRun:
    """Log the users in with Python, fire bursts of ``concurrency``, record and save the history."""
    usernames = lab_usernames(username=username, users=users)
    accounts = {name: lab_account(username=name) for name in usernames} if record else {}
    started_at = timezone.now()
    run, stats = _fire_once(
        driver=BURST_DRIVER,
        target=target,
        usernames=usernames,
        password=password,
        fire=dict(strategy=strategy, requests=requests, concurrency=concurrency, amount=amount),
        race_window_timeout=race_window_timeout,
    )
    client_runs = record_client_runs(run=run, accounts=accounts, started_at=started_at) if record else []
    if history is not None:
        save_history(run.report, path=history, target=target)
    check_barrier_used(stats, ok=run.report.ok)
    return BurstLoadRun(
        strategy=strategy, report=run.report, client_runs=client_runs, history=history, barrier=stats
    )


def _fire_once(
    *,
    driver: str,
    target: Target,
    usernames: list[str],
    password: str,
    fire: dict,
    race_window_timeout: float | None,
) -> tuple[DriverRun, race_window.BarrierStats | None]:
    """Log in, arm the race window if asked, fire one run; return it with the barrier's figures."""
    parties = race_window_parties(
        race_window_timeout=race_window_timeout, concurrency=fire["concurrency"], users=len(usernames)
    )
    with (
        logged_in(driver=driver, target=target, usernames=usernames, password=password) as logged,
        arming(parties=parties, timeout=race_window_timeout or 0) as barrier,
    ):
        run = logged.fire(**fire)
        return run, barrier_stats(barrier)


def strategy_matrix(
    *,
    target: Target,
    username: str,
    password: str,
    requests: int,
    concurrency: int,
    amount: int,
    strategies: tuple[Strategy, ...] = tuple(Strategy),
    driver: str = AB_DRIVER,
) -> list[MatrixRow]:
    """Run each strategy on a freshly reset account against the running server, then audit it."""
    rows = []
    for strategy in strategies:
        reset_accounts(opening=None, username=username)
        load = dict(
            target=target,
            username=username,
            password=password,
            requests=requests,
            concurrency=concurrency,
            amount=amount,
            strategy=strategy,
        )
        run = splatter(**load) if driver == AB_DRIVER else burst_splatter(**load)
        account = lab_account(username=username)
        rows.append(MatrixRow(strategy=strategy, run=run, audit=audit_account(account=account)))
    return rows
