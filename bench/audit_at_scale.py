"""The audit over a large ledger against the same aggregates in hand-written SQL, same database.

    .venv/bin/python bench/audit_at_scale.py --database sqlite --rows 1000000 --accounts 10
    .venv/bin/python bench/audit_at_scale.py --database postgres

The ledger is filled with `manage.py fill_ledger`. Each round times, in a new random order,
`audit_transactions --format json` run in-process (the command without Django's start-up) and
the raw SQL a person would write for the same figures: per account the rows, the sum withdrawn,
the distinct balances read and written and the overdrafts, the same per strategy, and the
clients' outcomes. Goal: the audit within 1.2x of the raw SQL.

Memory: the peak resident size of a separate `manage.py audit_transactions` process, once at a
tenth of the rows and once at all of them; flat means the rows do not show in it.
"""

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import time
from io import StringIO
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tabulate import tabulate

from labserver.bench import database_url, setup_django
from labserver.lab import PROJECT_DIR, lab

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
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="sqlite", help="sqlite, postgres, mysql or a DATABASE_URL.")
    parser.add_argument("--rows", type=int, default=1_000_000, help="Ledger rows (default: 1000000).")
    parser.add_argument("--accounts", type=int, default=10, help="Accounts (default: 10).")
    parser.add_argument("--rounds", type=int, default=5, help="Timed rounds (default: 5).")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-audit-") as workdir, lab(
        workdir=Path(workdir), base_database_url=database_url(args.database)
    ) as lab_env:
        tenth = args.rows // 10
        lab_env.manage("fill_ledger", "--rows", str(tenth), "--accounts", str(args.accounts))
        small = peak_rss_kib(lab_env)
        lab_env.manage("fill_ledger", "--rows", str(args.rows - tenth), "--accounts", str(args.accounts))
        large = peak_rss_kib(lab_env)
        setup_django(lab_env)
        audit_seconds, raw_seconds = time_both(rounds=args.rounds)

    print(f"database {args.database}, {args.rows} ledger rows over {args.accounts} accounts, {args.rounds} rounds\n")
    rows = [
        ("audit_transactions (in-process)", f"{statistics.median(audit_seconds):.3f}", ""),
        ("the same aggregates in raw SQL", f"{statistics.median(raw_seconds):.3f}", ""),
        (
            "audit ÷ raw SQL (median of rounds)",
            "",
            f"{statistics.median(a / r for a, r in zip(audit_seconds, raw_seconds, strict=True)):.2f}",
        ),
        (f"peak RSS growth during the audit, {tenth} rows (KiB)", "", small[1] - small[0]),
        (f"peak RSS growth during the audit, {args.rows} rows (KiB)", "", large[1] - large[0]),
        (f"peak RSS of the audit process, {tenth} -> {args.rows} rows (MiB)", "", f"{small[1] / 1024:.0f} -> {large[1] / 1024:.0f}"),
    ]
    print(tabulate(rows, headers=["measure", "seconds (median)", "value"], tablefmt="github"))


def peak_rss_kib(lab_env) -> tuple[int, int]:
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


def time_both(*, rounds: int) -> tuple[list[float], list[float]]:
    from django.core.management import call_command
    from django.db import connection

    def audit() -> None:
        call_command("audit_transactions", "--format", "json", stdout=StringIO())

    def raw() -> None:
        with connection.cursor() as cursor:
            for statement in RAW_AUDIT_SQL:
                cursor.execute(statement)
                cursor.fetchall()

    audit()
    raw()  # warm the caches for both
    timings = {audit: [], raw: []}
    for _ in range(rounds):
        for run in random.sample([audit, raw], 2):
            started = time.perf_counter()
            run()
            timings[run].append(time.perf_counter() - started)
    return timings[audit], timings[raw]


if __name__ == "__main__":
    main()
