"""A Locust worker's side of a lab run: log the users in, then prime, release and collect its
share of each burst (the burst driver's own phases), or hand its steady users their requests.

This module runs inside a Locust worker, under gevent: the standard library's sockets and
selectors are gevent's there, so the burst phases and the login wait without blocking the
worker's heartbeats. Every record goes back to the master, and to Locust's own stats.
"""

import os
import time
from dataclasses import asdict, dataclass, field

import gevent
from gevent.queue import Queue

from racelab.loadgen.burst import (
    ConnectionPool,
    Exchange,
    RequestRecord,
    collect,
    form_request,
    prime,
    release,
)
from racelab.loadgen.credentials import PASSWORD_ENV_VAR, SESSION_ENV_VAR, password_from_environment
from racelab.loadgen.errors import LoadError
from racelab.loadgen.http_login import cookies_of_session, log_in_http
from racelab.loadgen.locust.protocol import BATCH_SECONDS, Assignment, Message, RunSpec
from racelab.loadgen.login import SessionCookies
from racelab.loadgen.outcomes import Outcome
from racelab.loadgen.target import Target, parse_target

# The release waits for the master's moment by sleeping, then spins for the last stretch, which
# a sleep would overshoot.
SPIN_SECONDS = 0.002
# A moment further ahead than this is a clock far out of step with the master's: release after
# this long rather than past the master's wait for the answers.
LONGEST_WAIT_SECONDS = 1.0


@dataclass
class WorkerRun:
    """One run as this worker knows it: its number, the spec, the users' cookies, what is in flight."""

    number: int
    spec: RunSpec
    cookies: dict[str, SessionCookies]
    targets: list[Target]
    pool: ConnectionPool = field(default_factory=ConnectionPool)
    armed: dict[int, list[Exchange]] = field(default_factory=dict)
    # Steady mode: requests of this worker's share not yet answered for, records not yet sent.
    outstanding: int = 0
    unsent: list[RequestRecord] = field(default_factory=list)
    done: bool = False


