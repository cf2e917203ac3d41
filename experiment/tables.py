"""What `splatter` prints: each result as a table or JSON document, built from plain values."""

import statistics
from dataclasses import asdict
from pathlib import Path

from tabulate import tabulate

from accounts.models import Run
from experiment.plan import RunPlan
from experiment.race_runs import WithdrawalRecord
from experiment.requests import strategy_of
from experiment.summaries import ScenarioSummary, SweepReport, scenario_violations
from racelab.loadgen.ab import AbReport
from racelab.loadgen.burst import BurstRun
from racelab.loadgen.locust.protocol import LocustMode
from racelab.loadgen.locust.result import LocustRun
from racelab.loadgen.outcomes import Outcome
from racelab.runs.endpoint import answer_statuses, barrier_sentence
from racelab.runs.pipeline import RaceRun
from scenarios.audit import ScenarioAudit, scenario_audit_document

# The `schema` of each JSON document splatter prints, as docs/json-schema.json names them: a
# renamed or removed field takes a new version.
TRIALS_SCHEMA = "splatter-trials/1"
SCENARIO_SCHEMA = "splatter-scenario/1"

MATRIX_HEADERS = [
    "strategy",
    "ok",
    "lost withdrawals",
    "lost updates",
    "overdrafts",
    "5xx",
    "requests/s",
    "verdict",
]
# The columns every sweep starts with: one driver, strategy and level, and its hit rate.
GROUP_HEADERS = ["driver", "strategy", "-c", "trials", "hits", "hit rate", "95% CI"]
SWEEP_HEADERS = [
    *GROUP_HEADERS,
    "lost fraction (mean)",
    "spread ms (median)",
    "first two ms (median)",
    "5xx",
]


def run_report(run: RaceRun, *, history: Path | None) -> str:
    """The driver's own figures for one run (ab's report, or the bursts' outcomes and timings),
    then what the race window held and where the history went."""
    report = run.load.report
    if isinstance(report, AbReport):
        lines = [tabulate([("strategy", strategy_of(run.load)), *_ab_rows(report)], headers=["ab", "value"])]
    else:
        rows = [("strategy", strategy_of(run.load)), *_burst_rows(report)]
        if isinstance(report, LocustRun):
            rows += _locust_rows(report)
        lines = [tabulate(rows, headers=[run.load.driver, "value"])]
    if run.barrier is not None:
        lines.append(barrier_sentence(run.barrier))
    if history is not None:
        lines.append(f"History of {run.load.requests} requests saved to {history}.")
    return "\n".join(lines)


def recorded_line(run: Run) -> str:
    return (
        f"Recorded run {run.pk} on account {run.account_id}: {run.ok} ok, "
        f"{run.refused} refused, {run.indeterminate} indeterminate. "
        "Check it with `manage.py audit_transactions`."
    )


def matrix_table(runs: list[RaceRun[WithdrawalRecord]]) -> str:
    """Each strategy's run on its one account, with the account's audit."""
    table = [
        (
            run.fired.strategy,
            run.load.totals[Outcome.OK],
            audit.lost_withdrawals,
            audit.lost_updates,
            audit.overdrafts,
            run.load.server_errors,
            f"{run.load.requests_per_second:.1f}",
            audit.verdict,
        )
        for run in runs
        for audit in run.judgement.audits
    ]
    return tabulate(table, headers=MATRIX_HEADERS)


def sweep_table(report: SweepReport) -> str:
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
    lines = [tabulate(rows, headers=SWEEP_HEADERS)]
    lines += [f"-c {level}: {barrier_sentence(stats)}" for level, stats in report.barriers.items()]
    return "\n".join(lines)


def sweep_document(report: SweepReport) -> dict:
    """The sweep as JSON: per-level summaries, every trial's run, and the race window's figures."""
    return {
        "schema": TRIALS_SCHEMA,
        "summaries": [asdict(summary) for summary in report.summaries],
        "runs": [
            {**asdict(outcome), "hit": outcome.hit, "lost_fraction": outcome.lost_fraction}
            for outcome in report.outcomes
        ],
        "race_window": {str(level): asdict(stats) for level, stats in report.barriers.items()},
    }


def plot_title(plan: RunPlan, vendor: str) -> str:
    return f"{', '.join(plan.strategies)}, {plan.trials} trial(s) per point, {vendor}"


