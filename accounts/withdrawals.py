"""The withdrawal service: one naive strategy (the blog's bug) and four correct ones."""

import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from django.contrib.auth.models import AbstractBaseUser
from django.db import DatabaseError, transaction

from accounts.models import Account
from accounts.selectors import account_for_user, balance_for_user
from accounts.sql import (
    VersionedWrite,
    debit_and_record,
    insert_ledger_row,
    set_balance_and_record,
    set_balance_and_record_if_version,
)
from races.refusals import NotFound, Refused
from races.serializable import MAX_ATTEMPTS, back_off, is_serialization_failure, serializable_transaction

logger = logging.getLogger(__name__)

# Balances are 32-bit integers on every backend; no single withdrawal may come near that.
MAX_WITHDRAWAL_AMOUNT = 1_000_000

# Retried attempts compete with fresh requests that never sleep (races/serializable.py).
OPTIMISTIC_MAX_ATTEMPTS = MAX_ATTEMPTS
SERIALIZABLE_MAX_ATTEMPTS = MAX_ATTEMPTS
# The log line of a withdrawal that ran out of attempts.
GAVE_UP = "withdrawal gave up"


class Strategy(enum.StrEnum):
    NAIVE = "naive"
    ATOMIC_UPDATE = "atomic_update"
    LOCKING = "locking"
    OPTIMISTIC = "optimistic"
    SERIALIZABLE = "serializable"


SAFE_STRATEGIES = tuple(strategy for strategy in Strategy if strategy is not Strategy.NAIVE)


class InsufficientFunds(Refused):
    """The withdrawal would take the balance below the account's minimum."""


class WithdrawalConflict(Refused):
    """Concurrent withdrawals kept winning the race until the retries ran out."""


@dataclass(frozen=True, kw_only=True)
class Withdrawal:
    account_id: int
    amount: int
    balance_before: int
    balance_after: int
    strategy: Strategy
    attempts: int


def withdraw(
    *, user: AbstractBaseUser, amount: int, strategy: Strategy, request_started_at: datetime
) -> Withdrawal:
    """Withdraw ``amount`` from the user's account (the first, should they have several) with
    ``strategy``; ``NotFound`` if they have none.

    Every strategy finds the account itself, with the statement it needs anyway (a locking read,
    the conditional UPDATE): a look-up beforehand would be a statement that pays for nothing.
    Every strategy but ``naive`` writes the balance change and its ledger row together or not at
    all, and refuses (``InsufficientFunds``) a withdrawal that would take the balance below the
    account's minimum.
    """
    if not 1 <= amount <= MAX_WITHDRAWAL_AMOUNT:
        raise ValueError(f"amount must be from 1 to {MAX_WITHDRAWAL_AMOUNT}, not {amount}")
    order = _Order(user=user, amount=amount, strategy=strategy, request_started_at=request_started_at)
    return _IMPLEMENTATIONS[strategy](order)


class _Balance(NamedTuple):
    account_id: int
    balance: int
    minimum: int
    version: int


@dataclass(frozen=True, kw_only=True)
class _Order:
    """One requested withdrawal, as each strategy receives it."""

    user: AbstractBaseUser
    amount: int
    strategy: Strategy
    request_started_at: datetime

    def account(self) -> Account:
        """The user's account as a model instance, as the blog's view loads it."""
        account = account_for_user(user=self.user)
        if account is None:
            raise NotFound(f"User {self.user.pk} has no account.")
        return account

    def read(self, *, for_update: bool = False) -> "_Balance":
        """The account the user withdraws from, as the values a strategy decides on."""
        row = balance_for_user(user=self.user, for_update=for_update)
        if row is None:
            raise NotFound(f"User {self.user.pk} has no account.")
        return _Balance(*row)

    def refuse(self, read: "_Balance") -> InsufficientFunds:
        return InsufficientFunds(
            f"Insufficient funds: account {read.account_id} holds {read.balance}; withdrawing "
            f"{self.amount} would take it below its minimum of {read.minimum}."
        )

    def write(self, read: "_Balance") -> None:
        """The balance ``read`` decided on and its ledger row, together or not at all (one
        statement on PostgreSQL)."""
        set_balance_and_record(
            account_id=read.account_id,
            amount=self.amount,
            before=read.balance,
            strategy=self.strategy.value,
            request_started_at=self.request_started_at,
        )

    def write_if_unchanged(self, read: "_Balance") -> VersionedWrite:
        """``write()``, only if no one wrote the account since ``read``."""
        return set_balance_and_record_if_version(
            account_id=read.account_id,
            amount=self.amount,
            before=read.balance,
            version=read.version,
            strategy=self.strategy.value,
            request_started_at=self.request_started_at,
        )

    def record(self, *, account_id: int, before: int) -> Withdrawal:
        """naive's last step, after its save(): the ledger row on its own."""
        insert_ledger_row(
            account_id=account_id,
            amount=self.amount,
            before=before,
            after=before - self.amount,
            strategy=self.strategy.value,
            request_started_at=self.request_started_at,
        )
        return self.result(account_id=account_id, before=before)

    def result(self, *, account_id: int, before: int, attempts: int = 1) -> Withdrawal:
        return Withdrawal(
            account_id=account_id,
            amount=self.amount,
            balance_before=before,
            balance_after=before - self.amount,
            strategy=self.strategy,
            attempts=attempts,
        )


