"""The load drivers behind one interface: log the users in once, then fire as many runs as needed.

``ab`` is the blog's way (curl logs in, each run is one ``ab`` process); ``burst`` is the
built-in last-byte-synchronised driver from ``loadgen.burst``. Either answers a ``LoadResult``.
"""

import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from experiment.plan import DriverName, RunPlan
from loadgen.ab import AbReport, run_ab
from loadgen.burst import BurstRun, BurstSession, run_bursts
from loadgen.http_login import log_in_http
from loadgen.login import log_in
from loadgen.outcomes import Outcome
from loadgen.target import FormPost, Target
from loadgen.tools import require_tool

AB_MISSING = "ab is not installed (apt-get install apache2-utils): using the built-in burst driver instead."


@dataclass(frozen=True, kw_only=True)
class LoadResult:
    """What a driver sent and saw in one run: outcome counts per user, and its own report."""

    driver: DriverName
    post: FormPost
    requests: int
    outcomes: dict[str, Counter[Outcome]]
    server_errors: int
    report: AbReport | BurstRun
    # The ab command line, for -v 2; empty for the burst driver.
    argv: list[str]

    @property
    def strategy(self) -> str:
        return self.post.strategy

    @property
    def requests_per_second(self) -> float:
        return self.report.requests_per_second

    @property
    def totals(self) -> Counter[Outcome]:
        return sum(self.outcomes.values(), start=Counter())


class AbDriver:
    """The blog's way: curl logs in once, then each run is one ``ab`` process."""

    name = DriverName.AB

    def __init__(self, *, target: Target, username: str, password: str, workdir: Path) -> None:
        self.target = target
        self.username = username
        self.workdir = workdir
        self.cookies = log_in(target=target, username=username, password=password, workdir=workdir)

    def fire(
        self, *, post: FormPost, requests: int, concurrency: int, run_token: str | None = None
    ) -> LoadResult:
        argv, report = run_ab(
            url=self.target.post_url(post),
            cookies=self.cookies,
            requests=requests,
            concurrency=concurrency,
            form=post.body,
            workdir=self.workdir,
            run_token=run_token,
        )
        outcomes = Counter(
            {
                Outcome.OK: report.ok,
                Outcome.FAIL: report.client_errors,
                Outcome.INDETERMINATE: report.indeterminate,
            }
        )
        return LoadResult(
            driver=self.name,
            post=post,
            requests=requests,
            outcomes={self.username: outcomes},
            server_errors=report.server_errors,
            report=report,
            argv=argv,
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
        self, *, post: FormPost, requests: int, concurrency: int, run_token: str | None = None
    ) -> LoadResult:
        run = run_bursts(
            target=self.target,
            sessions=self.sessions,
            post=post,
            requests=requests,
            burst_size=concurrency,
            run_token=run_token,
        )
        return LoadResult(
            driver=self.name,
            post=post,
            requests=requests,
            outcomes={session.username: run.outcomes(username=session.username) for session in self.sessions},
            server_errors=run.server_errors,
            report=run,
            argv=[],
        )


def default_driver() -> tuple[DriverName, str | None]:
    """ab, as in the blog; the burst driver, with a note to show, when ab is not installed."""
    if shutil.which("ab") is not None:
        return DriverName.AB, None
    return DriverName.BURST, AB_MISSING


@contextmanager
def logged_in(*, plan: RunPlan, name: DriverName, password: str) -> Iterator[AbDriver | BurstDriver]:
    """The named driver with the plan's users logged in, ready to fire as many runs as needed."""
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
