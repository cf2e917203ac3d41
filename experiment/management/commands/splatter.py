import json
import sys
from pathlib import Path

from django.core.management.base import CommandError
from django.db import connection
from django.urls import reverse
from tqdm import tqdm

from accounts.provisioning import ProvisioningError
from accounts.withdrawals import Strategy
from experiment import tables
from experiment.matrix import strategy_matrix
from experiment.plan import (
    Mode,
    OutputFormat,
    PlanError,
    RunPlan,
)
from experiment.runs import run_load
from experiment.scenario_runs import run_scenario, summarise
from experiment.trials import run_sweep
from racelab.loadgen.drivers import default_driver
from racelab.loadgen.errors import LoadError
from racelab.loadgen.locust.protocol import LocustMode
from racelab.loadgen.locust.runner import DEFAULT_MASTER_PORT, parse_bind
from racelab.loadgen.target import parse_target
from racelab.management.arguments import ascii_int
from racelab.management.commands import splatter as endpoint
from racelab.management.commands.splatter import ENDPOINT_OPTIONS, USAGE_ERROR
from racelab.management.confirmation import confirm
from racelab.management.database_errors import reports_database_errors
from racelab.management.password_input import PASSWORD_ENV_VAR, read_password
from scenarios.catalogue import SCENARIOS

ALL_STRATEGIES = "all"
DEMO_USER = "demo"
WITHDRAWAL = "withdrawal"


# The demo's own options: its races (the withdrawal and the catalogue) and its experiments.
DEMO_OPTIONS = {
    "amount": "--amount",
    "scenario": "--scenario",
    "strategy": "--strategy",
    "users": "--users",
    "trials": "--trials",
    "plot": "--plot",
    "locust_mode": "--locust-mode",
    "locust_workers": "--locust-workers",
    "expect_workers": "--expect-workers",
    "locust_bind": "--locust-bind",
    "locust_output": "--locust-output",
}


