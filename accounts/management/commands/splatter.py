from django.core.management.base import BaseCommand, CommandError
from tabulate import tabulate

from accounts.experiments import LoadRun, MatrixRow, splatter, strategy_matrix
from accounts.management.password_input import PASSWORD_ENV_VAR, read_password
from accounts.provisioning import ProvisioningError
from accounts.withdrawals import MAX_WITHDRAWAL_AMOUNT, Strategy
from loadgen.errors import LoadError
from loadgen.target import parse_target

ALL_STRATEGIES = "all"
MAX_REQUESTS = 100_000
MAX_CONCURRENCY = 1_000


class Command(BaseCommand):
    help = (
        "Log in with curl and fire Apache Bench at the withdraw endpoint of a running lab server, "
        f"as the blog's splatter.sh does. The password comes from ${PASSWORD_ENV_VAR}, or a prompt."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--url", default="http://127.0.0.1:8001", help="The lab server (default: http://127.0.0.1:8001)."
        )
        parser.add_argument("--username", default="demo", help="Log in as this user (default: demo).")
        parser.add_argument(
            "-n", "--requests", type=int, default=100, help="Requests to send (default: 100)."
        )
        parser.add_argument(
            "-c", "--concurrency", type=int, default=3, help="Requests in flight at once (default: 3)."
        )
        parser.add_argument(
            "--amount", type=int, default=1, help="Amount each request withdraws (default: 1)."
        )
        parser.add_argument(
            "--strategy",
            default=Strategy.NAIVE.value,
            choices=[*Strategy, ALL_STRATEGIES],
            help="Withdrawal strategy (default: naive). 'all' resets the account before each "
            "strategy and prints one comparison table.",
        )
        parser.add_argument(
            "--no-record",
            action="store_false",
            dest="record",
            help="Do not save the outcome counts for audit_transactions.",
        )
        parser.add_argument(
            "--allow-remote",
            action="store_true",
            help="Allow a target that is not a loopback address (only for a server you own).",
        )
        parser.add_argument(
            "--no-input",
            "--noinput",
            action="store_false",
            dest="interactive",
            help=f"Never prompt: take the password from ${PASSWORD_ENV_VAR}, reset without asking.",
        )

    def handle(
        self,
        *,
        url,
        username,
        requests,
        concurrency,
        amount,
        strategy,
        record,
        allow_remote,
        interactive,
        **options,
    ):
        if not 1 <= requests <= MAX_REQUESTS:
            raise CommandError(f"-n must be from 1 to {MAX_REQUESTS}, not {requests}.")
        if not 1 <= concurrency <= min(requests, MAX_CONCURRENCY):
            raise CommandError(
                f"-c must be from 1 to -n ({requests}) and at most {MAX_CONCURRENCY}, not {concurrency}."
            )
        if not 1 <= amount <= MAX_WITHDRAWAL_AMOUNT:
            raise CommandError(f"--amount must be from 1 to {MAX_WITHDRAWAL_AMOUNT}, not {amount}.")
        if strategy == ALL_STRATEGIES and not record:
            raise CommandError("--strategy all audits every run, so it cannot be combined with --no-record.")
        try:
            target = parse_target(url, allow_remote=allow_remote)
        except LoadError as error:
            raise CommandError(str(error)) from error
        if strategy == ALL_STRATEGIES and interactive:
            answer = input(
                f"--strategy all resets {username}'s account before each strategy. "
                "Type 'yes' to continue, or 'no' to cancel: "
            )
            if answer != "yes":
                raise CommandError("Cancelled; nothing was sent or changed.")
        password = read_password(no_input=not interactive, confirm=False)
        load = dict(
            target=target,
            username=username,
            password=password,
            requests=requests,
            concurrency=concurrency,
            amount=amount,
        )
        try:
            if strategy == ALL_STRATEGIES:
                self._print_matrix(strategy_matrix(**load))
            else:
                self._print_run(
                    splatter(**load, strategy=Strategy(strategy), record=record),
                    verbosity=options["verbosity"],
                )
        except (LoadError, ProvisioningError) as error:
            raise CommandError(str(error)) from error

    def _print_run(self, run: LoadRun, *, verbosity: int) -> None:
        report = run.report
        if verbosity >= 2:
            self.stdout.write("$ " + " ".join(run.argv))
        statuses = ", ".join(f"{n}x{status}" for status, n in sorted(report.non_2xx_statuses.items()))
        rows = [
            ("strategy", run.strategy),
            ("complete", report.complete),
            ("ok (2xx)", report.ok),
            ("non-2xx", f"{report.non_2xx} ({statuses})" if statuses else report.non_2xx),
            (
                "failed",
                f"{report.failed_unanswered} (connect {report.failed_connect}, receive "
                f"{report.failed_receive}, exceptions {report.failed_exceptions})",
            ),
            ("length differed (not a failure)", report.failed_length),
            ("requests/s", f"{report.requests_per_second:.1f}"),
            ("mean latency (ms)", f"{report.mean_ms:.1f}"),
            *((f"p{p} latency (ms)", ms) for p, ms in sorted(report.percentiles_ms.items())),
        ]
        self.stdout.write(tabulate(rows, headers=["ab", "value"]))
        if run.client_run is not None:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Recorded run {run.client_run.pk}: {run.client_run.ok} ok, {run.client_run.failed} "
                    f"refused, {run.client_run.indeterminate} indeterminate. "
                    "Check it with `manage.py audit_transactions`."
                )
            )

    def _print_matrix(self, rows: list[MatrixRow]) -> None:
        table = [
            (
                row.strategy,
                row.run.report.ok,
                row.audit.lost_withdrawals,
                row.audit.lost_updates,
                row.audit.overdrafts,
                row.run.report.server_errors,
                f"{row.run.report.requests_per_second:.1f}",
                row.audit.verdict,
            )
            for row in rows
        ]
        headers = [
            "strategy",
            "ok",
            "lost withdrawals",
            "lost updates",
            "overdrafts",
            "5xx",
            "requests/s",
            "verdict",
        ]
        self.stdout.write(tabulate(table, headers=headers))
