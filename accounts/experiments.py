"""Services that run load against the lab and record what the client saw."""

import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth.models import User
from django.utils import timezone

from accounts.audit import AccountAudit, audit_account
from accounts.models import Account, ClientRun
from accounts.provisioning import reset_accounts
from accounts.selectors import account_for_user
from accounts.withdrawals import Strategy
from loadgen.ab import AbReport, run_ab
from loadgen.errors import LoadError
from loadgen.login import log_in
from loadgen.target import Target

AB_DRIVER = "ab"


@dataclass(frozen=True)
class LoadRun:
    strategy: Strategy
    argv: list[str]
    report: AbReport
    client_run: ClientRun | None


@dataclass(frozen=True)
class MatrixRow:
    strategy: Strategy
    run: LoadRun
    audit: AccountAudit


def lab_account(*, username: str) -> Account:
    user = User.objects.filter(username=username).first()
    if user is None:
        raise LoadError(f"There is no user named {username!r}: create it with `manage.py seed_account`.")
    account = account_for_user(user=user)
    if account is None:
        raise LoadError(f"User {username!r} has no account: create it with `manage.py seed_account`.")
    return account


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
) -> LoadRun:
    """Log in with curl, fire ab at the withdraw endpoint, and record the outcome counts."""
    account = lab_account(username=username) if record else None
    started_at = timezone.now()
    with tempfile.TemporaryDirectory(prefix="splatter-") as workdir:
        cookies = log_in(target=target, username=username, password=password, workdir=Path(workdir))
        argv, report = run_ab(
            url=target.withdraw_url(strategy=strategy),
            cookies=cookies,
            requests=requests,
            concurrency=concurrency,
            amount=amount,
            workdir=Path(workdir),
        )
    client_run = None
    if account is not None:
        client_run = ClientRun.objects.create(
            account=account,
            driver=AB_DRIVER,
            strategy=strategy,
            amount=amount,
            requests=requests,
            ok=report.ok,
            failed=report.client_errors,
            indeterminate=report.indeterminate,
            started_at=started_at,
            finished_at=timezone.now(),
        )
    return LoadRun(strategy=strategy, argv=argv, report=report, client_run=client_run)


def strategy_matrix(
    *,
    target: Target,
    username: str,
    password: str,
    requests: int,
    concurrency: int,
    amount: int,
    strategies: tuple[Strategy, ...] = tuple(Strategy),
) -> list[MatrixRow]:
    """Run each strategy on a freshly reset account against the running server, then audit it."""
    rows = []
    for strategy in strategies:
        reset_accounts(opening=None, username=username)
        run = splatter(
            target=target,
            username=username,
            password=password,
            requests=requests,
            concurrency=concurrency,
            amount=amount,
            strategy=strategy,
        )
        account = lab_account(username=username)
        rows.append(MatrixRow(strategy=strategy, run=run, audit=audit_account(account=account)))
    return rows
