import json
import sys
from pathlib import Path

from django.core.management.base import CommandError
from django.db import connection
from django.urls import reverse
from tqdm import tqdm

from accounts.models import Run
from accounts.provisioning import ProvisioningError
from accounts.withdrawals import Strategy
from experiment import tables
from experiment.plan import (
    Mode,
    OutputFormat,
    PlanError,
    RunPlan,
)
from experiment.race_runs import run_plan
from experiment.summaries import summarise_scenario, sweep_report
from racelab.loadgen.drivers import default_driver
from racelab.loadgen.errors import LoadError
from racelab.loadgen.target import parse_target
from racelab.management.arguments import ascii_int
from racelab.management.commands import splatter as endpoint
from racelab.management.commands.splatter import ENDPOINT_OPTIONS, USAGE_ERROR, locust_options
from racelab.management.confirmation import confirm
from racelab.management.database_errors import reports_database_errors
from racelab.management.password_input import PASSWORD_ENV_VAR, read_password
from racelab.runs.pipeline import RaceRun, RaceRuns
from scenarios.catalogue import SCENARIOS

ALL_STRATEGIES = "all"
DEMO_USER = "demo"


# The demo's own options: its races (the withdrawal and the catalogue) and its experiments.
DEMO_OPTIONS = {
    "amount": "--amount",
    "scenario": "--scenario",
    "strategy": "--strategy",
    "users": "--users",
    "trials": "--trials",
    "plot": "--plot",
}


class Command(endpoint.Command):
    help = (
        "Log in and fire concurrent requests at a running lab server: at one of its races (the bank's "
        "withdrawal, or --scenario NAME), or at any endpoint (--path); with Apache Bench, as the "
        "blog's splatter.sh does, with the built-in burst driver, or on Locust's master and workers; "
        "once, for every strategy, or as repeated trials. The password comes from "
        f"${PASSWORD_ENV_VAR}, or a prompt."
    )
    locust_burst_default = "with --trials or --race-window"

    def add_arguments(self, parser):
        super().add_arguments(parser)
        # The lab's server; its races log in as the seeded user unless told (--path: anonymous).
        parser.set_defaults(url="http://127.0.0.1:8001")
        add = parser.add_argument
        add("--amount", type=ascii_int, help="Amount each request withdraws (default: 1).")
        add(
            "--scenario",
            choices=list(SCENARIOS),
            help="A race of the catalogue (docs/scenarios.md), each run from its reset data and judged by "
            "its audit; default: the bank's withdrawal as the blog runs it, recorded for "
            "audit_transactions and the report page.",
        )
        add(
            "--strategy",
            help=f"The scenario's strategy (default: naive; withdrawal: {', '.join(Strategy)}); 'all' "
            "compares them, each from reset data.",
        )
        add("--users", type=ascii_int, help="Burst, locust: USERNAME, USERNAME-2 ... (default: 1).")
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
            # disable=None: a bar on a terminal, nothing in a pipe or a test; none for the
            # withdrawal's single run or its strategies side by side.
            with tqdm(
                total=len(plan.levels) * (plan.trials or 1) * len(plan.drivers) * len(plan.strategies),
                unit="trial" if plan.scenario is None else "run",
                file=sys.stderr,
                disable=None
                if verbosity and (plan.scenario is not None or plan.trials is not None)
                else True,
            ) as bar:
                runs = run_plan(plan=plan, password=password, on_run=lambda run: bar.update())
            self._print(plan, runs=runs, verbosity=verbosity)
            if plan.mode is not Mode.TRIALS or plan.scenario is not None:
                # The withdrawal's trials count their lost workers in one warning instead.
                for run in runs.runs:
                    self._warn_lost_workers(run.load.report)
            if plan.scenario is not None:
                for line in tables.unjudged_lines(runs.runs, scenario=plan.scenario.name):
                    self.stderr.write(line, style_func=self.style.WARNING)
        except (PlanError, LoadError, ProvisioningError) as error:
            raise CommandError(str(error)) from error

    def _print(self, plan: RunPlan, *, runs: RaceRuns, verbosity: int) -> None:
        if plan.scenario is not None:
            self._scenario(plan, runs=runs)
        elif plan.mode is Mode.TRIALS:
            self._sweep(plan, runs=runs)
        elif plan.mode is Mode.MATRIX:
            self.stdout.write(tables.matrix_table(runs.runs))
            for run in runs.runs:
                self._report_pages(plan, run.judgement.runs)
        else:
            self._single(plan, run=runs.runs[0], verbosity=verbosity)

    def _plan(self, options: dict) -> RunPlan:
        drivers = options["driver"]
        if drivers is None:
            driver, note = default_driver()
            if note:
                self.stderr.write(note, style_func=self.style.WARNING)
            drivers = (driver,)
        scenario = None if options["scenario"] is None else SCENARIOS[options["scenario"]]
        if scenario is not None and options["amount"] is not None:
            raise PlanError(
                f"--amount is for the withdrawal without --scenario; the {scenario.name} scenario sends "
                "its own form."
            )
        strategy = options["strategy"] or "naive"
        every = strategy == ALL_STRATEGIES
        known = tuple(Strategy) if scenario is None else scenario.strategies
        targets = tuple(
            parse_target(url.strip(), allow_remote=options["allow_remote"])
            for url in options["url"].split(",")
        )
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
            locust=locust_options(options),
        )

    def _scenario(self, plan: RunPlan, *, runs: RaceRuns) -> None:
        summaries = summarise_scenario(runs.runs, scenario=plan.scenario, race_window=plan.race_window)
        if plan.output_format is OutputFormat.JSON:
            self.stdout.write(json.dumps(tables.scenario_document(runs.runs, summaries), indent=2))
            return
        scenario = plan.scenario
        self.stdout.write(f"Scenario {scenario.name}: {scenario.title}, as in {scenario.bug}\n")
        if plan.trials is not None:
            self.stdout.write(tables.scenario_sweep_table(summaries))
        else:
            self.stdout.write(tables.scenario_runs_table(runs.runs))
        if plan.history is not None:
            self.stdout.write(f"History of {runs.runs[0].load.requests} requests saved to {plan.history}.")

    def _single(self, plan: RunPlan, *, run: RaceRun, verbosity: int) -> None:
        if verbosity >= 2:
            for argv in run.load.argvs:
                self.stdout.write("$ " + " ".join(argv))
        self.stdout.write(tables.run_report(run, history=plan.history))
        for recorded in run.judgement.runs:
            self.stdout.write(self.style.SUCCESS(tables.recorded_line(recorded)))
        self._report_pages(plan, run.judgement.runs)

    def _warn_lost_workers(self, report) -> None:
        for line in tables.lost_worker_lines(report):
            self.stderr.write(line, style_func=self.style.WARNING)

    def _report_pages(self, plan: RunPlan, runs: list[Run]) -> None:
        for run in runs:
            url = plan.target.base_url + reverse("labreport:run", args=[run.pk])
            self.stdout.write(f"Timeline and audit of {run.strategy} on account {run.account_id}: {url}")

    def _sweep(self, plan: RunPlan, *, runs: RaceRuns) -> None:
        report = sweep_report(runs)
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