def _ab_rows(report: AbReport) -> list[tuple]:
    statuses = ", ".join(f"{n}x{status}" for status, n in sorted(report.non_2xx_statuses.items()))
    return [
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


def _burst_rows(report: BurstRun) -> list[tuple]:
    outcomes = report.outcomes()
    statuses = ", ".join(f"{n}x{status}" for status, n in sorted(report.statuses.items()))
    spreads, latencies = report.release_spreads, report.latencies
    steady = isinstance(report, LocustRun) and report.mode is LocustMode.STEADY
    return [
        ("users", report.burst_size)
        if steady
        else ("bursts x size", f"{report.bursts} x {report.burst_size}"),
        ("ok (2xx)", outcomes[Outcome.OK]),
        ("refused (4xx, or never sent)", outcomes[Outcome.REFUSED]),
        ("indeterminate (5xx, no answer)", outcomes[Outcome.INDETERMINATE]),
        ("statuses", statuses or "-"),
        ("requests/s", f"{report.requests_per_second:.1f}"),
        ("release spread (us, median)", f"{statistics.median(spreads) * 1e6:.0f}" if spreads else "-"),
        ("latency after release (ms, median)", _ms(statistics.median(latencies) * 1e3) if latencies else "-"),
        *(
            ()
            if steady
            else [("real-time release", "yes" if report.realtime_release else "no (no CAP_SYS_NICE)")]
        ),
    ]


def _locust_rows(report: LocustRun) -> list[tuple]:
    lost = report.lost_workers
    return [
        ("Locust mode", report.mode.value),
        ("Locust workers", f"{len(report.workers)}, {len(lost)} lost" if lost else len(report.workers)),
        ("Locust's reports", str(report.output) if report.output is not None else "- (--locust-output DIR)"),
    ]


def unjudged_lines(runs: list[RaceRun[ScenarioAudit]], *, scenario: str) -> list[str]:
    """A warning per scenario run in which no request succeeded: its audit finds nothing broken
    because nothing happened (a user the endpoint does not know, data of someone else's)."""
    lines = []
    for run in runs:
        if run.load.totals[Outcome.OK]:
            continue
        seen = ", ".join(f"{count} x {status}" for status, count in sorted(answer_statuses(run.load).items()))
        lines.append(
            f"None of the {run.load.requests} {run.fired.strategy} requests at -c {run.level} succeeded "
            f"({seen or 'no answer'}): that run's verdict says nothing about the race. Check that the "
            f"{scenario} scenario's data is there for the user who logged in (seed_scenario {scenario})."
        )
    return lines


def lost_worker_lines(report: AbReport | BurstRun) -> list[str]:
    """A warning per Locust worker the master gave up on, and what that means for its requests."""
    if not isinstance(report, LocustRun):
        return []
    return [
        f"Locust worker {worker.id} (pid {worker.pid}) was lost ({worker.lost}): {worker.unanswered} of "
        f"its {worker.requests} request(s) got no answer to it and count as indeterminate."
        if worker.requests
        else f"Locust worker {worker.id} (pid {worker.pid}) was lost ({worker.lost}) before it was handed "
        "a request: the others sent its share."
        for worker in report.lost_workers
    ]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


SCENARIO_RUN_HEADERS = ["driver", "strategy", "-c", "requests", "ok", "refused", "indeterminate", "5xx"]
SCENARIO_SWEEP_HEADERS = [
    *GROUP_HEADERS,
    "violations (mean)",
    "exactly as predicted",
    "5xx",
]


def scenario_runs_table(runs: list[RaceRun[ScenarioAudit]]) -> str:
    """Each run's outcomes, then its audit: the figures, the violations with examples, the verdict."""
    blocks = []
    for run in runs:
        totals = run.load.totals
        outcome_row = [
            run.load.driver,
            strategy_of(run.load),
            run.level,
            run.load.requests,
            totals[Outcome.OK],
            totals[Outcome.REFUSED],
            totals[Outcome.INDETERMINATE],
            run.load.server_errors,
        ]
        lines = [tabulate([outcome_row], headers=SCENARIO_RUN_HEADERS)]
        audit = run.judgement
        lines.append(tabulate(audit.figures, tablefmt="simple_outline"))
        for violation in audit.violations:
            lines.append(
                f"{violation.kind}: {violation.count} ({violation.explanation}); "
                f"first: {violation.first}; worst: {violation.worst}"
            )
        lines.append(f"Invariant ({audit.invariant}): {audit.verdict}")
        if run.load.server_errors:
            lines.append(
                f"5xx answers: {run.load.server_errors}: requests got a server error where the loser "
                "of a race must get a 4xx with a reason (counted as violations)"
            )
        if run.barrier is not None:
            lines.append(barrier_sentence(run.barrier))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def scenario_sweep_table(summaries: list[ScenarioSummary]) -> str:
    rows = [
        (
            s.driver,
            s.strategy,
            s.concurrency,
            s.trials,
            s.hits,
            f"{s.hit_rate:.1%}",
            f"{s.hit_rate_low:.1%}-{s.hit_rate_high:.1%}",
            "-" if s.mean_violations is None else f"{s.mean_violations:.2f}",
            "-" if s.exact is None else f"{s.exact} of {s.trials}",
            s.server_errors,
        )
        for s in summaries
    ]
    return tabulate(rows, headers=SCENARIO_SWEEP_HEADERS)


def scenario_document(runs: list[RaceRun[ScenarioAudit]], summaries: list[ScenarioSummary]) -> dict:
    """Scenario runs as JSON: per-level summaries, and every run with its outcomes and audit."""
    return {
        "schema": SCENARIO_SCHEMA,
        "summaries": [asdict(summary) for summary in summaries],
        "runs": [
            {
                "driver": run.load.driver,
                "strategy": strategy_of(run.load),
                "concurrency": run.level,
                "requests": run.load.requests,
                **{outcome.value: run.load.totals[outcome] for outcome in Outcome},
                "server_errors": run.load.server_errors,
                "requests_per_second": round(run.load.requests_per_second, 1),
                "violations": scenario_violations(run),
                "audit": scenario_audit_document(run.judgement),
                "race_window": None if run.barrier is None else asdict(run.barrier),
            }
            for run in runs
        ],
    }