class LabWorker:
    """The handlers of the master's messages on one worker, for every run of the session."""

    def __init__(self, environment) -> None:
        self.environment = environment
        self.run: WorkerRun | None = None
        # Sessions of the users logged in so far, by app server and username: each logs in once
        # per session, not once per run (a trial is one run).
        self.logins: dict[tuple[str, str], SessionCookies] = {}
        # Steady mode: the requests the master handed out, for the users to take, with their run.
        self.requests: Queue[tuple[WorkerRun, int]] = Queue()
        runner = environment.runner
        # Concurrent: a burst's answers take up to the response timeout, and the worker must go
        # on answering the master's heartbeats meanwhile.
        runner.register_message(Message.RUN, self.on_run, concurrent=True)
        runner.register_message(Message.ARM, self.on_arm, concurrent=True)
        runner.register_message(Message.FIRE, self.on_fire, concurrent=True)
        runner.register_message(Message.SHARE, self.on_share)

    def send(self, run: WorkerRun, message: Message, data: dict) -> None:
        self.environment.runner.send_message(message, {"run": run.number, **data})

    def on_run(self, environment, msg) -> None:
        spec = RunSpec.from_document(msg.data["spec"])
        if self.run is not None:
            self.run.pool.close()
        try:
            self.run = WorkerRun(number=msg.data["run"], spec=spec, **self.log_in(spec))
        except LoadError as error:
            environment.runner.send_message(Message.READY, {"run": msg.data["run"], "error": str(error)})
            return
        self.send(self.run, Message.READY, {"error": None, "pid": os.getpid()})

    def log_in(self, spec: RunSpec) -> dict:
        """Each of the spec's users' session at the first app server (they share a database, so a
        session is good on every one), logged in the blog's way the first time it is needed."""
        # splatter checked every URL against the loopback guard (or the user allowed a remote one).
        targets = [parse_target(url, allow_remote=True) for url in spec.targets]
        if spec.login is None:
            # Not logged in: the session this worker was given, or none.
            cookies = cookies_of_session(
                target=targets[0],
                sessionid=os.environ.get(SESSION_ENV_VAR, ""),
                names=spec.cookie_names,
                page=spec.token_page,
            )
            return {"cookies": dict.fromkeys(spec.usernames, cookies), "targets": targets}
        password = password_from_environment()
        if not password:
            raise LoadError(
                f"This worker has no password: set {PASSWORD_ENV_VAR} in its environment before starting it."
            )
        for username in spec.usernames:
            if (spec.targets[0], username) not in self.logins:
                self.logins[spec.targets[0], username] = log_in_http(
                    target=targets[0],
                    username=username,
                    password=password,
                    form=spec.login,
                    names=spec.cookie_names,
                )
        cookies = {username: self.logins[spec.targets[0], username] for username in spec.usernames}
        return {"cookies": cookies, "targets": targets}

    def on_arm(self, environment, msg) -> None:
        run, burst = self.run, msg.data["burst"]
        exchanges = [_exchange(run, Assignment(**assignment)) for assignment in msg.data["assignments"]]
        prime(exchanges, pool=run.pool)
        # As the burst driver does: time for the server to take in what was sent.
        gevent.sleep(run.spec.settle)
        run.armed[burst] = exchanges
        self.send(run, Message.ARMED, {"burst": burst})

    def on_fire(self, environment, msg) -> None:
        run, burst = self.run, msg.data["burst"]
        exchanges = run.armed.pop(burst)
        _wait_for(msg.data["at"])
        realtime = release(exchanges)
        collect(exchanges, pool=run.pool, response_timeout=run.spec.response_timeout)
        records = [exchange.record() for exchange in exchanges]
        for record, exchange in zip(records, exchanges, strict=True):
            form = run.spec.form(record.index)
            report_to_locust(
                environment, record, method=form.method, name=form.path_and_query,
                length=len(exchange.response.body),
            )  # fmt: skip
        self.send(
            run,
            Message.RECORDS,
            {"burst": burst, "realtime": realtime, "records": [record_document(r) for r in records]},
        )

    def on_share(self, environment, msg) -> None:
        run = self.run
        run.outstanding = len(msg.data["indices"])
        for index in msg.data["indices"]:
            self.requests.put((run, index))
        if not run.outstanding:
            self._finish(run)
            return
        gevent.spawn(self._send_batches, run)

    def take(self) -> tuple[WorkerRun, int]:
        """The next request for a steady user, with its run: waits for the next share when there
        is none (the users stay between runs)."""
        return self.requests.get()

    def steady_record(self, run: WorkerRun, record: RequestRecord) -> None:
        run.unsent.append(record)
        run.outstanding -= 1
        if not run.outstanding and not run.done:
            self._finish(run)

    def _finish(self, run: WorkerRun) -> None:
        run.done = True
        self._flush(run)
        self.send(run, Message.DONE, {})

    def _send_batches(self, run: WorkerRun) -> None:
        while not run.done:
            gevent.sleep(BATCH_SECONDS)
            self._flush(run)

    def _flush(self, run: WorkerRun) -> None:
        records, run.unsent = run.unsent, []
        if records:
            self.send(run, Message.RECORDS, {"burst": None, "records": [record_document(r) for r in records]})


def _wait_for(moment: float) -> None:
    """Until the wall clock reads ``moment`` (the master's, on another machine as close as clock
    synchronisation keeps them), a second at most: asleep, then spinning for the last two
    milliseconds."""
    moment = min(moment, time.time() + LONGEST_WAIT_SECONDS)
    remaining = moment - time.time()
    if remaining > SPIN_SECONDS:
        gevent.sleep(remaining - SPIN_SECONDS)
    while time.time() < moment:
        pass


def record_document(record: RequestRecord) -> dict:
    return {**asdict(record), "outcome": record.outcome.value}


def report_to_locust(environment, record: RequestRecord, *, method: str, name: str, length: int) -> None:
    """The record in Locust's own stats too (its CSV, JSON and HTML reports)."""
    ended = record.received_at or time.time()
    started = record.sent_at or record.primed_at or ended
    failure = None
    if record.outcome is not Outcome.OK:
        failure = LoadError(record.error or f"HTTP {record.status} ({record.outcome.value})")
    environment.events.request.fire(
        request_type=method,
        name=name,
        response_time=(ended - started) * 1_000,
        response_length=length,
        exception=failure,
        context={"outcome": record.outcome.value},
    )


def _exchange(run: WorkerRun, assignment: Assignment) -> Exchange:
    spec = run.spec
    target = run.targets[assignment.index % len(run.targets)]
    return Exchange(
        burst=assignment.burst,
        index=assignment.index,
        username=assignment.username,
        target=target,
        payload=form_request(
            target=target,
            cookies=run.cookies[assignment.username],
            post=spec.form(assignment.index),
            run_token=spec.run_token,
        ),
    )