class Command(endpoint.Command):
    help = (
        "Log in and fire concurrent requests at a running lab server: at one of its races (the bank's "
        "withdrawal, or --scenario NAME), or at any endpoint (--path); with Apache Bench, as the "
        "blog's splatter.sh does, with the built-in burst driver, or on Locust's master and workers; "
        "once, for every strategy, or as repeated trials. The password comes from "
        f"${PASSWORD_ENV_VAR}, or a prompt."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        # The lab's server; its races log in as the seeded user unless told (--path: anonymous).
        parser.set_defaults(url="http://127.0.0.1:8001")
        add = parser.add_argument
        add("--amount", type=ascii_int, help="Amount each request withdraws (default: 1).")
        add(
            "--scenario",
            choices=[WITHDRAWAL, *SCENARIOS],
            help="The race to reproduce (default: the bank's withdrawal); docs/scenarios.md lists them.",
        )
        add(
            "--strategy",
            help=f"The scenario's strategy (default: naive; withdrawal: {', '.join(Strategy)}); 'all' "
            "compares them, each from reset data.",
        )
        add("--users", type=ascii_int, help="Burst, locust: USERNAME, USERNAME-2 ... (default: 1).")
        locust = parser.add_argument_group("the Locust driver (--driver locust, docs/locust.md)")
        locust.add_argument(
            "--locust-mode",
            choices=list(LocustMode),
            help="steady (-n requests from -c users, as ab) or burst (bursts of -c released together "
            "across the workers); default: burst with --trials or --race-window, steady otherwise.",
        )
        workers = locust.add_mutually_exclusive_group()
        workers.add_argument(
            "--locust-workers",
            type=ascii_int,
            metavar="N",
            help="Start N worker processes here (default: 1).",
        )
        workers.add_argument(
            "--expect-workers",
            type=ascii_int,
            metavar="N",
            help="Start none: wait for N workers started elsewhere (locust --worker) to connect to "
            "--locust-bind.",
        )
        locust.add_argument(
            "--locust-bind",
            metavar="ADDRESS[:PORT]",
            help=f"With --expect-workers: where the master listens (port default {DEFAULT_MASTER_PORT}); "
            "a non-loopback address needs --allow-remote.",
        )
        locust.add_argument(
            "--locust-output",
            type=Path,
            metavar="DIR",
            help="Keep Locust's CSV, JSON and HTML reports and logs here, a run-NNN folder per command "
            "(default: a temporary folder, removed).",
        )
        add(
            "--trials",
            type=ascii_int,
            help="Repeat per -c level: reset, fire one burst, audit; this many times.",
        )
        add("--plot", type=Path, metavar="FILE.png", help="Trials: draw lost fraction and hit rate.")
        add("--no-record", action="store_false", dest="record", help="Do not record the outcome counts.")

    def handle(self, *, interactive, verbosity, **options):
        if options["path"] is not None:
            given = [option for name, option in DEMO_OPTIONS.items() if options[name] is not None]
            if not options["record"]:
                given.append("--no-record")
            if given:
                raise CommandError(
                    f"{', '.join(given)} run the lab's own races; with --path, drop them.",
                    returncode=USAGE_ERROR,
                )
            return super().handle(interactive=interactive, verbosity=verbosity, **options)
        given = [name for name in ENDPOINT_OPTIONS if options[name] not in (None, [])]
        if given:
            option = "--" + given[0].replace("_", "-")
            raise CommandError(
                f"{option} describes the requests to an endpoint: add --path, or drop it.",
                returncode=USAGE_ERROR,
            )
        self._lab_races(interactive=interactive, verbosity=verbosity, options=options)

    @reports_database_errors
    def _lab_races(self, *, interactive: bool, verbosity: int, options: dict) -> None:
        try:
            plan = self._plan(options)
            if interactive and plan.resets:
                confirm(warning=plan.reset_warning, cancelled="Cancelled; nothing was sent or changed.")
            password = read_password(no_input=not interactive, ask_twice=False)
            if plan.scenario is not None:
                self._scenario(plan, password=password, verbosity=verbosity)
            elif plan.mode is Mode.TRIALS:
                self._sweep(plan, password=password, verbosity=verbosity)
            elif plan.mode is Mode.MATRIX:
                rows = strategy_matrix(plan=plan, password=password)
                self.stdout.write(tables.matrix_table(rows))
                for row in rows:
                    self._warn_lost_workers(row.run.load.report)
                    self._report_pages(plan, row.run.lab_runs)
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
        scenario = SCENARIOS.get(options["scenario"] or WITHDRAWAL)
        if scenario is not None and options["amount"] is not None:
            raise PlanError(f"--amount is the withdrawal's; the {scenario.name} scenario sends its own form.")
        strategy = options["strategy"] or "naive"
        every = strategy == ALL_STRATEGIES
        known = tuple(Strategy) if scenario is None else scenario.strategies
        targets = tuple(
            parse_target(url.strip(), allow_remote=options["allow_remote"])
            for url in options["url"].split(",")
        )
        bind = options["locust_bind"]
        return RunPlan(
            target=targets[0],
            targets=targets if len(targets) > 1 else (),
            username=options["username"] or DEMO_USER,
            strategies=known if every else (strategy,),
            scenario=scenario,
            compare_strategies=every,
            drivers=drivers,
            levels=options["concurrency"],
            requests=options["requests"],
            amount=1 if options["amount"] is None else options["amount"],
            users=1 if options["users"] is None else options["users"],
            trials=options["trials"],
            race_window=options["race_window"],
            race_window_timeout=options["race_window_timeout"],
            race_window_at=options["race_window_at"],
            record=options["record"],
            history=options["history"],
            plot=options["plot"],
            output_format=OutputFormat(options["format"]),
            locust_mode=None if options["locust_mode"] is None else LocustMode(options["locust_mode"]),
            locust_workers=options["locust_workers"],
            expect_workers=options["expect_workers"],
            locust_bind=None if bind is None else parse_bind(bind, allow_remote=options["allow_remote"]),
            locust_output=options["locust_output"],
        )

    def _scenario(self, plan: RunPlan, *, password: str, verbosity: int) -> None:
        total = len(plan.levels) * (plan.trials or 1) * len(plan.drivers) * len(plan.strategies)
        with tqdm(total=total, unit="run", file=sys.stderr, disable=None if verbosity else True) as bar:
            runs = run_scenario(plan=plan, password=password, on_run=lambda run: bar.update())
        for run in runs:
            self._warn_lost_workers(run.load.report)
        summaries = summarise(runs, scenario=plan.scenario, race_window=plan.race_window)
        if plan.output_format is OutputFormat.JSON:
            self.stdout.write(json.dumps(tables.scenario_document(runs, summaries), indent=2))
            return
        scenario = plan.scenario
        self.stdout.write(f"Scenario {scenario.name}: {scenario.title}, as in {scenario.bug}\n")
        if plan.trials is not None:
            self.stdout.write(tables.scenario_sweep_table(summaries))
        else:
            self.stdout.write(tables.scenario_runs_table(runs))
        if plan.history is not None:
            self.stdout.write(f"History of {runs[0].load.requests} requests saved to {plan.history}.")

    def _single(self, plan: RunPlan, *, password: str, verbosity: int) -> None:
        run = run_load(plan=plan, strategy=plan.strategies[0], password=password)
        if verbosity >= 2:
            for argv in run.load.argvs:
                self.stdout.write("$ " + " ".join(argv))
        self.stdout.write(tables.run_report(run))
        self._warn_lost_workers(run.load.report)
        for client_run in run.client_runs:
            self.stdout.write(self.style.SUCCESS(tables.recorded_line(client_run)))
        self._report_pages(plan, run.lab_runs)

    def _warn_lost_workers(self, report) -> None:
        for line in tables.lost_worker_lines(report):
            self.stderr.write(line, style_func=self.style.WARNING)

    def _report_pages(self, plan: RunPlan, lab_runs: list) -> None:
        for lab_run in lab_runs:
            url = plan.target.base_url + reverse("labreport:run", args=[lab_run.pk])
            self.stdout.write(
                f"Timeline and audit of {lab_run.strategy} on account {lab_run.account_id}: {url}"
            )

    def _sweep(self, plan: RunPlan, *, password: str, verbosity: int) -> None:
        total = len(plan.levels) * plan.trials * len(plan.drivers) * len(plan.strategies)
        # disable=None: a bar on a terminal, nothing in a pipe or a test.
        with tqdm(total=total, unit="trial", file=sys.stderr, disable=None if verbosity else True) as bar:
            report = run_sweep(plan=plan, password=password, on_trial=lambda outcome: bar.update())
        lost = sum(outcome.lost_workers for outcome in report.outcomes)
        if lost:
            self.stderr.write(
                f"{lost} Locust worker(s) were lost during the trials: the requests they held without an "
                "answer count as indeterminate, and later trials ran without them.",
                style_func=self.style.WARNING,
            )
        if plan.plot is not None:
            from experiment.plot import plot_sweep  # matplotlib takes a second to load: only for --plot

            plot_sweep(
                summaries=report.summaries, path=plan.plot, title=tables.plot_title(plan, connection.vendor)
            )
        if plan.output_format is OutputFormat.JSON:
            self.stdout.write(json.dumps(tables.sweep_document(report), indent=2))
        else:
            self.stdout.write(tables.sweep_table(report))
            if plan.plot is not None:
                self.stdout.write(self.style.SUCCESS(f"Plot saved to {plan.plot}."))
            if plan.record:
                self.stdout.write(
                    f"Every trial's timeline and audit: {plan.target.base_url}{reverse('labreport:runs')}"
                )
