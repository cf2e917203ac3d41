"""Fill a large, consistent ledger fast, for benchmarks and demos of the audit at scale.

Django's ``bulk_create`` builds a model instance per row and, on SQLite, splits the rows into
statements of at most 999 parameters; a million rows take about a minute. Here the rows are
plain tuples sent with the driver's ``executemany`` in batches, one transaction in all, so the
fill costs about what the database itself needs (PostgreSQL gets COPY, where psycopg's
``executemany`` would bind and send the rows one by one).

The history is consistent: each account's rows withdraw ``amount`` one after the other from its
balance, and the balance ends where the rows say it does, so ``audit_transactions`` reports OK.
"""

from collections.abc import Iterator
from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import DEFAULT_OPENING_BALANCE, Account, Transaction
from accounts.provisioning import MAX_BALANCE
from accounts.selectors import account_for_user
from accounts.withdrawals import MAX_WITHDRAWAL_AMOUNT, Strategy

DEFAULT_PREFIX = "ledger"
MAX_FILL_ROWS = 100_000_000
MAX_FILL_ACCOUNTS = 1_000
# Rows per executemany call: large enough that the per-call cost vanishes, small enough that
# the tuples of one batch stay a few megabytes whatever the total.
BATCH_ROWS = 20_000

_COLUMNS = (
    "holder_id",
    "amount",
    "balance_before",
    "balance",
    "strategy",
    "request_started_at",
    "created_at",
)


class LedgerFillError(ValueError):
    pass


@dataclass(frozen=True)
class FilledAccount:
    username: str
    account_id: int
    rows: int
    balance_before: int
    balance_after: int


def fill_ledger(
    *,
    rows: int,
    accounts: int,
    amount: int = 1,
    strategy: Strategy = Strategy.ATOMIC_UPDATE,
    prefix: str = DEFAULT_PREFIX,
) -> list[FilledAccount]:
    """Append ``rows`` withdrawals of ``amount``, shared out over ``accounts`` accounts.

    The accounts belong to users ``<prefix>-01``, ``<prefix>-02``, ... (created with no usable
    password, as they are not for logging in); a new account opens with enough to cover its
    share. An existing one continues from its balance; a share it cannot cover above its
    minimum is refused. All or nothing: one transaction, rolled back whole on any refusal.
    """
    _validate(rows=rows, accounts=accounts, amount=amount, prefix=prefix)
    shares = [rows // accounts + (1 if index < rows % accounts else 0) for index in range(accounts)]
    usernames = [f"{prefix}-{index + 1:0{max(2, len(str(accounts)))}d}" for index in range(accounts)]
    stamp = connection.ops.adapt_datetimefield_value(timezone.now())
    filled = []
    with transaction.atomic():
        for username, share in zip(usernames, shares, strict=True):
            account = _locked_account(username=username, needed=share * amount)
            _insert_rows(
                account_id=account.pk,
                start=account.current,
                rows=share,
                amount=amount,
                strategy=strategy.value,
                stamp=stamp,
            )
            after = account.current - share * amount
            Account.objects.filter(pk=account.pk).update(current=after)
            filled.append(FilledAccount(username, account.pk, share, account.current, after))
    _refresh_statistics()
    return filled


def _validate(*, rows: int, accounts: int, amount: int, prefix: str) -> None:
    if not 1 <= rows <= MAX_FILL_ROWS:
        raise LedgerFillError(f"The number of rows must be from 1 to {MAX_FILL_ROWS}, not {rows}.")
    if not 1 <= accounts <= min(rows, MAX_FILL_ACCOUNTS):
        raise LedgerFillError(
            f"The number of accounts must be from 1 to the number of rows ({rows}) and at most "
            f"{MAX_FILL_ACCOUNTS}, not {accounts}."
        )
    if not 1 <= amount <= MAX_WITHDRAWAL_AMOUNT:
        raise LedgerFillError(f"The amount must be from 1 to {MAX_WITHDRAWAL_AMOUNT}, not {amount}.")
    if -(-rows // accounts) * amount > MAX_BALANCE:
        raise LedgerFillError(
            f"{rows} rows of {amount} over {accounts} account(s) would need balances above "
            f"{MAX_BALANCE}: use more accounts or a smaller amount."
        )
    if not prefix or not prefix.replace("-", "").replace("_", "").isalnum():
        raise LedgerFillError(f"The prefix must be letters, digits, '-' or '_', not {prefix!r}.")


def _locked_account(*, username: str, needed: int) -> Account:
    user, created = User.objects.get_or_create(username=username)
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    account = account_for_user(user=user, for_update=True)
    if account is None:
        opening = max(DEFAULT_OPENING_BALANCE, needed)
        return Account.objects.create(user=user, opening=opening, current=opening)
    if account.current - needed < account.minimum:
        raise LedgerFillError(
            f"Account {account.pk} ({username}) holds {account.current}, only "
            f"{max(account.current - account.minimum, 0)} above its minimum, and cannot cover "
            f"{needed} more; reset it (`manage.py reset_balances --username {username}`) or fill "
            "fewer rows. Nothing was written."
        )
    return account


def _insert_rows(*, account_id: int, start: int, rows: int, amount: int, strategy: str, stamp) -> None:
    table = connection.ops.quote_name(Transaction._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(column) for column in _COLUMNS)
    with connection.cursor() as cursor:
        for batch in _batches(start=start, rows=rows, amount=amount):
            values = [
                (account_id, amount, before, before - amount, strategy, stamp, stamp) for before in batch
            ]
            if connection.vendor == "postgresql":
                # psycopg's executemany binds every row client-side: COPY is the bulk path.
                with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    for row in values:
                        copy.write_row(row)
            else:
                placeholders = ", ".join(["%s"] * len(_COLUMNS))
                cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({placeholders})", values)


def _refresh_statistics() -> None:
    # After a bulk load PostgreSQL's planner still believes the table is small until autovacuum
    # comes round; SQLite and InnoDB plan well without fresh statistics.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(Transaction._meta.db_table)}")


def _batches(*, start: int, rows: int, amount: int) -> Iterator[range]:
    """The balance each row reads, ``BATCH_ROWS`` at a time: start, start - amount, ..."""
    for first in range(0, rows, BATCH_ROWS):
        count = min(BATCH_ROWS, rows - first)
        top = start - first * amount
        yield range(top, top - count * amount, -amount)
