"""The withdrawal's hot statements, written as SQL where the ORM would cost more.

Each is one statement where the ORM would send two (Django's ``QuerySet.update()`` answers a row
count, not the balance it wrote; Django has no per-transaction isolation level), or the same
statement at a fraction of the ORM's Python work per request (the ledger row: building a model
instance and compiling its INSERT take longer than SQLite takes to write it). On MariaDB, which
has no ``UPDATE ... RETURNING``, a write and its ledger row go as one batch instead: several
statements in one query, one round trip, with their transaction's START and COMMIT.
"""

from dataclasses import dataclass
from datetime import datetime

from django.db import Error, IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from accounts.statements import (
    DEBIT,
    DEBIT_AND_RECORD,
    DEBIT_RETURNING,
    INSERT_LEDGER_ROW,
    INSERT_LEDGER_ROW_IF_WRITTEN,
    LEDGER_COLUMNS,
    RECORD_DEBIT,
    SET_BALANCE,
    SET_BALANCE_IF_VERSION,
)

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
                DEBIT_AND_RECORD,
                [amount, user_id, amount, amount, amount, strategy, request_started_at, timezone.now()],
            )
            row = cursor.fetchone()
        return None if row is None else Debit(account_id=row[0], balance=row[1])
    if connection.vendor == "mysql":
        adapt = connection.ops.adapt_datetimefield_value
        record = [amount, amount, strategy, adapt(request_started_at), adapt(timezone.now()), user_id]
        _, rows = _in_one_round_trip([DEBIT, RECORD_DEBIT], [amount, user_id, amount, *record])
        return Debit(account_id=rows[0][0], balance=rows[0][1]) if rows else None
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
    ledger_row = dict(
        account_id=account_id,
        amount=amount,
        before=before,
        after=before - amount,
        strategy=strategy,
        request_started_at=request_started_at,
    )
    if connection.vendor == "mysql":
        written, _ = _in_one_round_trip(
            [update, INSERT_LEDGER_ROW_IF_WRITTEN], params + _ledger_values(**ledger_row)
        )
        return written == 1
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        cursor.execute(update, params)
        if cursor.rowcount == 0:
            return False
        insert_ledger_row(**ledger_row)
    return True


def _in_one_round_trip(statements: list[str], params: list) -> tuple[int, tuple]:
    """MariaDB: ``statements`` sent as one query, in the caller's transaction if there is one,
    else in one of their own (START TRANSACTION and COMMIT in the same query): the last
    statement's row count and rows.

    The server stops at a statement that fails, and the error reaches us as we read that
    statement's result; a transaction of their own is then rolled back (as Django's atomic()
    does, a connection that cannot roll back is closed, so no later statement can run inside the
    half-done transaction: the server drops it with the connection), the caller's is marked for
    rollback.
    """
    of_their_own = not connection.in_atomic_block and connection.get_autocommit()
    if of_their_own:
        statements = ["START TRANSACTION", *statements, "COMMIT"]
    batch = ";\n".join(statements)
    results: list[tuple[int, tuple]] = []
    try:
        # Read to the last result inside the execute call, so that whoever wraps it (the race
        # window, the lab report's marks) sees it end once the batch has run, COMMIT and all.
        with connection.execute_wrapper(_every_result_of(batch, into=results)), connection.cursor() as cursor:
            cursor.execute(batch, params)
    except BaseException:
        if of_their_own:
            _roll_back_or_close()
        elif connection.in_atomic_block:
            transaction.set_rollback(True)
        raise
    if len(results) != len(statements):
        raise InterfaceError(
            f"{len(statements)} statements sent as one query answered {len(results)} results"
        )
    return results[-2 if of_their_own else -1]


def _every_result_of(batch: str, *, into: list[tuple[int, tuple]]):
    """An execute wrapper that reads every result of ``batch``, a multi-statement query, into
    ``into``: each statement's row count and rows. Other statements (an outer wrapper's) pass."""

    def read_every_result(execute, sql, params, many, context):
        answer = execute(sql, params, many, context)
        if sql is not batch:
            return answer
        cursor = context["cursor"]
        into.append((cursor.rowcount, cursor.fetchall()))
        while _next_result(cursor):
            into.append((cursor.rowcount, cursor.fetchall()))
        return answer

    return read_every_result


def _roll_back_or_close() -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("ROLLBACK")
    except Error:
        connection.close()


def _next_result(cursor) -> bool:
    """Whether there is another statement's result, failing as ``cursor.execute()`` would: Django's
    MySQL cursor makes some errors (a NULL in a NOT NULL column, a failed CHECK) IntegrityError
    in execute() alone."""
    try:
        return bool(cursor.nextset())
    except OperationalError as error:
        if error.args[0] in cursor.cursor.codes_for_integrityerror:
            raise IntegrityError(*error.args) from error
        raise


def _ledger_values(
    *, account_id: int, amount: int, before: int, after: int, strategy: str, request_started_at: datetime
) -> list:
    adapt = connection.ops.adapt_datetimefield_value
    return [account_id, amount, before, after, strategy, adapt(request_started_at), adapt(timezone.now())]


def insert_ledger_row(
    *, account_id: int, amount: int, before: int, after: int, strategy: str, request_started_at: datetime
) -> None:
    """The row ``Transaction.objects.create()`` would write, ``created_at`` included."""
    with connection.cursor() as cursor:
        cursor.execute(
            INSERT_LEDGER_ROW,
            _ledger_values(
                account_id=account_id,
                amount=amount,
                before=before,
                after=after,
                strategy=strategy,
                request_started_at=request_started_at,
            ),
        )
