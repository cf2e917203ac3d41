import time

from django.core.management.base import BaseCommand, CommandError
from tabulate import tabulate

from accounts.ledger_fill import DEFAULT_PREFIX, LedgerFillError, fill_ledger
from accounts.withdrawals import Strategy
from racelab.management.arguments import ascii_int
from racelab.management.database_errors import reports_database_errors


class Command(BaseCommand):
    help = (
        "Append a large, consistent ledger of withdrawals over several accounts, fast, for "
        "benchmarks and demos of audit_transactions at scale."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--rows", type=ascii_int, default=1_000_000, help="Ledger rows to add in all (default: 1000000)."
        )
        parser.add_argument(
            "--accounts", type=ascii_int, default=10, help="Accounts to share the rows over (default: 10)."
        )
        parser.add_argument(
            "--amount", type=ascii_int, default=1, help="Amount of each withdrawal (default: 1)."
        )
        parser.add_argument(
            "--strategy",
            default=Strategy.ATOMIC_UPDATE.value,
            choices=list(Strategy),
            help="Strategy recorded on each row (default: atomic_update).",
        )
        parser.add_argument(
            "--prefix",
            default=DEFAULT_PREFIX,
            help=f"The accounts belong to users <prefix>-01, <prefix>-02, ... (default: {DEFAULT_PREFIX}).",
        )

    @reports_database_errors
    def handle(self, *, rows, accounts, amount, strategy, prefix, **options):
        started = time.perf_counter()
        try:
            filled = fill_ledger(
                rows=rows, accounts=accounts, amount=amount, strategy=Strategy(strategy), prefix=prefix
            )
        except LedgerFillError as error:
            raise CommandError(str(error)) from error
        seconds = time.perf_counter() - started
        if options["verbosity"] >= 2:
            table = [(a.username, a.account_id, a.rows, a.balance_before, a.balance_after) for a in filled]
            self.stdout.write(
                tabulate(table, headers=["user", "account", "rows added", "balance before", "balance after"])
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Added {rows} ledger rows over {len(filled)} account(s) in {seconds:.1f} s. "
                "Check them with `manage.py audit_transactions`."
            )
        )
