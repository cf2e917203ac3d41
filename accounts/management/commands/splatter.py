import argparse
import json
import statistics
import sys
from dataclasses import asdict
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from tabulate import tabulate
from tqdm import tqdm

from accounts.experiments import (
    BURST_DRIVER,
    DRIVERS,
    BurstLoadRun,
    LoadRun,
    MatrixRow,
    burst_splatter,
    resolve_driver,
    splatter,
    strategy_matrix,
)
from accounts.management.database_errors import reports_database_errors
from accounts.management.password_input import PASSWORD_ENV_VAR, read_password
from accounts.provisioning import ProvisioningError
from accounts.race_window import DEFAULT_TIMEOUT_SECONDS, MAX_TIMEOUT_SECONDS, BarrierStats
from accounts.trials import SweepReport, run_sweep
from accounts.withdrawals import MAX_WITHDRAWAL_AMOUNT, Strategy
from loadgen.burst import FAIL, INDETERMINATE, OK
from loadgen.errors import LoadError
from loadgen.target import parse_target

ALL_STRATEGIES = "all"
DEFAULT_REQUESTS = 100
MAX_REQUESTS = 100_000
MAX_CONCURRENCY = 1_000
MAX_TRIALS = 10_000
MAX_USERS = 100


def _number_list(value: str) -> list[int]:
    try:
        numbers = [int(part) for part in value.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a number or a comma-separated list of numbers, like 2,5,10"
        ) from None
    return numbers


def _driver_list(value: str) -> list[str]:
    drivers = value.split(",")
    unknown = [driver for driver in drivers if driver not in DRIVERS]
    if unknown or len(set(drivers)) != len(drivers):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a driver or a comma-separated list of distinct drivers ({', '.join(DRIVERS)})"
        )
    return drivers


