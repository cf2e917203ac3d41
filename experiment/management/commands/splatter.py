import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from tqdm import tqdm

from accounts.management.confirmation import confirm
from accounts.management.database_errors import reports_database_errors
from accounts.management.password_input import PASSWORD_ENV_VAR, read_password
from accounts.provisioning import ProvisioningError
from accounts.race_window import DEFAULT_TIMEOUT_SECONDS
from accounts.withdrawals import Strategy
from experiment import tables
from experiment.drivers import default_driver
from experiment.matrix import strategy_matrix
from experiment.plan import (
    DEFAULT_REQUESTS,
    Mode,
    OutputFormat,
    PlanError,
    RunPlan,
    parse_drivers,
    parse_levels,
)
from experiment.runs import run_load
from experiment.trials import run_sweep
from loadgen.errors import LoadError
from loadgen.target import parse_target

ALL_STRATEGIES = "all"


class Command(BaseCommand):
    help = (
        "Log in and fire concurrent withdrawals at a running lab server: with Apache Bench, as the "
        "blog's splatter.sh does, or with the built-in burst driver; once, for every strategy, or as "
        f"repeated trials. The password comes from ${PASSWORD_ENV_VAR}, or a prompt."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--url", default="http://127.0.0.1:8001", help="The lab server (default: %(default)s)."
        )
        parser.add_argument("--username", default="demo", help="Log in as this user (default: demo).")
        parser.add_argument(
            "-n", "--requests", type=int, help=f"Requests to send (default: {DEFAULT_REQUESTS})."
        )
        parser.add_argument(
            "-c",
            "--concurrency",
            type=parse_levels,
            default=(3,),
            help="Requests in flight at once, the burst size (default: 3); in trials, levels: 2,5,10.",
        )
        parser.add_argument(
            "--amount", type=int, default=1, help="Amount each request withdraws (default: 1)."
        )
        parser.add_argument(
            "--strategy",
            default=Strategy.NAIVE.value,
            choices=[*Strategy, ALL_STRATEGIES],
            help="Withdrawal strategy (default: naive); 'all' compares them, each on a reset account.",
        )
        parser.add_argument(
            "--driver",
            type=parse_drivers,
            help="ab (the blog's, the default) or burst (last-byte synchronised); in trials, a list.",
        )
        parser.add_argument(
            "--users", type=int, default=1, help="Burst driver: share bursts among USERNAME, USERNAME-2 ..."
        )
        parser.add_argument(
            "--history", type=Path, help="Burst driver: save every request's outcome as JSON."
        )
        parser.add_argument(
            "--race-window", action="store_true", help="Arm the deterministic race mode (docs/race-mode.md)."
        )
        parser.add_argument(
            "--race-window-timeout",
            type=float,
            default=DEFAULT_TIMEOUT_SECONDS,
            help="Seconds a held withdrawal waits for another (default: %(default)s).",
        )
        parser.add_argument(
            "--trials", type=int, help="Repeat: reset, fire one burst, audit; this many times."
        )
        parser.add_argument(
            "--format", choices=list(OutputFormat), default="table", help="Trials: table or json."
        )
        parser.add_argument(
            "--plot", type=Path, help="Trials: draw lost fraction and hit rate to a PNG file."
        )
        parser.add_argument(
            "--no-record", action="store_false", dest="record", help="Do not record the outcome counts."
        )
        parser.add_argument(
            "--allow-remote", action="store_true", help="Allow a non-loopback target (a server you own)."
        )
        parser.add_argument(
            "--no-input",
            "--noinput",
            action="store_false",
            dest="interactive",
            help=f"Never prompt: take the password from ${PASSWORD_ENV_VAR}, reset without asking.",
        )

    @reports_database_errors
    def handle(self, *, interactive, verbosity, **options):
        try:
            plan = self._plan(options)
            if interactive and plan.mode is not Mode.SINGLE:
                confirm(warning=plan.reset_warning, cancelled="Cancelled; nothing was sent or changed.")
            password = read_password(no_input=not interactive, confirm=False)
            if plan.mode is Mode.TRIALS:
                self._sweep(plan, password=password, verbosity=verbosity)
            elif plan.mode is Mode.MATRIX:
                self.stdout.write(tables.matrix_table(strategy_matrix(plan=plan, password=password)))
            else:
                self._single(plan, password=password, verbosity=verbosity)
        except (PlanError, LoadError, ProvisioningError) as error:
            raise CommandError(str(error)) from error

    def _plan(self, options: dict) -> RunPlan:
        drivers = options["driver"]
        if drivers is None:
            driver, note = default_driver()
            if note:
                self.stderr.write(note, style_func=self.style.WARNING)
            drivers = (driver,)
        every = options["strategy"] == ALL_STRATEGIES
        requests = options["requests"]
        return RunPlan(
            target=parse_target(options["url"], allow_remote=options["allow_remote"]),
            username=options["username"],
            strategies=tuple(Strategy) if every else (Strategy(options["strategy"]),),
            compare_strategies=every,
            drivers=drivers,
            levels=options["concurrency"],
            requests=DEFAULT_REQUESTS if requests is None and options["trials"] is None else requests,
            amount=options["amount"],
            users=options["users"],
            trials=options["trials"],
            race_window=options["race_window"],
            race_window_timeout=options["race_window_timeout"],
            record=options["record"],
            history=options["history"],
            plot=options["plot"],
            output_format=OutputFormat(options["format"]),
        )

    def _single(self, plan: RunPlan, *, password: str, verbosity: int) -> None:
        run = run_load(plan=plan, strategy=plan.strategies[0], password=password)
        if verbosity >= 2 and run.load.argv:
            self.stdout.write("$ " + " ".join(run.load.argv))
        self.stdout.write(tables.run_report(run))
        for client_run in run.client_runs:
            self.stdout.write(self.style.SUCCESS(tables.recorded_line(client_run)))

    def _sweep(self, plan: RunPlan, *, password: str, verbosity: int) -> None:
        total = len(plan.levels) * plan.trials * len(plan.drivers) * len(plan.strategies)
        # disable=None: a bar on a terminal, nothing in a pipe or a test.
        with tqdm(total=total, unit="trial", file=sys.stderr, disable=None if verbosity else True) as bar:
            report = run_sweep(plan=plan, password=password, on_trial=lambda outcome: bar.update())
        if plan.plot is not None:
            from experiment.plot import plot_sweep  # matplotlib takes a second to load: only for --plot

            title = f"{', '.join(plan.strategies)}, {plan.trials} trial(s) per point, {connection.vendor}"
            plot_sweep(summaries=report.summaries, path=plan.plot, title=title)
        if plan.output_format is OutputFormat.JSON:
            self.stdout.write(json.dumps(tables.sweep_document(report), indent=2))
        else:
            self.stdout.write(tables.sweep_table(report))
            if plan.plot is not None:
                self.stdout.write(self.style.SUCCESS(f"Plot saved to {plan.plot}."))
