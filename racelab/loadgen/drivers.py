"""The load drivers behind one interface: log the clients in once, then fire as many runs as needed.

``ab`` is the blog's way (curl logs in, each run is one ``ab`` process); ``burst`` is the
built-in last-byte-synchronised driver from ``racelab.loadgen.burst``; ``locust`` runs on Locust's master
and workers, its bursts synchronised across them (``racelab.loadgen.locust``). Each answers a ``LoadResult``.
"""

import enum
import json
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from racelab.loadgen.ab import AbReport, merged_reports, run_ab
from racelab.loadgen.burst import BurstRun, BurstSession, run_bursts, save_history
from racelab.loadgen.http_login import cookies_of_session, log_in_http
from racelab.loadgen.locust.result import LocustRun, locust_history_document
from racelab.loadgen.locust.runner import LocustSession, LocustSetup, locust_session
from racelab.loadgen.login import Credentials, SessionCookies, log_in
from racelab.loadgen.outcomes import Outcome
from racelab.loadgen.target import LoadRequest, Target
from racelab.loadgen.tools import require_tool

AB_MISSING = "ab is not installed (apt-get install apache2-utils): using the built-in burst driver instead."


class DriverName(enum.StrEnum):
    AB = "ab"
    BURST = "burst"
    LOCUST = "locust"


@dataclass(frozen=True, kw_only=True)
class LoadResult:
    """What a driver sent and saw in one run: outcome counts per user, and its own report."""

    driver: DriverName
    # Request i sent posts[i % len(posts)] (ab: each form from an ab process of its own).
    posts: tuple[LoadRequest, ...]
    requests: int
    outcomes: dict[str, Counter[Outcome]]
    server_errors: int
    report: AbReport | BurstRun | LocustRun
    # The ab command lines, for -v 2; none for the other drivers.
    argvs: list[list[str]]

    @property
    def requests_per_second(self) -> float:
        return self.report.requests_per_second

    @property
    def totals(self) -> Counter[Outcome]:
        return sum(self.outcomes.values(), start=Counter())


def recorded_load(
    *,
    driver: DriverName,
    posts: tuple[LoadRequest, ...],
    requests: int,
    run: BurstRun | LocustRun,
    clients: list[str],
) -> LoadResult:
    """A run of the drivers that record every request: its outcomes counted per client."""
    return LoadResult(
        driver=driver,
        posts=posts,
        requests=requests,
        outcomes={client: run.outcomes(username=client) for client in clients},
        server_errors=run.server_errors,
        report=run,
        argvs=[],
    )


