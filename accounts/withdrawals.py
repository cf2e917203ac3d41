"""The withdrawal service: one naive strategy (the blog's bug) and four correct ones."""

import enum
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.db import DatabaseError, connection, transaction
from django.db.models import F

from accounts import race_window
from accounts.models import Account, Transaction

logger = logging.getLogger(__name__)

# Balances are 32-bit integers on every backend; no single withdrawal may come near that.
MAX_WITHDRAWAL_AMOUNT = 1_000_000

# Retried attempts compete with fresh requests that never sleep, so the budget must outlast a
# queue of them: 20 attempts, each waiting a random 0 to min(64 ms, 2 ms * 2**attempt).
OPTIMISTIC_MAX_ATTEMPTS = 20
SERIALIZABLE_MAX_ATTEMPTS = 20
RETRY_BASE_DELAY_SECONDS = 0.002
RETRY_MAX_DELAY_SECONDS = 0.064


class Strategy(enum.StrEnum):
    NAIVE = "naive"
    ATOMIC_UPDATE = "atomic_update"
    LOCKING = "locking"
    OPTIMISTIC = "optimistic"
    SERIALIZABLE = "serializable"


SAFE_STRATEGIES = tuple(strategy for strategy in Strategy if strategy is not Strategy.NAIVE)


class WithdrawalRefused(Exception):
    """The withdrawal did not happen and changed nothing; the message says why."""


class InsufficientFunds(WithdrawalRefused):
    pass


class WithdrawalConflict(WithdrawalRefused):
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
    *, account: Account, amount: int, strategy: Strategy, request_started_at: datetime
) -> Withdrawal:
    """Withdraw ``amount`` from ``account`` with ``strategy``.

    Every strategy but ``naive`` writes the balance change and its ledger row together or
    not at all, and refuses (``InsufficientFunds``) a withdrawal that would take the balance
    below the account's minimum.
    """
    if not 1 <= amount <= MAX_WITHDRAWAL_AMOUNT:
        raise ValueError(f"amount must be from 1 to {MAX_WITHDRAWAL_AMOUNT}, not {amount}")
    order = _Order(account=account, amount=amount, strategy=strategy, request_started_at=request_started_at)
    return _IMPLEMENTATIONS[strategy](order)


@dataclass(frozen=True, kw_only=True)
class _Order:
    """One requested withdrawal, as each strategy receives it."""

    account: Account
    amount: int
    strategy: Strategy
    request_started_at: datetime

    def refuse(self, *, balance: int, minimum: int) -> InsufficientFunds:
        return InsufficientFunds(
            f"Insufficient funds: account {self.account.pk} holds {balance}; withdrawing "
            f"{self.amount} would take it below its minimum of {minimum}."
        )

    def commit(self, *, before: int, attempts: int = 1) -> Withdrawal:
        """The step every strategy ends with, having read ``before`` and written ``before -
        amount``: the ledger row, then the result the view answers with."""
        after = before - self.amount
        Transaction.objects.create(
            holder_id=self.account.pk,
            amount=self.amount,
            balance_before=before,
            balance=after,
            strategy=self.strategy,
            request_started_at=self.request_started_at,
        )
        return Withdrawal(
            account_id=self.account.pk,
            amount=self.amount,
            balance_before=before,
            balance_after=after,
            strategy=self.strategy,
            attempts=attempts,
        )


def _naive(order: _Order) -> Withdrawal:
    # The blog's code, kept as the bug: make_withdrawl() checks and save()s a balance computed
    # from the read the view made when it loaded the account, and the ledger row is written
    # afterwards, outside any transaction.
    account = order.account
    before = account.current
    race_window.after_read(account_id=account.pk)
    # make_withdrawl() answers the balance it left: unchanged means refused (amount is at least 1).
    if account.make_withdrawl(value=order.amount) == before:
        raise order.refuse(balance=before, minimum=account.minimum)
    return order.commit(before=before)


def _atomic_update(order: _Order) -> Withdrawal:
    pk, amount = order.account.pk, order.amount
    with transaction.atomic():
        updated = Account.objects.filter(pk=pk, current__gte=F("minimum") + amount).update(
            current=F("current") - amount
        )
        # Reading back under the row lock our UPDATE holds (or SQLite's write lock) sees
        # exactly the balance we wrote.
        after, minimum = Account.objects.values_list("current", "minimum").get(pk=pk)
        race_window.after_read(account_id=pk)
        if not updated:
            raise order.refuse(balance=after, minimum=minimum)
        return order.commit(before=after + amount)


