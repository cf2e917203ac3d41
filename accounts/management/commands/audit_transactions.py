import json
from dataclasses import asdict

from django.core.management.base import BaseCommand, CommandError
from tabulate import tabulate

from accounts.audit import AccountAudit, audit_accounts
from accounts.management.database_errors import reports_database_errors


class Command(BaseCommand):
    help = (
        "Audit each account's ledger against its balance and the clients' outcomes: lost "
        "withdrawals, lost updates, overdrafts, duplicate balances, phantom and missing rows."
    )

    def add_arguments(self, parser):
        parser.add_argument("--username", help="Only this user's account (default: all accounts).")
        parser.add_argument(
            "--format", choices=["table", "json"], default="table", help="Output format (default: table)."
        )
        parser.add_argument(
            "--fail-on-anomaly",
            action="store_true",
            help="Exit with status 1 when any anomaly is found (for CI).",
        )

    @reports_database_errors
    def handle(self, *, username, format, fail_on_anomaly, **options):
        audits = audit_accounts(username=username)
        if username and not audits:
            raise CommandError(f"User {username!r} has no account; create one with seed_account.")
        if format == "json":
            self.stdout.write(json.dumps([_as_json(audit) for audit in audits], indent=2))
        else:
            for audit in audits:
                self._print_table(audit)
        anomalous = [audit for audit in audits if audit.anomalies]
        if fail_on_anomaly and anomalous:
            raise CommandError(f"{len(anomalous)} of {len(audits)} account(s) show anomalies.", returncode=1)

    def _print_table(self, audit: AccountAudit) -> None:
        rows = [
            ("user", audit.username or "(no owner)"),
            ("opening balance", audit.opening),
            ("final balance", audit.final),
            ("ledger rows", audit.ledger_rows),
            ("withdrawn (ledger)", audit.withdrawn),
            ("actual decrease", audit.decrease),
            ("lost withdrawals", audit.lost_withdrawals),
            ("lost updates", audit.lost_updates),
            ("overdrafts", audit.overdrafts),
            ("distinct balances", audit.distinct_balances),
            ("duplicate balances", audit.duplicate_balances),
            ("strategies", ", ".join(f"{s.strategy} ({s.ledger_rows})" for s in audit.by_strategy) or "-"),
        ]
        if audit.client is not None:
            client = audit.client
            rows += [
                (
                    "client: ok / refused / indeterminate",
                    f"{client.ok} / {client.failed} / {client.indeterminate}",
                ),
                ("client: allowed final balance", f"[{client.lowest_final}, {client.highest_final}]"),
            ]
        self.stdout.write(f"\nAccount {audit.account_id}")
        self.stdout.write(tabulate(rows, tablefmt="simple_outline"))
        if audit.anomalies:
            self.stdout.write(
                tabulate(
                    [
                        (a.kind, a.count, a.explanation, _example(a.first), _example(a.worst))
                        for a in audit.anomalies
                    ],
                    headers=["anomaly", "count", "what it means", "first example", "worst example"],
                    tablefmt="simple_grid",
                    maxcolwidths=[None, None, 36, 28, 28],
                )
            )
            self.stdout.write(self.style.ERROR(f"Verdict: {audit.verdict}"))
        else:
            self.stdout.write(self.style.SUCCESS("Verdict: OK, the ledger and the balance agree."))


def _example(example: dict | None) -> str:
    return ", ".join(f"{key}={value}" for key, value in example.items()) if example else ""


def _as_json(audit: AccountAudit) -> dict:
    return {**asdict(audit), "verdict": audit.verdict}
