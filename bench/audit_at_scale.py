"""The audit over a large ledger against one hand-written query for its headline figures, same database.

    .venv/bin/python -m bench.audit_at_scale --database sqlite --rows 1000000 --accounts 10
    .venv/bin/python -m bench.audit_at_scale --database postgres

The ledger is filled with `manage.py fill_ledger`. Each round times, in a new random order,
`audit_transactions --format json` run in-process (the command without Django's start-up) and
two raw-SQL baselines on a plain DB-API cursor: the query a person would write for the headline
figures (rows, withdrawn, lost withdrawals, lost updates, duplicate balances and overdrafts per
account, each a correlated subquery that walks the account's part of a ledger index), and the
very statements the audit sends, replayed (what the ORM and the command cost on top of them).
Goal: the audit within 1.5x of the hand-written query.

Memory: the peak resident size of a separate `manage.py audit_transactions` process, once at a
tenth of the rows and once at all of them; flat means the rows do not show in it.
"""

import statistics
import subprocess
import sys
from collections.abc import Callable
from functools import partial
from io import StringIO

from tabulate import tabulate

from bench.harness import argument_parser, bench_lab, setup_django
from bench.timing import interleaved, wall_time
from labserver.lab import PROJECT_DIR, Lab

# The headline figures of every account in one statement, as a person would write it: per
# account, one correlated subquery per figure, each answered from the account's part of an index
# (the holder's for the rows and the sum, the covering ledger_holder_read and ledger_holder_written
# for the distinct balances read and written and for the overdrafts). The figures are computed
# once, in a materialized CTE: as a plain subquery in FROM, SQLite and PostgreSQL merge it into
# the outer query, which then runs each correlated subquery once per mention (the sum three
# times), about twice the work. MySQL and MariaDB have no MATERIALIZED.
HAND_WRITTEN_SQL = """
WITH per_account AS {materialized}(
    SELECT a.id, a.opening, a.current AS balance_now,
           (SELECT COUNT(*) FROM accounts_transaction t WHERE t.holder_id = a.id) AS ledger_rows,
           (SELECT COALESCE(SUM(t.amount), 0) FROM accounts_transaction t
            WHERE t.holder_id = a.id) AS withdrawn,
           (SELECT COUNT(DISTINCT t.balance_before) FROM accounts_transaction t
            WHERE t.holder_id = a.id) AS distinct_reads,
           (SELECT COUNT(DISTINCT t.balance) FROM accounts_transaction t
            WHERE t.holder_id = a.id) AS distinct_writes,
           (SELECT COUNT(*) FROM accounts_transaction t
            WHERE t.holder_id = a.id AND t.balance < a.minimum) AS overdrafts
    FROM accounts_account a
)
SELECT id, ledger_rows, withdrawn,
       CASE WHEN withdrawn > opening - balance_now THEN withdrawn - (opening - balance_now) ELSE 0 END,
       ledger_rows - distinct_reads, ledger_rows - distinct_writes, overdrafts
FROM per_account
ORDER BY id
"""
MATERIALIZED_CTE_VENDORS = {"sqlite", "postgresql"}

PEAK_RSS_SCRIPT = """
import resource, sys
from io import StringIO
import django
django.setup()
from django.core.management import call_command
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
call_command("audit_transactions", "--format", "json", stdout=StringIO())
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(before, after)
"""


def main() -> None:
    parser = argument_parser(__doc__, rounds=5)
    parser.add_argument("--rows", type=int, default=1_000_000, help="Ledger rows (default: 1000000).")
    parser.add_argument("--accounts", type=int, default=10, help="Accounts (default: 10).")
    args = parser.parse_args()

    with bench_lab(args.database) as lab_env:
        tenth = args.rows // 10
        lab_env.manage("fill_ledger", "--rows", str(tenth), "--accounts", str(args.accounts))
        small = peak_rss_kib(lab_env)
        lab_env.manage("fill_ledger", "--rows", str(args.rows - tenth), "--accounts", str(args.accounts))
        large = peak_rss_kib(lab_env)
        setup_django(lab_env)
        timings, statements = time_all(rounds=args.rounds)

    audit = timings.pop(AUDIT)
    print(
        f"database {args.database}, {args.rows} ledger rows, {args.accounts} accounts, {args.rounds} rounds, "
        f"{statements} statements per audit\n"
    )
    rows = [(AUDIT, statistics.median(audit), None)]
    for name, seconds in timings.items():
        ratio = statistics.median(a / r for a, r in zip(audit, seconds, strict=True))
        rows.append((name, statistics.median(seconds), ratio))
    table = tabulate(
        rows,
        headers=["", "seconds (median)", "audit ÷ this"],
        tablefmt="github",
        floatfmt=("", ".3f", ".2f"),
        missingval="",
    )
    print(table + "\n")
    memory = [
        (f"{tenth} rows", small[1] - small[0], f"{small[1] / 1024:.0f}"),
        (f"{args.rows} rows", large[1] - large[0], f"{large[1] / 1024:.0f}"),
    ]
    print(
        tabulate(
            memory, headers=["ledger", "RSS growth in the audit (KiB)", "peak RSS (MiB)"], tablefmt="github"
        )
    )


def peak_rss_kib(lab_env: Lab) -> tuple[int, int]:
    result = subprocess.run(
        [sys.executable, "-c", PEAK_RSS_SCRIPT],
        cwd=PROJECT_DIR,
        env={**lab_env.env, "DJANGO_SETTINGS_MODULE": "bank.settings"},
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    before, after = result.stdout.split()
    return int(before), int(after)


AUDIT = "audit_transactions --format json (in-process)"
HAND_WRITTEN = "hand-written query, correlated subqueries per account"
SAME_SQL = "its own SQL statements, replayed raw"


def time_all(*, rounds: int) -> tuple[dict[str, list[float]], int]:
    """Each case's seconds, round by round, and the number of statements the audit sends."""
    from django.core.management import call_command
    from django.db import connection

    def audit() -> None:
        call_command("audit_transactions", "--format", "json", stdout=StringIO())

    statements = []

    def capture(execute, sql, params, many, context):
        statements.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(capture):
        audit()  # also warms the caches

    def replay(sql: list[tuple[str, tuple | None]]) -> Callable[[], None]:
        def run() -> None:
            with connection.cursor() as cursor:
                for statement, params in sql:
                    cursor.execute(statement, params)
                    cursor.fetchall()

        return run

    materialized = "MATERIALIZED " if connection.vendor in MATERIALIZED_CTE_VENDORS else ""
    hand_written = HAND_WRITTEN_SQL.format(materialized=materialized)
    check_hand_written(hand_written)
    cases = {AUDIT: audit, HAND_WRITTEN: replay([(hand_written, None)]), SAME_SQL: replay(statements)}
    timings = interleaved({name: partial(wall_time, work) for name, work in cases.items()}, rounds=rounds)
    return timings, len(statements)


def check_hand_written(sql: str) -> None:
    """The baseline must answer what the audit answers, or the comparison means nothing."""
    from django.db import connection

    from accounts.audit import audit_accounts

    with connection.cursor() as cursor:
        cursor.execute(sql)
        answered = [tuple(row) for row in cursor.fetchall()]
    audited = [
        (
            audit.account_id,
            audit.ledger_rows,
            audit.withdrawn,
            audit.lost_withdrawals,
            audit.lost_updates,
            audit.duplicate_balances,
            audit.overdrafts,
        )
        for audit in audit_accounts()
    ]
    if answered != audited:
        raise SystemExit(f"The hand-written query disagrees with the audit: {answered} != {audited}")


if __name__ == "__main__":
    main()