def _naive(order: _Order) -> Withdrawal:
    # The blog's code, kept as the bug: its view loads the account, make_withdrawl() checks and
    # save()s a balance computed from that read, and the ledger row is written afterwards,
    # outside any transaction.
    account = order.account()
    before = account.current
    # make_withdrawl() answers the balance it left: unchanged means refused (amount is at least 1).
    if account.make_withdrawl(value=order.amount) == before:
        raise order.refuse(_Balance(account.pk, before, account.minimum, account.version))
    return order.record(account_id=account.pk, before=before)


def _atomic_update(order: _Order) -> Withdrawal:
    # The check and the write in one conditional UPDATE, which answers the balance it left:
    # there is no moment between a read and a write for another withdrawal to slip into (and
    # no read for the race window to hold).
    debited = debit_and_record(
        user_id=order.user.pk,
        amount=order.amount,
        strategy=order.strategy.value,
        request_started_at=order.request_started_at,
    )
    if debited is None:
        raise order.refuse(order.read())
    return order.result(account_id=debited.account_id, before=debited.balance + order.amount)


def _locking(order: _Order) -> Withdrawal:
    with transaction.atomic():
        # The look-up is the locking read: SELECT ... FOR UPDATE holds the row until COMMIT.
        locked = order.read(for_update=True)
        if locked.balance - order.amount < locked.minimum:
            raise order.refuse(locked)
        order.write(locked)
        return order.result(account_id=locked.account_id, before=locked.balance)


def _optimistic(order: _Order) -> Withdrawal:
    # Read without a lock or a transaction (on SQLite, a transaction here would hold the
    # database's write lock); the write succeeds only if no one wrote in between.
    started = time.monotonic()
    read = order.read()
    for attempt in range(1, OPTIMISTIC_MAX_ATTEMPTS + 1):
        if read.balance - order.amount < read.minimum:
            raise order.refuse(read)
        outcome = order.write_if_unchanged(read)
        if outcome.written:
            return order.result(account_id=read.account_id, before=read.balance, attempts=attempt)
        if attempt == OPTIMISTIC_MAX_ATTEMPTS:
            break
        # Most first conflicts are one rival, who has committed by now: our failed write
        # waited for its row lock (PostgreSQL, InnoDB) or its commit (SQLite's write lock).
        # So the first retry goes at once, from the row as PostgreSQL's failed write answered
        # it, or from a new read; later ones back off first.
        if attempt > 1:
            back_off(attempt=attempt, lasted=time.monotonic() - started)
        started = time.monotonic()
        read = _Balance(*outcome.found) if attempt == 1 and outcome.found is not None else order.read()
    raise _gave_up(
        f"Conflict: account {read.account_id} changed under {OPTIMISTIC_MAX_ATTEMPTS} attempts in a "
        "row; nothing was withdrawn, try again."
    )


def _serializable(order: _Order) -> Withdrawal:
    # The naive read-check-write, made correct by the database alone: SERIALIZABLE isolation
    # on PostgreSQL and MariaDB (SQLite's IMMEDIATE transactions are serial already). A
    # serialization failure or deadlock rolls the whole attempt back, so retrying is safe;
    # durable=True guarantees no outer transaction would be retried with us half done.
    account_id = None
    for attempt in range(1, SERIALIZABLE_MAX_ATTEMPTS + 1):
        started = time.monotonic()
        try:
            with serializable_transaction():
                read = order.read()
                account_id = read.account_id
                if read.balance - order.amount < read.minimum:
                    raise order.refuse(read)
                order.write(read)
                return order.result(account_id=read.account_id, before=read.balance, attempts=attempt)
        except DatabaseError as error:
            if not is_serialization_failure(error):
                raise
            logger.info("serializable withdrawal retried after: %s", error)
            # On one row, PostgreSQL usually refuses our write once a rival's update of it has
            # committed (it waits for the rival to end first), so a new snapshot already sees
            # it; MariaDB's deadlock victim, retried at once, queues its share lock behind the
            # winner's and reads once the winner commits. So the first retry goes at once;
            # later ones back off first. No pause after the last attempt.
            if attempt == SERIALIZABLE_MAX_ATTEMPTS:
                break
            if attempt > 1:
                back_off(attempt=attempt, lasted=time.monotonic() - started)
    account = "your account" if account_id is None else f"account {account_id}"
    raise _gave_up(
        f"Conflict: the database refused to serialize a withdrawal from {account} "
        f"{SERIALIZABLE_MAX_ATTEMPTS} times in a row; nothing was withdrawn, try again."
    )


def _gave_up(reason: str) -> WithdrawalConflict:
    # Logged, unlike a refusal for want of funds: how often clients are told to try again is how
    # hot an account runs (bench/throughput.py counts these lines).
    logger.warning("%s: %s", GAVE_UP, reason)
    return WithdrawalConflict(reason)


_IMPLEMENTATIONS: dict[Strategy, Callable[[_Order], Withdrawal]] = {
    Strategy.NAIVE: _naive,
    Strategy.ATOMIC_UPDATE: _atomic_update,
    Strategy.LOCKING: _locking,
    Strategy.OPTIMISTIC: _optimistic,
    Strategy.SERIALIZABLE: _serializable,
}