class Command(BaseCommand):
    help = (
        "Log in and fire concurrent withdrawals at a running lab server: with Apache Bench, as the "
        "blog's splatter.sh does, or with the built-in burst driver; once, or as repeated trials. "
        f"The password comes from ${PASSWORD_ENV_VAR}, or a prompt."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--url", default="http://127.0.0.1:8001", help="The lab server (default: http://127.0.0.1:8001)."
        )
        parser.add_argument("--username", default="demo", help="Log in as this user (default: demo).")
        parser.add_argument(
            "-n",
            "--requests",
            type=int,
            help=f"Requests to send (default: {DEFAULT_REQUESTS}). Not with --trials, where each "
            "trial sends one burst of -c.",
        )
        parser.add_argument(
            "-c",
            "--concurrency",
            type=_number_list,
            default=[3],
            help="Requests in flight at once; the burst driver's burst size (default: 3). With "
            "--trials, a comma-separated list of levels, like 2,5,10,20,50.",
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
            "--driver",
            type=_driver_list,
            help="ab (Apache Bench, the default, as in the blog) or burst (built in: each burst "
            "released by its last bytes at once). Without ab installed, burst is used. With "
            "--trials, a comma-separated list, like ab,burst.",
        )
        parser.add_argument(
            "--users",
            type=int,
            default=1,
            help="Burst driver: log in as USERNAME, USERNAME-2 ... USERNAME-K, each with its own "
            "account, and share each burst among them (default: 1).",
        )
        parser.add_argument(
            "--history",
            type=Path,
            metavar="FILE.json",
            help="Burst driver: save each request's status, balance and client times to this JSON file.",
        )
        parser.add_argument(
            "--race-window",
            action="store_true",
            help="Arm the deterministic race mode for each burst's share of withdrawals per account. "
            "The server must run with RACE_WINDOW=armed (see docs/race-mode.md).",
        )
        parser.add_argument(
            "--race-window-timeout",
            type=float,
            default=DEFAULT_TIMEOUT_SECONDS,
            help="With --race-window: seconds a held withdrawal waits for another before all "
            f"go on (default: {DEFAULT_TIMEOUT_SECONDS}).",
        )
        parser.add_argument(
            "--trials",
            type=int,
            help="Repeat: for each -c level, reset the account, fire one burst, audit, this many "
            "times; then report hit rates, lost fractions and arrival spreads.",
        )
        parser.add_argument(
            "--format",
            choices=["table", "json"],
            default="table",
            help="With --trials: output format (default: table).",
        )
        parser.add_argument(
            "--plot",
            type=Path,
            metavar="FILE.png",
            help="With --trials: draw lost fraction and hit rate to this PNG file.",
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

    @reports_database_errors
    def handle(
        self,
        *,
        url,
        username,
        requests,
        concurrency,
        amount,
        strategy,
        driver,
        users,
        history,
        race_window,
        race_window_timeout,
        trials,
        format,
        plot,
        record,
        allow_remote,
        interactive,
        **options,
    ):
        drivers = driver or [self._default_driver()]
        self._check_mode(
            drivers=drivers,
            levels=concurrency,
            requests=requests,
            trials=trials,
            record=record,
            history=history,
            format=format,
            plot=plot,
        )
        if trials is None:
            requests = DEFAULT_REQUESTS if requests is None else requests
            if not 1 <= requests <= MAX_REQUESTS:
                raise CommandError(f"-n must be from 1 to {MAX_REQUESTS}, not {requests}.")
        for level in concurrency:
            if trials is not None and not 1 <= level <= MAX_CONCURRENCY:
                raise CommandError(f"Each -c level must be from 1 to {MAX_CONCURRENCY}, not {level}.")
            if trials is None and not 1 <= level <= min(requests, MAX_CONCURRENCY):
                raise CommandError(
                    f"-c must be from 1 to -n ({requests}) and at most {MAX_CONCURRENCY}, not {level}."
                )
        if not 1 <= amount <= MAX_WITHDRAWAL_AMOUNT:
            raise CommandError(f"--amount must be from 1 to {MAX_WITHDRAWAL_AMOUNT}, not {amount}.")
        self._check_users(users=users, drivers=drivers, levels=concurrency)
        if not 0 < race_window_timeout <= MAX_TIMEOUT_SECONDS:
            raise CommandError(
                f"--race-window-timeout must be above 0 and at most {MAX_TIMEOUT_SECONDS} seconds, "
                f"not {race_window_timeout}."
            )
        if strategy == ALL_STRATEGIES and not record:
            raise CommandError("--strategy all audits every run, so it cannot be combined with --no-record.")
        if strategy == ALL_STRATEGIES and race_window and trials is None:
            raise CommandError("--race-window with --strategy all needs --trials N.")
        try:
            target = parse_target(url, allow_remote=allow_remote)
        except LoadError as error:
            raise CommandError(str(error)) from error
        if interactive and (trials is not None or strategy == ALL_STRATEGIES):
            self._confirm_resets(username=username, users=users, trials=trials)
        password = read_password(no_input=not interactive, confirm=False)
        strategies = tuple(Strategy) if strategy == ALL_STRATEGIES else (Strategy(strategy),)
        timeout = race_window_timeout if race_window else None
        load = dict(target=target, username=username, password=password, amount=amount)
        try:
            if trials is not None:
                self._sweep(
                    load,
                    drivers=drivers,
                    strategies=strategies,
                    levels=concurrency,
                    trials=trials,
                    users=users,
                    race_window_timeout=timeout,
                    format=format,
                    plot=plot,
                    verbosity=options["verbosity"],
                )
                return
            load.update(requests=requests, concurrency=concurrency[0])
            if strategy == ALL_STRATEGIES:
                self._print_matrix(strategy_matrix(**load, driver=drivers[0]))
            elif drivers[0] == BURST_DRIVER:
                run = burst_splatter(
                    **load,
                    strategy=Strategy(strategy),
                    users=users,
                    record=record,
                    history=history,
                    race_window_timeout=timeout,
                )
                self._print_burst_run(run)
            else:
                run = splatter(
                    **load, strategy=Strategy(strategy), record=record, race_window_timeout=timeout
                )
                self._print_run(run, verbosity=options["verbosity"])
        except (LoadError, ProvisioningError) as error:
            raise CommandError(str(error)) from error

    def _confirm_resets(self, *, username: str, users: int, trials: int | None) -> None:
        if trials is None:
            prompt = f"--strategy all resets {username}'s account before each strategy."
        else:
            accounts = (
                f"{username}'s account" if users == 1 else f"the accounts of {username} to {username}-{users}"
            )
            prompt = f"--trials resets {accounts} before each trial."
        answer = input(f"{prompt} Type 'yes' to continue, or 'no' to cancel: ")
        if answer != "yes":
            raise CommandError("Cancelled; nothing was sent or changed.")

    def _default_driver(self) -> str:
        driver, note = resolve_driver(None)
        if note:
            self.stderr.write(note, style_func=self.style.WARNING)
        return driver

    def _check_mode(self, *, drivers, levels, requests, trials, record, history, format, plot) -> None:
        if trials is not None:
            if not 1 <= trials <= MAX_TRIALS:
                raise CommandError(f"--trials must be from 1 to {MAX_TRIALS}, not {trials}.")
            if requests is not None:
                raise CommandError(
                    "-n does not apply with --trials: each trial fires one burst of -c requests."
                )
            if not record:
                raise CommandError("--trials audits every trial, so it cannot be combined with --no-record.")
            if history is not None:
                raise CommandError("--history saves a single run; drop --trials or --history.")
            if plot is not None and plot.suffix.lower() != ".png":
                raise CommandError(f"--plot writes a PNG: give a file name ending in .png, not {plot}.")
            return
        if len(drivers) > 1:
            raise CommandError("Several drivers can only be compared in trials: add --trials N, or name one.")
        if len(levels) > 1:
            raise CommandError("A list of -c levels needs --trials N; for a single run give one number.")
        if format != "table" or plot is not None:
            raise CommandError("--format json and --plot summarise trials: add --trials N.")
        if history is not None and drivers[0] != BURST_DRIVER:
            raise CommandError("--history records the burst driver's requests: add --driver burst.")

    def _check_users(self, *, users: int, drivers: list[str], levels: list[int]) -> None:
        if not 1 <= users <= MAX_USERS:
            raise CommandError(f"--users must be from 1 to {MAX_USERS}, not {users}.")
        if users > 1 and any(driver != BURST_DRIVER for driver in drivers):
            raise CommandError("ab sends a single session cookie, so --users above 1 needs --driver burst.")
        if users > min(levels):
            raise CommandError(
                f"--users ({users}) must be at most -c ({min(levels)}): each user needs a request."
            )

    def _sweep(self, load: dict, *, format: str, plot: Path | None, verbosity: int, **sweep) -> None:
        total = len(sweep["levels"]) * sweep["trials"] * len(sweep["drivers"]) * len(sweep["strategies"])
        # disable=None: a bar on a terminal, nothing in a pipe or a test.
        with tqdm(total=total, unit="trial", file=sys.stderr, disable=None if verbosity else True) as bar:
            report = run_sweep(**load, **sweep, on_trial=lambda outcome: bar.update())
        if plot is not None:
            from accounts.trial_plot import plot_sweep

            strategies = ", ".join(sweep["strategies"])
            title = f"{strategies}, {sweep['trials']} trial(s) per point, {connection.vendor}"
            plot_sweep(summaries=report.summaries, path=plot, title=title)
        if format == "json":
            self.stdout.write(json.dumps(_sweep_as_json(report), indent=2))
        else:
            self._print_sweep(report)
        if plot is not None and format == "table":
            self.stdout.write(self.style.SUCCESS(f"Plot saved to {plot}."))

    def _print_sweep(self, report: SweepReport) -> None:
        rows = [
            (
                s.driver,
                s.strategy,
                s.concurrency,
                s.trials,
                s.hits,
                f"{s.hit_rate:.0%}",
                f"{s.hit_rate_low:.0%}-{s.hit_rate_high:.0%}",
                f"{s.mean_lost_fraction:.3f}",
                _ms(s.median_spread_ms),
                _ms(s.median_first_gap_ms),
                s.server_errors,
            )
            for s in report.summaries
        ]
        headers = [
            "driver",
            "strategy",
            "-c",
            "trials",
            "hits",
            "hit rate",
            "95% CI",
            "lost fraction (mean)",
            "spread ms (median)",
            "first two ms (median)",
            "5xx",
        ]
        self.stdout.write(tabulate(rows, headers=headers))
        for level, stats in report.barriers.items():
            self.stdout.write(f"-c {level}: " + _barrier_line(stats))

    def _print_burst_run(self, run: BurstLoadRun) -> None:
        report = run.report
        outcomes = report.outcomes()
        statuses = ", ".join(f"{n}x{status}" for status, n in sorted(report.statuses.items()))
        spreads = report.release_spreads
        latencies = report.latencies
        rows = [
            ("strategy", run.strategy),
            ("bursts x size", f"{report.bursts} x {report.burst_size}"),
            ("ok (2xx)", outcomes[OK]),
            ("refused (4xx, or never sent)", outcomes[FAIL]),
            ("indeterminate (5xx, no answer)", outcomes[INDETERMINATE]),
            ("statuses", statuses or "-"),
            ("requests/s", f"{report.requests_per_second:.1f}"),
            ("release spread (us, median)", f"{statistics.median(spreads) * 1e6:.0f}" if spreads else "-"),
            (
                "latency after release (ms, median)",
                _ms(statistics.median(latencies) * 1e3) if latencies else "-",
            ),
            ("real-time release", "yes" if report.realtime_release else "no (no CAP_SYS_NICE)"),
        ]
        self.stdout.write(tabulate(rows, headers=["burst", "value"]))
        if run.barrier is not None:
            self.stdout.write(_barrier_line(run.barrier))
        if run.history is not None:
            self.stdout.write(f"History of {report.requests} requests saved to {run.history}.")
        for client_run in run.client_runs:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Recorded run {client_run.pk} on account {client_run.account_id}: {client_run.ok} ok, "
                    f"{client_run.failed} refused, {client_run.indeterminate} indeterminate. "
                    "Check it with `manage.py audit_transactions`."
                )
            )

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
        if run.barrier is not None:
            self.stdout.write(_barrier_line(run.barrier))
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


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _barrier_line(stats: BarrierStats) -> str:
    return (
        f"Race window: held {stats.held} withdrawal(s) in {stats.windows} window(s), "
        f"{stats.timeouts} closed by the timeout rather than by all parties arriving."
    )


def _sweep_as_json(report: SweepReport) -> dict:
    return {
        "summaries": [asdict(summary) for summary in report.summaries],
        "trials": [
            {**asdict(outcome), "hit": outcome.hit, "lost_fraction": outcome.lost_fraction}
            for outcome in report.outcomes
        ],
        "race_window": {str(level): asdict(stats) for level, stats in report.barriers.items()},
    }
