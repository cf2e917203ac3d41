"""Loading a large ledger: `fill_ledger` against a raw driver executemany (and Django's bulk_create).

    .venv/bin/python -m bench.ledger_loading --database sqlite --rows 1000000
    .venv/bin/python -m bench.ledger_loading --database postgres

All three write the same rows (10 accounts, one withdrawal of 1 per row) into an emptied
ledger of the same fresh database, one transaction each:

- fill_ledger: the service behind `manage.py fill_ledger` (COPY on PostgreSQL, executemany
  elsewhere), accounts and users included;
- raw executemany: the DB-API cursor of the driver (psycopg's server-side binding cursor on
  PostgreSQL), one INSERT statement and every row, the baseline. Goal: fill_ledger within 2x;
- bulk_create: Django's bulk_create of Transaction objects, for reference (once; it is slow).
"""

import statistics
from functools import partial

from tabulate import tabulate

from bench.harness import argument_parser, bench_lab, setup_django
from bench.timing import wall_time

ACCOUNTS = 10
BULK_CREATE_BATCH = 10_000


def main() -> None:
    parser = argument_parser(__doc__, rounds=3)
    parser.add_argument("--rows", type=int, default=1_000_000, help="Ledger rows (default: 1000000).")
    parser.add_argument(
        "--no-bulk-create", action="store_false", dest="bulk_create", help="Skip bulk_create."
    )
    args = parser.parse_args()

    with bench_lab(args.database) as lab_env:
        setup_django(lab_env)
        timings = measure(rows=args.rows, rounds=args.rounds, bulk_create=args.bulk_create)

    fill, raw = timings["fill_ledger"], timings["raw executemany"]
    print(f"database {args.database}, {args.rows} rows over {ACCOUNTS} accounts, {args.rounds} rounds\n")
    table = [
        (name, f"{statistics.median(seconds):.1f}", f"{args.rows / statistics.median(seconds):,.0f}")
        for name, seconds in timings.items()
    ]
    table.append(
        (
            "fill_ledger ÷ raw executemany (median of rounds)",
            "",
            f"{statistics.median(f / r for f, r in zip(fill, raw, strict=True)):.2f}",
        )
    )
    print(tabulate(table, headers=["method", "seconds (median)", "rows/s"], tablefmt="github"))


def measure(*, rows: int, rounds: int, bulk_create: bool) -> dict[str, list[float]]:
    from accounts.ledger_fill import fill_ledger

    timings = {"fill_ledger": [], "raw executemany": []}
    for _ in range(rounds):
        timings["fill_ledger"].append(wall_time(partial(fill_ledger, rows=rows, accounts=ACCOUNTS)))
        account_ids = empty_ledger()
        timings["raw executemany"].append(
            wall_time(partial(raw_executemany, rows=rows, account_ids=account_ids))
        )
        empty_ledger()
    if bulk_create:
        timings["Django bulk_create"] = [
            wall_time(partial(django_bulk_create, rows=rows, account_ids=account_ids))
        ]
        empty_ledger()
    return timings


def empty_ledger() -> list[int]:
    """Delete every ledger row and put the accounts back at their opening balance."""
    from accounts.models import Account, Transaction

    Transaction.objects.all().delete()
    Account.objects.update(current=1_000_000)
    return list(Account.objects.order_by("pk").values_list("pk", flat=True))


def rows_of(*, rows: int, account_ids: list[int], stamp):
    """The rows fill_ledger writes, batch by batch, for the baselines."""
    from accounts.ledger_fill import BATCH_ROWS

    for index, account_id in enumerate(account_ids):
        share = rows // len(account_ids) + (1 if index < rows % len(account_ids) else 0)
        for first in range(0, share, BATCH_ROWS):
            top = 1_000_000 - first
            yield [
                (account_id, 1, before, before - 1, "atomic_update", stamp, stamp)
                for before in range(top, top - min(BATCH_ROWS, share - first), -1)
            ]


def raw_executemany(*, rows: int, account_ids: list[int]) -> None:
    from django.db import connection, transaction
    from django.utils import timezone

    stamp = connection.ops.adapt_datetimefield_value(timezone.now())
    columns = "holder_id, amount, balance_before, balance, strategy, request_started_at, created_at"
    marker = "?" if connection.vendor == "sqlite" else "%s"
    statement = f"INSERT INTO accounts_transaction ({columns}) VALUES ({', '.join([marker] * 7)})"
    with transaction.atomic():
        driver_connection = connection.connection
        if connection.vendor == "postgresql":
            import psycopg

            cursor = psycopg.Cursor(driver_connection)
        else:
            cursor = driver_connection.cursor()
        for batch in rows_of(rows=rows, account_ids=account_ids, stamp=stamp):
            cursor.executemany(statement, batch)
        cursor.close()


def django_bulk_create(*, rows: int, account_ids: list[int]) -> None:
    from django.db import transaction
    from django.utils import timezone

    from accounts.models import Transaction

    stamp = timezone.now()
    with transaction.atomic():
        for batch in rows_of(rows=rows, account_ids=account_ids, stamp=stamp):
            Transaction.objects.bulk_create(
                [
                    Transaction(
                        holder_id=h, amount=a, balance_before=b, balance=w, strategy=s, request_started_at=t
                    )
                    for h, a, b, w, s, t, _ in batch
                ],
                batch_size=BULK_CREATE_BATCH,
            )


if __name__ == "__main__":
    main()
