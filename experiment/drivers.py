"""The load drivers behind one interface: log the users in once, then fire as many runs as needed.

``ab`` is the blog's way (curl logs in, each run is one ``ab`` process); ``burst`` is the
built-in last-byte-synchronised driver from ``racelab.loadgen.burst``; ``locust`` runs on Locust's master
and workers, its bursts synchronised across them (``racelab.loadgen.locust``). Each answers a ``LoadResult``.
"""

import json
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from experiment.plan import DriverName, RunPlan
from racelab.loadgen.ab import AbReport, merged_reports, run_ab
from racelab.loadgen.burst import BurstRun, BurstSession, run_bursts, save_history
from racelab.loadgen.http_login import log_in_http
from racelab.loadgen.locust.result import LocustRun, locust_history_document
from racelab.loadgen.locust.runner import LocustSession, locust_session
from racelab.loadgen.login import log_in
from racelab.loadgen.outcomes import Outcome
from racelab.loadgen.target import FormPost, Target
from racelab.loadgen.tools import require_tool

AB_MISSING = "ab is not installed (apt-get install apache2-utils): using the built-in burst driver instead."


@dataclass(frozen=True, kw_only=True)
class LoadResult:
    """What a driver sent and saw in one run: outcome counts per user, and its own report."""

    driver: DriverName
    # Request i sent posts[i % len(posts)] (ab: each form from an ab process of its own).
    posts: tuple[FormPost, ...]
    requests: int
    outcomes: dict[str, Counter[Outcome]]
    server_errors: int
    report: AbReport | BurstRun | LocustRun
    # The ab command lines, for -v 2; none for the other drivers.
    argvs: list[list[str]]

    @property
    def strategy(self) -> str:
        return self.posts[0].strategy

    @property
    def requests_per_second(self) -> float:
        return self.report.requests_per_second

    @property
    def totals(self) -> Counter[Outcome]:
        return sum(self.outcomes.values(), start=Counter())


class AbDriver:
    """The blog's way: curl logs in once, then each run is one ``ab`` process per form, side by
    side, sharing the requests and the concurrency between them."""

    name = DriverName.AB

    def __init__(self, *, target: Target, username: str, password: str, workdir: Path) -> None:
        self.target = target
        self.username = username
        self.workdir = workdir
        self.cookies = log_in(target=target, username=username, password=password, workdir=workdir)

    def fire(
        self, *, posts: tuple[FormPost, ...], requests: int, concurrency: int, run_token: str | None = None
    ) -> LoadResult:
        def one(number: int, post: FormPost) -> tuple[list[str], AbReport]:
            return run_ab(
                url=self.target.post_url(post),
                cookies=self.cookies,
                requests=_share(requests, parts=len(posts), number=number),
                concurrency=max(1, _share(concurrency, parts=len(posts), number=number)),
                form=post.body,
                method=post.method,
                workdir=self.workdir,
                run_token=run_token,
            )

        with ThreadPoolExecutor(max_workers=len(posts)) as pool:
            runs = list(pool.map(one, range(len(posts)), posts))
        report = merged_reports([report for _, report in runs])
        outcomes = Counter(
            {
                Outcome.OK: report.ok,
                Outcome.REFUSED: report.client_errors,
                Outcome.INDETERMINATE: report.indeterminate,
            }
        )
        return LoadResult(
            driver=self.name,
            posts=posts,
            requests=requests,
            outcomes={self.username: outcomes},
            server_errors=report.server_errors,
            report=report,
            argvs=[argv for argv, _ in runs],
        )


class BurstDriver:
    """The built-in driver: Python logs each user in once, then each run is a series of bursts."""

    name = DriverName.BURST

    def __init__(self, *, target: Target, usernames: list[str], password: str) -> None:
        self.target = target
        self.sessions = [
            BurstSession(
                username=username, cookies=log_in_http(target=target, username=username, password=password)
            )
            for username in usernames
        ]

    def fire(
        self, *, posts: tuple[FormPost, ...], requests: int, concurrency: int, run_token: str | None = None
    ) -> LoadResult:
        run = run_bursts(
            target=self.target,
            sessions=self.sessions,
            posts=posts,
            requests=requests,
            burst_size=concurrency,
            run_token=run_token,
        )
        return LoadResult(
            driver=self.name,
            posts=posts,
            requests=requests,
            outcomes={session.username: run.outcomes(username=session.username) for session in self.sessions},
            server_errors=run.server_errors,
            report=run,
            argvs=[],
        )


class LocustDriver:
    """Locust's master and workers, started once for the whole command (docs/locust.md); each
    worker logs the users in itself, the blog's way, with the password from its environment."""

    name = DriverName.LOCUST

    def __init__(self, *, plan: RunPlan, session: LocustSession) -> None:
        self.plan = plan
        self.session = session

    def fire(
        self, *, posts: tuple[FormPost, ...], requests: int, concurrency: int, run_token: str | None = None
    ) -> LoadResult:
        run = self.session.run(
            targets=self.plan.app_servers,
            usernames=self.plan.usernames,
            posts=posts,
            requests=requests,
            concurrency=concurrency,
            run_token=run_token,
        )
        return LoadResult(
            driver=self.name,
            posts=posts,
            requests=requests,
            outcomes={username: run.outcomes(username=username) for username in self.plan.usernames},
            server_errors=run.server_errors,
            report=run,
            argvs=[],
        )


Driver = AbDriver | BurstDriver | LocustDriver


def save_load_history(load: LoadResult, *, plan: RunPlan) -> None:
    """The run's per-request history as JSON (the plan allows --history with the burst and
    Locust drivers only)."""
    if isinstance(load.report, LocustRun):
        document = locust_history_document(load.report, targets=plan.app_servers)
        plan.history.write_text(json.dumps(document, indent=2) + "\n")
    else:
        save_history(load.report, path=plan.history, target=plan.target)


def _share(total: int, *, parts: int, number: int) -> int:
    """Part ``number`` of ``total`` split as evenly as whole numbers allow."""
    return total // parts + (1 if number < total % parts else 0)


def default_driver() -> tuple[DriverName, str | None]:
    """ab, as in the blog; the burst driver, with a note to show, when ab is not installed."""
    if shutil.which("ab") is not None:
        return DriverName.AB, None
    return DriverName.BURST, AB_MISSING


@contextmanager
def logged_in(*, plan: RunPlan, name: DriverName, password: str) -> Iterator[Driver]:
    """The named driver with the plan's users logged in, ready to fire as many runs as needed."""
    if name is DriverName.LOCUST:
        # Once here first: a wrong password or an unreachable server is then a clear error
        # before any Locust process starts.
        for username in plan.usernames:
            log_in_http(target=plan.target, username=username, password=password)
        with locust_session(setup=plan.locust_setup, targets=plan.app_servers, password=password) as session:
            yield LocustDriver(plan=plan, session=session)
        return
    if name is DriverName.BURST:
        yield BurstDriver(target=plan.target, usernames=plan.usernames, password=password)
        return
    # Both before the login, so a missing ab changes nothing (not even the user's last_login).
    require_tool("curl")
    require_tool("ab")
    # The plan allows ab a single user: ab sends one session cookie.
    (username,) = plan.usernames
    with tempfile.TemporaryDirectory(prefix="splatter-") as workdir:
        yield AbDriver(target=plan.target, username=username, password=password, workdir=Path(workdir))
