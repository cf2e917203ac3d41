"""The audit over a large ledger against the same aggregates in raw SQL, same database.

    .venv/bin/python -m bench.audit_at_scale --database sqlite --rows 1000000 --accounts 10
    .venv/bin/python -m bench.audit_at_scale --database postgres

The ledger is filled with `manage.py fill_ledger`. Each round times, in a new random order,
`audit_transactions --format json` run in-process (the command without Django's start-up) and
two raw-SQL baselines on a plain cursor: the very statements the audit sends (what the ORM and
the command cost on top), and the SQL a person would write for the same figures, one grouped
query per question for all accounts at once. Goal: the audit within 1.2x of both.

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

# What the audit computes, in plain SQL: one grouped pass per question instead of per account.
RAW_AUDIT_SQL = [
    """
    SELECT t.holder_id, COUNT(t.id), COALESCE(SUM(t.amount), 0), COUNT(DISTINCT t.balance_before),
           COUNT(DISTINCT t.balance), SUM(CASE WHEN t.balance < a.minimum THEN 1 ELSE 0 END)
    FROM accounts_transaction t JOIN accounts_account a ON a.id = t.holder_id
    GROUP BY t.holder_id
    """,
    """
    SELECT t.holder_id, t.strategy, COUNT(t.id), SUM(t.amount), COUNT(DISTINCT t.balance_before),
           SUM(CASE WHEN t.balance < a.minimum THEN 1 ELSE 0 END)
    FROM accounts_transaction t JOIN accounts_account a ON a.id = t.holder_id
    GROUP BY t.holder_id, t.strategy ORDER BY t.holder_id, t.strategy
    """,
    """
    SELECT account_id, COUNT(id), SUM(ok), SUM(failed), SUM(indeterminate), SUM(ok * amount),
           SUM(indeterminate * amount)
    FROM accounts_clientrun GROUP BY account_id
    """,
    """
    SELECT a.id, u.username, a.opening, a.minimum, a.current
    FROM accounts_account a LEFT JOIN auth_user u ON u.id = a.user_id ORDER BY a.id
    """,
]

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
        timings = time_all(rounds=args.rounds)

    audit = timings.pop(AUDIT)
    print(
        f"database {args.database}, {args.rows} ledger rows, {args.accounts} accounts, {args.rounds} rounds\n"
    )
    rows = [(AUDIT, f"{statistics.median(audit):.2f}", "")]
    for name, seconds in timings.items():
        ratio = statistics.median(a / r for a, r in zip(audit, seconds, strict=True))
        rows.append((name, f"{statistics.median(seconds):.2f}", f"{ratio:.2f}"))
    table = tabulate(rows, headers=["", "seconds (median)", "audit ÷ this"], tablefmt="github")
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
SAME_SQL = "its own SQL statements, replayed raw"
GROUPED_SQL = "hand-written SQL, grouped by account"


def time_all(*, rounds: int) -> dict[str, list[float]]:
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

    grouped = [(statement, None) for statement in RAW_AUDIT_SQL]
    cases = {AUDIT: audit, SAME_SQL: replay(statements), GROUPED_SQL: replay(grouped)}
    return interleaved({name: partial(wall_time, work) for name, work in cases.items()}, rounds=rounds)


if __name__ == "__main__":
    main()
