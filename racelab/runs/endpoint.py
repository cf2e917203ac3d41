"""One run against an endpoint of any project: log in, arm the window, fire, check the verdict."""

from collections import Counter
from dataclasses import dataclass

from racelab.loadgen.ab import AbReport
from racelab.loadgen.drivers import LoadResult, logged_in
from racelab.loadgen.outcomes import Outcome
from racelab.loadgen.target import LoadRequest
from racelab.racewindow.barrier import BarrierStats
from racelab.runs.arming import arming
from racelab.runs.pipeline import Fired, HistoryFile, Schedule, run_races
from racelab.runs.plan import EndpointPlan


@dataclass(frozen=True, kw_only=True)
class EndpointRun:
    plan: EndpointPlan
    load: LoadResult
    # Seconds from the first request sent to the last answer.
    elapsed: float
    barrier: BarrierStats | None
    # What --check counted after the run; None without --check.
    violations: int | None


@dataclass(frozen=True, kw_only=True)
class EndpointRace:
    """The plan's endpoint as the run loop sees it: nothing to reset, and the check's count of
    violations as the judgement."""

    plan: EndpointPlan

    @property
    def stamps_requests(self) -> bool:
        return False

    def requests(self, *, strategy: str | None, concurrency: int) -> tuple[LoadRequest, ...]:
        return self.plan.requests

    def reset(self) -> None:
        pass

    def held(self, *, strategy: str | None) -> bool:
        return True

    def judge(self, fired: Fired) -> int | None:
        return self.plan.check.violations() if self.plan.check is not None else None


def run_endpoint(*, plan: EndpointPlan) -> EndpointRun:
    """The plan's requests, fired once; the check runs before anything is sent (a check that
    cannot run stops the command while nothing has changed) and again, for the verdict, after."""
    if plan.check is not None:
        plan.check.violations()
    with logged_in(
        name=plan.driver, targets=[plan.target], credentials=plan.credentials, locust_setup=plan.locust_setup
    ) as driver:
        (run,) = run_races(
            race=EndpointRace(plan=plan),
            drivers=[driver],
            schedule=Schedule(levels=(plan.concurrency,), requests=plan.count),
            arm=lambda level: arming(
                parties=plan.parties, timeout=plan.race_window_timeout, at=plan.race_window_at
            ),
            history=None if plan.history is None else HistoryFile(path=plan.history, targets=[plan.target]),
        ).runs
    return EndpointRun(
        plan=plan, load=run.load, elapsed=run.fired.elapsed, barrier=run.barrier, violations=run.judgement
    )


def unjudged_reason(run: EndpointRun) -> str | None:
    """Why the run's outcome says nothing about a race, or None: no request was answered, or none
    succeeded (a wrong path or method, a refused login, CSRF settings of the project's own)."""
    statuses = answer_statuses(run.load)
    requests, url = run.load.requests, run.plan.target.url(run.plan.requests[0].path)
    if not statuses:
        return f"None of the {requests} requests got an answer from {url}: is the server running there?"
    if run.load.totals[Outcome.OK] == 0:
        seen = ", ".join(f"{count} x {status}" for status, count in sorted(statuses.items()))
        return (
            f"None of the {requests} requests to {url} succeeded ({seen}), so there is no race to judge: "
            "check --path and --method, the login (--username, --login-url), and the CSRF names taken "
            f"from the project's settings ({run.plan.credentials.cookie_names.described})."
        )
    return None


def answer_statuses(load: LoadResult) -> Counter:
    """How many answers of each HTTP status the run got (ab counts its 2xx together, as 200)."""
    report = load.report
    if isinstance(report, AbReport):
        return Counter({200: report.ok}) + report.non_2xx_statuses
    return report.statuses


def endpoint_document(run: EndpointRun) -> dict:
    """``splatter --path ... --format json`` (docs/json-schema.json, splatter-endpoint)."""
    plan, totals, stats = run.plan, run.load.totals, run.barrier
    return {
        "schema": "splatter-endpoint/1",
        "target": plan.target.base_url,
        "method": plan.requests[0].method,
        "path": plan.requests[0].path,
        "driver": plan.driver.value,
        "requests": run.load.requests,
        "concurrency": plan.concurrency,
        **{outcome.value: totals[outcome] for outcome in Outcome},
        "server_errors": run.load.server_errors,
        "elapsed_seconds": round(run.elapsed, 6),
        "race_window": None
        if stats is None
        else {
            "held": stats.held,
            "windows": stats.windows,
            "serialized": stats.serialized,
            "timeouts": stats.timeouts,
        },
        "check": None if plan.check is None else {"check": plan.check.text, "violations": run.violations},
    }


def barrier_sentence(stats: BarrierStats) -> str:
    """What the race window did, in one sentence: how each window closed."""
    arrived = stats.windows - stats.serialized - stats.timeouts
    return (
        f"Race window: held {stats.held} request(s) in {stats.windows} window(s): {arrived} closed by "
        f"every party arriving, {stats.serialized} serialized by a lock, {stats.timeouts} by the timeout."
    )
