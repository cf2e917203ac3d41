"""Fixtures for the unit tests: users, accounts, ledgers and a "nothing changed" check."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from accounts.audit import audit_account
from accounts.models import Account, Run, Transaction
from accounts.withdrawals import Strategy
from labreport.models import RecordedRequest
from labreport.runs import file_run
from racelab.management.password_input import PASSWORD_ENV_VAR
from tests.helpers import PASSWORD, STARTED_AT, database_snapshot
from tests.listening import Listener, listener


@pytest.fixture(autouse=True)
def hash_passwords_fast(fast_password_hasher):
    """Every unit test hashes with MD5 (tests/conftest.py)."""


@pytest.fixture
def database_unchanged() -> Callable:
    """``with database_unchanged(): ...`` fails if the block changed any user, account or row.

    Put ``pytest.raises`` inside it: ``with database_unchanged(), pytest.raises(CommandError):``.
    """

    @contextmanager
    def check() -> Iterator[dict]:
        before = database_snapshot()
        yield before
        assert database_snapshot() == before

    return check


@pytest.fixture
def splatter_password(monkeypatch) -> None:
    """The password splatter reads, in its environment (racelab/loadgen/credentials.py)."""
    monkeypatch.setenv(PASSWORD_ENV_VAR, PASSWORD)


@pytest.fixture
def lab_port() -> Iterator[Listener]:
    """Where splatter is sent: a real listener, to show that nothing reached it."""
    with listener() as listening:
        yield listening


@pytest.fixture
def make_account() -> Callable[..., Account]:
    def make(
        *, username: str | None = "alice", opening: int = 1_000, minimum: int = 0, current: int | None = None
    ) -> Account:
        user = User.objects.create_user(username=username, password=PASSWORD) if username else None
        return Account.objects.create(
            user=user,
            opening=opening,
            current=opening if current is None else current,
            minimum=minimum,
        )

    return make


@pytest.fixture
def account(make_account) -> Account:
    return make_account()


@pytest.fixture
def add_row() -> Callable[..., Transaction]:
    """Write one hand-made ledger row; ``amount`` defaults to what the balances imply."""

    def add(
        account: Account,
        before: int,
        after: int,
        *,
        amount: int | None = None,
        strategy: str = Strategy.NAIVE,
    ) -> Transaction:
        return Transaction.objects.create(
            holder=account,
            amount=before - after if amount is None else amount,
            balance_before=before,
            balance=after,
            strategy=strategy,
            request_started_at=STARTED_AT,
        )

    return add


@pytest.fixture
def add_run() -> Callable[..., Run]:
    def add(
        account: Account,
        *,
        ok: int,
        refused: int = 0,
        indeterminate: int = 0,
        amount: int = 1,
        started_at=STARTED_AT,
        finished_at=STARTED_AT + timedelta(seconds=1),
    ) -> Run:
        return Run.objects.create(
            account=account,
            driver="ab",
            strategy=Strategy.NAIVE,
            amount=amount,
            concurrency=3,
            requests=ok + refused + indeterminate,
            ok=ok,
            refused=refused,
            indeterminate=indeterminate,
            started_at=started_at,
            finished_at=finished_at,
        )

    return add


@pytest.fixture
def make_lab_run(add_run) -> Callable[..., Run]:
    """A filed lab run, as splatter leaves one: per request a ledger row (2xx) or none (4xx),
    its server stamps, its run row, then ``file_run``. ``reads`` are the balances the 2xx requests read
    (a repeat is a lost update); ``refused`` adds that many 409s."""

    def make(account: Account, *, reads: list[int], refused: int = 0, token: str = "lab-run-token") -> Run:
        started = timezone.now()
        for index, read in enumerate(reads):
            arrived = started + timedelta(milliseconds=2 * index)
            Transaction.objects.create(
                holder=account,
                amount=1,
                balance_before=read,
                balance=read - 1,
                strategy=Strategy.NAIVE,
                request_started_at=arrived,
            )
            _recorded(account, token=token, arrived=arrived, status=200, worker=100 + index % 2)
        for index in range(refused):
            _recorded(
                account, token=token, arrived=started + timedelta(milliseconds=2 * index + 1), status=409
            )
        account.current = min(reads, default=account.opening + 1) - 1
        account.save()
        run = add_run(account, ok=len(reads), refused=refused, started_at=started, finished_at=timezone.now())
        run.token, run.requests_per_second = token, 500.0
        run.save()
        file_run(run=run, audit=audit_account(account=account))
        return run

    return make


def _recorded(account: Account, *, token: str, arrived, status: int, worker: int = 200) -> RecordedRequest:
    return RecordedRequest.objects.create(
        run_token=token,
        user=account.user,
        worker=worker,
        method="POST",
        path="/accounts/withdraw/",
        status=status,
        arrived_at=arrived,
        read_at=arrived + timedelta(microseconds=300),
        written_at=arrived + timedelta(microseconds=600) if status == 200 else None,
        answered_at=arrived + timedelta(microseconds=900),
    )
