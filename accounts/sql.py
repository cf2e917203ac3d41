"""The withdrawal's hot statements, written as SQL where the ORM would cost more.

Each is one statement where the ORM would send two (Django's ``QuerySet.update()`` answers a row
count, not the balance it wrote; Django has no per-transaction isolation level), or the same
statement at a fraction of the ORM's Python work per request (the ledger row: building a model
instance and compiling its INSERT take longer than SQLite takes to write it).
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from django.db import Error, connection, transaction
from django.utils import timezone

from accounts.statements import (
    DEBIT,
    DEBIT_RETURNING,
    INSERT_LEDGER_ROW,
    LEDGER_COLUMNS,
    RECORD_DEBIT,
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


# The locking strategies' write on PostgreSQL: the balance and its ledger row in one statement.
_SET_BALANCE_AND_RECORD = f"""
    WITH written AS ({SET_BALANCE} RETURNING id)
    INSERT INTO accounts_transaction {LEDGER_COLUMNS}
    SELECT id, %s, %s, %s, %s, %s, %s FROM written
"""
# optimistic's write on PostgreSQL, answering in the same statement whether it wrote and, if it
# did not, the row as it is now: the locking read waits for a rival still writing it and returns
# the newest committed version (READ COMMITTED), so a retry can start from there at once.
_SET_BALANCE_IF_VERSION_AND_RECORD = f"""
    WITH written AS ({SET_BALANCE_IF_VERSION} RETURNING id),
    recorded AS (
        INSERT INTO accounts_transaction {LEDGER_COLUMNS}
        SELECT id, %s, %s, %s, %s, %s, %s FROM written
        RETURNING id
    ),
    found AS (
        SELECT id, current, minimum, version FROM accounts_account
        WHERE id = %s AND NOT EXISTS (SELECT FROM written)
        FOR UPDATE
    )
    SELECT EXISTS (SELECT FROM recorded), found.* FROM (SELECT) AS one_row LEFT JOIN found ON true
"""


@dataclass(frozen=True, kw_only=True)
class Debit:
    account_id: int
    balance: int


def debit_and_record(
    *, user_id: int, amount: int, strategy: str, request_started_at: datetime
) -> Debit | None:
    """Take ``amount`` from the user's first account unless that would go below its minimum,
    and write its ledger row, together or not at all: the balance left, or None when nothing
    was taken (no account, or not enough in it)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                _DEBIT_AND_RECORD,
                [amount, user_id, amount, amount, amount, strategy, request_started_at, timezone.now()],
            )
            row = cursor.fetchone()
        return None if row is None else Debit(account_id=row[0], balance=row[1])
    if connection.vendor == "mysql":
        adapt = connection.ops.adapt_datetimefield_value
        with _transaction_of_their_own(), connection.cursor() as cursor:
            cursor.execute(DEBIT, [amount, user_id, amount])
            if cursor.rowcount == 0:
                return None
            cursor.execute(
                RECORD_DEBIT,
                [amount, amount, strategy, adapt(request_started_at), adapt(timezone.now()), user_id],
            )
            account_id, balance = cursor.fetchone()
        return Debit(account_id=account_id, balance=balance)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(DEBIT_RETURNING, [amount, user_id, amount])
            row = cursor.fetchone()
        if row is None:
            return None
        debited = Debit(account_id=row[0], balance=row[1])
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
    *, account_id: int, amount: int, before: int, strategy: str, request_started_at: datetime
) -> None:
    """Write ``before - amount`` as the balance and its ledger row, together or not at all.

    In the caller's transaction if there is one (no SAVEPOINT), else on their own.
    """
    after = before - amount
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                _SET_BALANCE_AND_RECORD,
                [after, account_id, amount, before, after, strategy, request_started_at, timezone.now()],
            )
        return
    _write_and_record(
        SET_BALANCE,
        [after, account_id],
        account_id=account_id,
        amount=amount,
        before=before,
        strategy=strategy,
        request_started_at=request_started_at,
    )


@dataclass(frozen=True, kw_only=True)
class VersionedWrite:
    written: bool
    # When not written, on PostgreSQL: (id, balance, minimum, version) as they are now, None if
    # the account is gone. None on the other databases, which do not answer it.
    found: tuple[int, int, int, int] | None = None


def set_balance_and_record_if_version(
    *, account_id: int, amount: int, before: int, version: int, strategy: str, request_started_at: datetime
) -> VersionedWrite:
    """``set_balance_and_record()`` only if the account still has ``version``; on their own."""
    after = before - amount
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                _SET_BALANCE_IF_VERSION_AND_RECORD,
                [
                    *(after, account_id, version),
                    *(amount, before, after, strategy, request_started_at, timezone.now()),
                    account_id,
                ],
            )
            written, *found = cursor.fetchone()
        return VersionedWrite(written=written, found=None if written or found[0] is None else tuple(found))
    written = _write_and_record(
        SET_BALANCE_IF_VERSION,
        [after, account_id, version],
        account_id=account_id,
        amount=amount,
        before=before,
        strategy=strategy,
        request_started_at=request_started_at,
    )
    return VersionedWrite(written=written)


def _write_and_record(
    update: str,
    params: list,
    *,
    account_id: int,
    amount: int,
    before: int,
    strategy: str,
    request_started_at: datetime,
) -> bool:
    """``update`` and, if it changed the row, the ledger row: in the caller's transaction if
    there is one (no SAVEPOINT), else in one of their own. True if they were written."""
    with _transaction_of_their_own(), connection.cursor() as cursor:
        cursor.execute(update, params)
        if cursor.rowcount == 0:
            return False
        insert_ledger_row(
            account_id=account_id,
            amount=amount,
            before=before,
            after=before - amount,
            strategy=strategy,
            request_started_at=request_started_at,
        )
    return True


@contextmanager
def _transaction_of_their_own() -> Iterator[None]:
    """The statements inside run in one transaction: the caller's if there is one (no
    SAVEPOINT), else their own.

    On MariaDB, outside any atomic block, that is START TRANSACTION ... COMMIT: two round trips
    where Django's ``atomic()`` sends three (``SET autocommit=0``, COMMIT, ``SET autocommit=1``),
    and the connection never leaves autocommit mode. Only plain statements may run inside: no
    ``atomic()`` and no ``on_commit()``, which would not know a transaction is open.
    """
    if connection.vendor != "mysql" or connection.in_atomic_block or not connection.get_autocommit():
        with transaction.atomic(savepoint=False):
            yield
        return
    with connection.cursor() as cursor:
        cursor.execute("START TRANSACTION")
        try:
            yield
            cursor.execute("COMMIT")
        except BaseException:
            # The failure stays the error the caller sees. As Django's atomic() does, a
            # connection that cannot roll back is closed, so no later statement can run inside
            # the half-done transaction (the server drops it with the connection).
            try:
                cursor.execute("ROLLBACK")
            except Error:
                connection.close()
            raise


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