class AbDriver:
    """The blog's way: curl logs in once, then each run is one ``ab`` process per form, side by
    side, sharing the requests and the concurrency between them."""

    name = DriverName.AB

    def __init__(self, *, target: Target, credentials: Credentials, workdir: Path) -> None:
        self.target = target
        # The plan allows ab a single client: ab sends one session cookie.
        (self.username,) = credentials.clients
        self.workdir = workdir
        if credentials.form is None:
            self.cookies = not_logged_in(target=target, credentials=credentials)
        else:
            self.cookies = log_in(
                target=target,
                username=self.username,
                password=credentials.password,
                form=credentials.form,
                names=credentials.cookie_names,
                workdir=workdir,
            )

    def fire(
        self, *, posts: tuple[LoadRequest, ...], requests: int, concurrency: int, run_token: str | None = None
    ) -> LoadResult:
        def one(number: int, post: LoadRequest) -> tuple[list[str], AbReport]:
            return run_ab(
                url=self.target.post_url(post),
                cookies=self.cookies,
                requests=_share(requests, parts=len(posts), number=number),
                concurrency=max(1, _share(concurrency, parts=len(posts), number=number)),
                form=post.body if post.method != "GET" else None,
                method=post.method,
                content_type=post.content_type,
                headers=(*self.target.origin_headers(post), *post.headers),
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

    def __init__(self, *, target: Target, credentials: Credentials) -> None:
        self.target = target
        self.sessions = [
            BurstSession(username=client, cookies=cookies)
            for client, cookies in http_sessions(target=target, credentials=credentials).items()
        ]

    def fire(
        self, *, posts: tuple[LoadRequest, ...], requests: int, concurrency: int, run_token: str | None = None
    ) -> LoadResult:
        run = run_bursts(
            target=self.target,
            sessions=self.sessions,
            posts=posts,
            requests=requests,
            burst_size=concurrency,
            run_token=run_token,
        )
        clients = [session.username for session in self.sessions]
        return recorded_load(driver=self.name, posts=posts, requests=requests, run=run, clients=clients)


class LocustDriver:
    """Locust's master and workers, started once for the whole command (docs/locust.md); each
    worker logs the users in itself, the blog's way, with the password from its environment."""

    name = DriverName.LOCUST

    def __init__(self, *, targets: list[Target], credentials: Credentials, session: LocustSession) -> None:
        self.targets = targets
        self.credentials = credentials
        self.session = session

    def fire(
        self, *, posts: tuple[LoadRequest, ...], requests: int, concurrency: int, run_token: str | None = None
    ) -> LoadResult:
        clients = list(self.credentials.clients)
        run = self.session.run(
            targets=self.targets,
            usernames=clients,
            login=self.credentials.form,
            posts=posts,
            requests=requests,
            concurrency=concurrency,
            run_token=run_token,
            cookie_names=self.credentials.cookie_names,
            token_page=self.credentials.token_page,
        )
        return recorded_load(driver=self.name, posts=posts, requests=requests, run=run, clients=clients)


Driver = AbDriver | BurstDriver | LocustDriver


def save_load_history(load: LoadResult, *, path: Path, targets: list[Target]) -> None:
    """The run's per-request history as JSON (the burst and Locust drivers; ab keeps none)."""
    if isinstance(load.report, LocustRun):
        document = locust_history_document(load.report, targets=targets)
        path.write_text(json.dumps(document, indent=2) + "\n")
    else:
        save_history(load.report, path=path, target=targets[0])


def http_sessions(*, target: Target, credentials: Credentials) -> dict[str, SessionCookies]:
    """Each client's cookies: each user logged in with Python's HTTP client, or the given session."""
    if credentials.form is None:
        return dict.fromkeys(credentials.clients, not_logged_in(target=target, credentials=credentials))
    return {
        username: log_in_http(
            target=target,
            username=username,
            password=credentials.password,
            form=credentials.form,
            names=credentials.cookie_names,
        )
        for username in credentials.clients
    }


def not_logged_in(*, target: Target, credentials: Credentials) -> SessionCookies:
    """The cookies of the one client that does not log in: anonymous, or the session given."""
    return cookies_of_session(
        target=target,
        sessionid=credentials.sessionid,
        names=credentials.cookie_names,
        page=credentials.token_page,
    )


def _share(total: int, *, parts: int, number: int) -> int:
    """Part ``number`` of ``total`` split as evenly as whole numbers allow."""
    return total // parts + (1 if number < total % parts else 0)


def default_driver() -> tuple[DriverName, str | None]:
    """ab, as in the blog; the burst driver, with a note to show, when ab is not installed."""
    if shutil.which("ab") is not None:
        return DriverName.AB, None
    return DriverName.BURST, AB_MISSING


@contextmanager
def logged_in(
    *,
    name: DriverName,
    targets: list[Target],
    credentials: Credentials,
    locust_setup: LocustSetup | None = None,
) -> Iterator[Driver]:
    """The named driver with the clients logged in at ``targets[0]`` (Locust: request i goes to
    targets[i % len]), ready to fire as many runs as needed."""
    target = targets[0]
    if name is DriverName.LOCUST:
        if locust_setup is None:
            raise ValueError("the Locust driver needs a LocustSetup")
        # Once here first: a wrong password or an unreachable server is then a clear error
        # before any Locust process starts.
        http_sessions(target=target, credentials=credentials)
        with locust_session(
            setup=locust_setup,
            targets=targets,
            password=credentials.password,
            sessionid=credentials.sessionid,
        ) as session:
            yield LocustDriver(targets=targets, credentials=credentials, session=session)
        return
    if name is DriverName.BURST:
        yield BurstDriver(target=target, credentials=credentials)
        return
    # Both before the login, so a missing ab changes nothing (not even the user's last_login).
    if credentials.form is not None:
        require_tool("curl")
    require_tool("ab")
    with tempfile.TemporaryDirectory(prefix="splatter-") as workdir:
        yield AbDriver(target=target, credentials=credentials, workdir=Path(workdir))
