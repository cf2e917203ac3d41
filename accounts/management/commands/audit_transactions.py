import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tabulate import tabulate

from accounts.audit import AccountAudit, audit_accounts, audit_document, headline_rows
from labreport.selectors import latest_run
from labreport.timeline_files import TIMELINE_SUFFIXES, write_timeline
from racelab.management.database_errors import reports_database_errors
from races.violations import Violation
from scenarios.audit import ScenarioAudit, scenario_audit_document
from scenarios.catalogue import SCENARIOS


class Command(BaseCommand):
    help = (
        "Audit each account's ledger against its balance and the clients' outcomes: lost "
        "withdrawals, lost updates, overdrafts, duplicate balances, phantom and missing rows."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--scenario",
            choices=sorted(SCENARIOS),
            help="Check a scenario's invariant from its rows instead of the bank's ledger.",
        )
        parser.add_argument("--username", help="Only this user's account (default: all accounts).")
        parser.add_argument(
            "--format", choices=["table", "json"], default="table", help="Output format (default: table)."
        )
        parser.add_argument(
            "--fail-on-anomaly",
            action="store_true",
            help="Exit with status 1 when any anomaly is found (for CI).",
        )
        parser.add_argument(
            "--timeline",
            type=Path,
            metavar="FILE",
            help="Also draw the audited account's latest splatter run, every request on the server's "
            "clock, into FILE: SVG or PNG by its extension.",
        )

    @reports_database_errors
    def handle(self, *, scenario, username, format, fail_on_anomaly, timeline, **options):
        if scenario is not None:
            if username is not None or timeline is not None:
                raise CommandError(
                    "--username and --timeline audit the bank's accounts; drop them with --scenario."
                )
            self._audit_scenario(SCENARIOS[scenario].audit(), format=format, fail_on_anomaly=fail_on_anomaly)
            return
        if timeline is not None:
            _check_timeline_path(timeline)
        audits = audit_accounts(username=username)
        if username and not audits:
            raise CommandError(f"User {username!r} has no account; create one with seed_account.")
        if format == "json":
            self.stdout.write(json.dumps([audit_document(audit) for audit in audits], indent=2))
        else:
            for audit in audits:
                self._print_table(audit)
        if timeline is not None:
            self._write_timeline(audits, path=timeline, to_stderr=format == "json")
        anomalous = [audit for audit in audits if audit.anomalies]
        if fail_on_anomaly and anomalous:
            raise CommandError(f"{len(anomalous)} of {len(audits)} account(s) show anomalies.", returncode=1)

    def _audit_scenario(self, audit: ScenarioAudit, *, format: str, fail_on_anomaly: bool) -> None:
        if format == "json":
            self.stdout.write(json.dumps(scenario_audit_document(audit), indent=2))
        else:
            self.stdout.write(f"\nScenario {audit.scenario}: {audit.invariant}")
            self.stdout.write(tabulate(audit.figures, tablefmt="simple_outline"))
            self._print_anomalies(audit.violations)
            if audit.violations:
                self.stdout.write(self.style.ERROR(f"Verdict: {audit.verdict}"))
            else:
                self.stdout.write(self.style.SUCCESS("Verdict: OK, the invariant holds."))
        if fail_on_anomaly and audit.violations:
            raise CommandError(
                f"The {audit.scenario} scenario breaks its invariant: {audit.verdict}.", returncode=1
            )

    def _write_timeline(self, audits: list[AccountAudit], *, path: Path, to_stderr: bool) -> None:
        if len(audits) != 1:
            raise CommandError(
                f"--timeline draws one account's run, and {len(audits)} accounts are audited: "
                "pass --username."
            )
        (audit,) = audits
        run = latest_run(account_id=audit.account_id)
        if run is None:
            raise CommandError(
                f"Account {audit.account_id} has no recorded run to draw: fire one with "
                "`manage.py splatter`, which has the server stamp each request's timings."
            )
        try:
            totals = write_timeline(run=run, path=path)
        except OSError as error:
            raise CommandError(f"Cannot write the timeline to {path}: {error.strerror or error}.") from error
        message = (
            f"Timeline of run {run.pk} ({totals.requests} requests, {totals.lost} in lost-update groups) "
            f"written to {path}."
        )
        (self.stderr if to_stderr else self.stdout).write(self.style.SUCCESS(message))

    def _print_table(self, audit: AccountAudit) -> None:
        rows = headline_rows(audit_document(audit))
        self.stdout.write(f"\nAccount {audit.account_id}")
        self.stdout.write(tabulate(rows, tablefmt="simple_outline"))
        self._print_anomalies(audit.anomalies)
        if audit.anomalies:
            self.stdout.write(self.style.ERROR(f"Verdict: {audit.verdict}"))
        else:
            self.stdout.write(self.style.SUCCESS("Verdict: OK, the ledger and the balance agree."))

    def _print_anomalies(self, anomalies: list[Violation]) -> None:
        if not anomalies:
            return
        self.stdout.write(
            tabulate(
                [(a.kind, a.count, a.explanation, _example(a.first), _example(a.worst)) for a in anomalies],
                headers=["anomaly", "count", "what it means", "first example", "worst example"],
                tablefmt="simple_grid",
                maxcolwidths=[None, None, 36, 28, 28],
            )
        )


def _check_timeline_path(path: Path) -> None:
    """Before any work: a file name the timeline can be written under."""
    if path.suffix.lower() not in TIMELINE_SUFFIXES:
        raise CommandError(
            f"--timeline writes SVG or PNG: give a file ending in .svg or .png, not {path.name!r}."
        )
    if not path.parent.is_dir():
        raise CommandError(f"--timeline: the folder {path.parent} does not exist; create it first.")


def _example(example: dict | None) -> str:
    return ", ".join(f"{key}={value}" for key, value in example.items()) if example else ""