def _locking(order: _Order) -> Withdrawal:
    with transaction.atomic():
        locked = Account.objects.select_for_update().get(pk=order.account.pk)
        before = locked.current
        race_window.after_read(account_id=locked.pk)
        if before - order.amount < locked.minimum:
            raise order.refuse(balance=before, minimum=locked.minimum)
        locked.current = before - order.amount
        locked.save(update_fields=["current"])
        return order.commit(before=before)


def _optimistic(order: _Order) -> Withdrawal:
    pk = order.account.pk
    for attempt in range(1, OPTIMISTIC_MAX_ATTEMPTS + 1):
        with transaction.atomic():
            before, minimum, version = Account.objects.values_list("current", "minimum", "version").get(pk=pk)
            race_window.after_read(account_id=pk)
            if before - order.amount < minimum:
                raise order.refuse(balance=before, minimum=minimum)
            won = Account.objects.filter(pk=pk, version=version).update(
                current=before - order.amount, version=version + 1
            )
            if won:
                return order.commit(before=before, attempts=attempt)
        _back_off(attempt=attempt)
    raise WithdrawalConflict(
        f"Conflict: account {pk} changed under {OPTIMISTIC_MAX_ATTEMPTS} attempts in a "
        "row; nothing was withdrawn, try again."
    )


def _serializable(order: _Order) -> Withdrawal:
    # The naive read-check-write, made correct by the database alone: SERIALIZABLE isolation
    # on PostgreSQL and MariaDB (SQLite's IMMEDIATE transactions are serial already). A
    # serialization failure or deadlock rolls the whole attempt back, so retrying is safe;
    # durable=True guarantees no outer transaction would be retried with us half done.
    pk = order.account.pk
    for attempt in range(1, SERIALIZABLE_MAX_ATTEMPTS + 1):
        try:
            with transaction.atomic(durable=True):
                _set_serializable_isolation()
                current = Account.objects.get(pk=pk)
                before = current.current
                race_window.after_read(account_id=pk)
                if before - order.amount < current.minimum:
                    raise order.refuse(balance=before, minimum=current.minimum)
                current.current = before - order.amount
                current.save(update_fields=["current"])
                return order.commit(before=before, attempts=attempt)
        except DatabaseError as error:
            if not _is_serialization_failure(error):
                raise
            logger.info("serializable withdrawal retried after: %s", error)
            _back_off(attempt=attempt)
    raise WithdrawalConflict(
        f"Conflict: the database refused to serialize a withdrawal from account {pk} "
        f"{SERIALIZABLE_MAX_ATTEMPTS} times in a row; nothing was withdrawn, try again."
    )


def _set_serializable_isolation() -> None:
    if connection.vendor in ("postgresql", "mysql"):
        # First statement of the transaction on PostgreSQL; on MySQL/MariaDB it applies to the
        # transaction that the next statement starts implicitly.
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")


# SQLSTATE 40001 (serialization failure) and 40P01 (deadlock) on PostgreSQL; MySQL error
# codes 1213 (deadlock) and 1205 (lock wait timeout) on MariaDB.
_RETRYABLE_SQLSTATES = {"40001", "40P01"}
_RETRYABLE_MYSQL_CODES = {1213, 1205}


def _is_serialization_failure(error: DatabaseError) -> bool:
    cause = error.__cause__
    if getattr(cause, "sqlstate", None) in _RETRYABLE_SQLSTATES:
        return True
    args = getattr(cause, "args", ())
    return bool(args) and args[0] in _RETRYABLE_MYSQL_CODES


def _back_off(*, attempt: int) -> None:
    # Full jitter: spreading the retries apart is what lets one of them win next time.
    time.sleep(random.uniform(0, min(RETRY_MAX_DELAY_SECONDS, RETRY_BASE_DELAY_SECONDS * 2**attempt)))


_IMPLEMENTATIONS: dict[Strategy, Callable[[_Order], Withdrawal]] = {
    Strategy.NAIVE: _naive,
    Strategy.ATOMIC_UPDATE: _atomic_update,
    Strategy.LOCKING: _locking,
    Strategy.OPTIMISTIC: _optimistic,
    Strategy.SERIALIZABLE: _serializable,
}
