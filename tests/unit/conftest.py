"""Fixtures for the unit tests: users, accounts, ledgers and a "nothing changed" check."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.contrib.auth.models import User

from accounts.models import Account, ClientRun, Transaction
from accounts.withdrawals import Strategy
from tests.helpers import PASSWORD, STARTED_AT, database_snapshot


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    """PBKDF2's deliberate slowness (~0.5 s a hash) buys a unit test nothing."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


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
def add_client_run() -> Callable[..., ClientRun]:
    def add(
        account: Account, *, ok: int, failed: int = 0, indeterminate: int = 0, amount: int = 1
    ) -> ClientRun:
        return ClientRun.objects.create(
            account=account,
            driver="ab",
            strategy=Strategy.NAIVE,
            amount=amount,
            requests=ok + failed + indeterminate,
            ok=ok,
            failed=failed,
            indeterminate=indeterminate,
            started_at=STARTED_AT,
            finished_at=STARTED_AT + timedelta(seconds=1),
        )

    return add
