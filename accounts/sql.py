"""The withdrawal's hot statements, written as SQL where the ORM would cost more.

Each is one statement where the ORM would send two (Django's ``QuerySet.update()`` answers a row
count, not the balance it wrote; Django has no per-transaction isolation level), or the same
statement at a fraction of the ORM's Python work per request (the ledger row: building a model
instance and compiling its INSERT take longer than SQLite takes to write it).
"""

from dataclasses import dataclass
from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone

from accounts.statements import (
    DEBIT,
    DEBIT_RETURNING,
    INSERT_LEDGER_ROW,
    LEDGER_COLUMNS,
    READ_BACK,
    SET_BALANCE,
    SET_BALANCE_IF_VERSION,
)

# PostgreSQL writes the debit and its ledger row in one statement, atomic by itself: no BEGIN,
# no COMMIT, one round trip where a transaction would take four.
_DEBIT_AND_RECORD = f"""
    WITH debited AS ({DEBIT_RETURNING})
    INSERT INTO accounts_transaction {LEDGER_COLUMNS}
    SELECT id, %s, current + %s, current, %s, %s, %s FROM debited
    RETURNING holder_id, balance
"""


def _set_and_record(update: str) -> str:
    """``update`` and the ledger row in one PostgreSQL statement: the row only if it wrote."""
    return f"""
        WITH written AS ({update} RETURNING id)
        INSERT INTO accounts_transaction {LEDGER_COLUMNS}
        SELECT id, %s, %s, %s, %s, %s, %s FROM written
        RETURNING id
    """


_SET_BALANCE_AND_RECORD = _set_and_record(SET_BALANCE)
_SET_BALANCE_IF_VERSION_AND_RECORD = _set_and_record(SET_BALANCE_IF_VERSION)


@dataclass(frozen=True, kw_only=True)
class Debit:
    account_id: int
    balance: int


def debit_first_account(*, user_id: int, amount: int) -> Debit | None:
    """Take ``amount`` from the user's first account unless that would go below its minimum:
    the balance left, or None when nothing was taken (no account, or not enough in it).

    Call it inside a transaction: on MariaDB the balance is read back by a second statement.
    """
    with connection.cursor() as cursor:
        if connection.vendor == "mysql":
            cursor.execute(DEBIT, [amount, user_id, amount])
            if cursor.rowcount == 0:
                return None
            cursor.execute(READ_BACK, [user_id])
        else:
            cursor.execute(DEBIT_RETURNING, [amount, user_id, amount])
        row = cursor.fetchone()
    return None if row is None else Debit(account_id=row[0], balance=row[1])


def debit_and_record(
    *, user_id: int, amount: int, strategy: str, request_started_at: datetime
) -> Debit | None:
    """``debit_first_account()`` and, if it took the money, the ledger row, together or not at all."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                _DEBIT_AND_RECORD,
                [amount, user_id, amount, amount, amount, strategy, request_started_at, timezone.now()],
            )
            row = cursor.fetchone()
        return None if row is None else Debit(account_id=row[0], balance=row[1])
    with transaction.atomic():
        debited = debit_first_account(user_id=user_id, amount=amount)
        if debited is not None:
            insert_ledger_row(
                account_id=debited.account_id,
                amount=amount,
                before=debited.balance + amount,
                after=debited.balance,
                strategy=strategy,
                request_started_at=request_started_at,
            )
    return debited


def set_balance_and_record(
    *,
    account_id: int,
    amount: int,
    before: int,
    version: int | None = None,
    strategy: str,
    request_started_at: datetime,
) -> bool:
    """Write ``before - amount`` as the balance and its ledger row, together or not at all;
    with ``version``, only if the row still has that version. True if they were written.

    In the caller's transaction if there is one (no SAVEPOINT), else on their own.
    """
    after = before - amount
    update, update_params = (
        (SET_BALANCE, [after, account_id])
        if version is None
        else (SET_BALANCE_IF_VERSION, [after, account_id, version])
    )
    if connection.vendor == "postgresql":
        one_statement = _SET_BALANCE_AND_RECORD if version is None else _SET_BALANCE_IF_VERSION_AND_RECORD
        with connection.cursor() as cursor:
            cursor.execute(
                one_statement,
                [*update_params, amount, before, after, strategy, request_started_at, timezone.now()],
            )
            return cursor.fetchone() is not None
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        cursor.execute(update, update_params)
        if cursor.rowcount == 0:
            return False
        insert_ledger_row(
            account_id=account_id,
            amount=amount,
            before=before,
            after=after,
            strategy=strategy,
            request_started_at=request_started_at,
        )
    return True


def insert_ledger_row(
    *, account_id: int, amount: int, before: int, after: int, strategy: str, request_started_at: datetime
) -> None:
    """The row ``Transaction.objects.create()`` would write, ``created_at`` included."""
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.execute(
            INSERT_LEDGER_ROW,
            [account_id, amount, before, after, strategy, adapt(request_started_at), adapt(timezone.now())],
        )
