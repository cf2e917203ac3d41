"""The Locust master's side of a lab run: the rendezvous and the one history.

Locust has no rendezvous of its own (its maintainers declined "fire all users together", locust
#563, #1183), so the master conducts each burst with custom messages: every worker primes its
share and answers ARMED, and only when all have answered does FIRE go out. Every worker's records
come back to the master, which writes them, in order, to the run's result file for splatter.

A worker that stops answering (Locust's heartbeat marks it missing, or it misses a bounded wait)
is dropped: the requests it held without an answer are recorded as indeterminate, for the checker
allows them either way, and the run goes on with the others.
"""

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict

import gevent

from racelab.loadgen.burst import CONNECT_TIMEOUT_SECONDS
from racelab.loadgen.locust.protocol import (
    BATCH_SECONDS,
    FIRE_LEAD_SECONDS,
    MESSAGE_SLACK_SECONDS,
    Assignment,
    LocustMode,
    Message,
    RunSpec,
    SessionFolder,
    SessionSpec,
    answers_bound,
    arming_bound,
    shares,
    write_atomically,
)
from racelab.loadgen.outcomes import Outcome

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.005
MISSING = "missing"
RUNNING = "running"


class LabRunError(RuntimeError):
    """The run could not go on; the message goes to splatter in the result file."""


class LabMaster:
    """Conducts the runs splatter hands over in the session folder, one after another, over the
    workers connected to this master; quits Locust when splatter says stop, or is gone."""

    def __init__(self, environment, folder: SessionFolder) -> None:
        self.environment = environment
        self.folder = folder
        self.session = SessionSpec(**json.loads(folder.session.read_text()))
        self.workers: list[str] = []
        # Workers lost in an earlier run: no later run waits for them.
        self.gone: dict[str, str] = {}
        # Each worker's process id, from its first READY: a worker lost before it answers a later
        # run's READY is still named by it.
        self.pids: dict[str, int] = {}
        self.number = 0
        self._start_run(None)
        runner = environment.runner
        runner.register_message(Message.READY, self._current(self.on_ready))
        runner.register_message(Message.ARMED, self._current(self.on_armed))
        runner.register_message(Message.RECORDS, self._current(self.on_records))
        runner.register_message(Message.DONE, self._current(self.on_done))
        gevent.spawn(self.serve)

    def _start_run(self, spec: RunSpec | None) -> None:
        self.number += spec is not None
        self.spec = spec
        self.ready: dict[str, dict] = {}
        self.armed: dict[tuple[int, str], bool] = {}
        self.answered: dict[tuple[int | None, str], bool] = {}
        self.last_heard: dict[str, float] = {}
        self.done: set[str] = set()
        self.records: dict[int, dict] = {}
        self.assigned: dict[str, list[Assignment]] = {}
        self.lost: dict[str, str] = {}
        self.realtime: list[bool] = []

    def _current(self, handler: Callable) -> Callable:
        """``handler`` for this run's messages only: a lost worker's late answer to an earlier
        run must not count in this one."""

        def handle(environment, msg) -> None:
            if msg.data.get("run") == self.number:
                handler(environment, msg)

        return handle

    # --- what the workers answer -----------------------------------------------------------

    def on_ready(self, environment, msg) -> None:
        self.ready[msg.node_id] = msg.data
        if msg.data.get("pid") is not None:
            self.pids[msg.node_id] = msg.data["pid"]

    def on_armed(self, environment, msg) -> None:
        self.armed[msg.data["burst"], msg.node_id] = True

    def on_records(self, environment, msg) -> None:
        self.last_heard[msg.node_id] = time.monotonic()
        for record in msg.data["records"]:
            self.records[record["index"]] = {**record, "worker": msg.node_id}
        if msg.data["burst"] is not None:
            self.realtime.append(msg.data["realtime"])
            self.answered[msg.data["burst"], msg.node_id] = True

    def on_done(self, environment, msg) -> None:
        self.done.add(msg.node_id)

    # --- the session ---------------------------------------------------------------------------

    def serve(self) -> None:
        error = None
        try:
            self.workers = self._connect()
        except LabRunError as failure:
            error = str(failure)
        except Exception as failure:  # reported to splatter rather than lost in a greenlet
            logger.exception("The lab session failed")
            error = f"the Locust master failed: {failure!r}"
        write_atomically(self.folder.ready, {"error": error, "workers": self.workers})
        if error is None:
            while (spec := self._next_spec()) is not None:
                self.conduct(spec)
        self.environment.process_exit_code = 0 if error is None else 1
        self.environment.runner.quit()

    def _connect(self) -> list[str]:
        """Wait for the session's workers and for Locust to start (with no users yet)."""
        session, runner = self.session, self.environment.runner
        self._wait_until(
            lambda: len(self._connected()) >= session.workers,
            timeout=session.worker_wait,
            failure=lambda: (
                f"{len(self._connected())} of {session.workers} worker(s) connected within "
                f"{session.worker_wait:g} s: start them, or check the master's address and port"
            ),
        )
        # Locust clears its stats when it starts: only then may requests go out.
        self._wait_until(
            lambda: runner.state == RUNNING,
            timeout=session.worker_wait,
            failure=lambda: f"Locust did not start within {session.worker_wait:g} s",
        )
        return self._connected()[: session.workers]

    def _next_spec(self) -> RunSpec | None:
        """The next run's spec once splatter has written it; None once it says stop or is gone."""
        path = self.folder.spec(self.number + 1)
        while not path.exists():
            if self.folder.stop.exists() or os.getppid() != self.session.parent_pid:
                return None
            gevent.sleep(POLL_SECONDS)
        return RunSpec.load(path)

    def conduct(self, spec: RunSpec) -> None:
        self._start_run(spec)
        started_at = time.time()
        error = None
        try:
            workers = self._prepare()
            # The run's rate counts its requests, not the log-in and the users' start before them.
            started_at = time.time()
            if spec.mode is LocustMode.BURST:
                self._bursts(workers)
            else:
                self._steady(workers)
        except LabRunError as failure:
            error = str(failure)
        except Exception as failure:  # reported to splatter rather than lost in a greenlet
            logger.exception("The lab run failed")
            error = f"the Locust master failed: {failure!r}"
        self._write(started_at=started_at, error=error)
        self.gone.update(self.lost)

    def _prepare(self) -> list[str]:
        """Send each live worker the run, wait until each has logged its users in; in steady
        mode, have Locust run the run's number of users.

        A worker that died since the last run is lost in this one, as one that dies during it:
        once Locust's heartbeat marks it missing, the run goes on with the others.
        """
        spec, runner = self.spec, self.environment.runner
        workers = self._still_here([worker for worker in self.workers if worker not in self.gone])
        for worker in workers:
            runner.send_message(Message.RUN, {"run": self.number, "spec": asdict(spec)}, client_id=worker)
        self._wait_until(
            lambda: all(worker in self.ready for worker in self._still_here(workers)),
            timeout=spec.worker_wait,
            failure=lambda: (
                f"{len(self.ready)} of {len(self._still_here(workers))} worker(s) logged in within "
                f"{spec.worker_wait:g} s"
            ),
        )
        workers = self._still_here(workers)
        for worker in workers:
            if self.ready[worker]["error"]:
                raise LabRunError(f"worker {worker}: {self.ready[worker]['error']}")
        if spec.mode is LocustMode.STEADY:
            self._run_users(spec.concurrency)
        logger.info("lab: run %d: %d worker(s) logged in, the run starts", self.number, len(workers))
        return workers

    def _still_here(self, workers: list[str]) -> list[str]:
        """``workers`` but those lost in this run, losing any Locust's heartbeat marks missing
        before it has logged in; LabRunError when none is left."""
        for worker in workers:
            if worker not in self.lost and worker not in self.ready and self._missing(worker):
                self._lose(worker, "Locust's heartbeat marked it missing")
        here = [worker for worker in workers if worker not in self.lost]
        if not here:
            raise LabRunError(f"no worker is left of the {len(self.workers)} this session started with")
        return here

    def _bursts(self, workers: list[str]) -> None:
        spec = self.spec
        live = list(workers)
        for burst, first in enumerate(range(0, spec.requests, spec.concurrency)):
            if not live:
                return
            size = min(spec.concurrency, spec.requests - first)
            assignments = [
                Assignment(index=first + slot, burst=burst, username=spec.username(slot))
                for slot in range(size)
            ]
            parts = {
                worker: part
                for worker, part in zip(live, shares(assignments, parts=len(live)), strict=True)
                if part
            }
            for worker, part in parts.items():
                self.assigned.setdefault(worker, []).extend(part)
                self.environment.runner.send_message(
                    Message.ARM,
                    {"run": self.number, "burst": burst, "assignments": [asdict(a) for a in part]},
                    client_id=worker,
                )
            self._await(parts, self.armed, stage="arming", burst=burst)
            # One moment for every worker, a little ahead, rather than "now" on arrival: the FIRE
            # messages go out one after another and each worker takes its own time to read one.
            at = time.time() + FIRE_LEAD_SECONDS
            for worker in parts:
                if worker not in self.lost:
                    self.environment.runner.send_message(
                        Message.FIRE, {"run": self.number, "burst": burst, "at": at}, client_id=worker
                    )
            self._await(parts, self.answered, stage="its burst", burst=burst)
            live = [worker for worker in live if worker not in self.lost]

    def _run_users(self, count: int) -> None:
        """``count`` users in all, spawned by Locust over the workers; they stay between runs,
        waiting for the next share, so only a new count (or a lost worker's) spawns again."""
        runner = self.environment.runner
        if runner.target_user_count != count or runner.user_count != count:
            runner.start(count, spawn_rate=count)
        self._wait_until(
            lambda: runner.user_count == count and runner.state == RUNNING,
            timeout=self.spec.worker_wait,
            failure=lambda: (
                f"Locust started {runner.user_count} of {count} user(s) in {self.spec.worker_wait:g} s"
            ),
        )

    def _steady(self, workers: list[str]) -> None:
        spec, clients = self.spec, self.environment.runner.clients
        # Each worker's share in proportion to its users, so they all finish together.
        users = {worker: sum(clients[worker].user_classes_count.values()) for worker in workers}
        seats = [worker for worker in workers for _ in range(users[worker])] or workers
        by_worker: dict[str, list[int]] = {worker: [] for worker in workers}
        for seat, part in zip(seats, shares(list(range(spec.requests)), parts=len(seats)), strict=True):
            by_worker[seat].extend(part)
        for worker, part in by_worker.items():
            part.sort()
            self.assigned[worker] = [
                Assignment(index=index, burst=0, username=spec.username(index)) for index in part
            ]
            self.last_heard[worker] = time.monotonic()
            self.environment.runner.send_message(
                Message.SHARE, {"run": self.number, "indices": part}, client_id=worker
            )
        # Bounded by progress: a worker that sends nothing for longer than one request may take
        # (its connection, its answer, the batching) is lost.
        stall = spec.response_timeout + CONNECT_TIMEOUT_SECONDS + BATCH_SECONDS + MESSAGE_SLACK_SECONDS
        while True:
            waiting = [w for w in workers if w not in self.done and w not in self.lost]
            if not waiting:
                return
            self._check_splatter()
            for worker in waiting:
                if self._missing(worker):
                    self._lose(worker, "Locust's heartbeat marked it missing")
                elif time.monotonic() - self.last_heard[worker] > stall:
                    self._lose(worker, f"it sent nothing for {stall:g} s")
            gevent.sleep(POLL_SECONDS * 20)

    def _await(self, parts: dict, answers: dict, *, stage: str, burst: int) -> None:
        """Wait until each worker of ``parts`` has answered, is lost, or the stage's time is up."""
        timeout = (
            arming_bound(max(map(len, parts.values())), settle=self.spec.settle)
            if stage == "arming"
            else answers_bound(response_timeout=self.spec.response_timeout)
        )
        deadline = time.monotonic() + timeout
        while True:
            self._check_splatter()
            waiting = [w for w in parts if (burst, w) not in answers and w not in self.lost]
            for worker in waiting:
                if self._missing(worker):
                    self._lose(
                        worker, f"Locust's heartbeat marked it missing during {stage} of burst {burst}"
                    )
            if not waiting:
                return
            if time.monotonic() > deadline:
                for worker in waiting:
                    self._lose(worker, f"no answer within {timeout:g} s during {stage} of burst {burst}")
                return
            gevent.sleep(POLL_SECONDS)

    def _check_splatter(self) -> None:
        """Stop the run in progress, not only the session, once splatter is gone or says stop."""
        if self.folder.stop.exists() or os.getppid() != self.session.parent_pid:
            raise LabRunError("splatter stopped the session")

    def _lose(self, worker: str, reason: str) -> None:
        self.lost[worker] = reason
        logger.warning("lab: worker %s lost: %s", worker, reason)
        # It may be alive, only late: Locust's own quit stops its users and closes its primed
        # connections, so nothing it still holds reaches the server after its run was written.
        self.environment.runner.send_message("quit", client_id=worker)

    def _connected(self) -> list[str]:
        return sorted(client.id for client in self.environment.runner.clients.all if client.state != MISSING)

    def _missing(self, worker: str) -> bool:
        client = self.environment.runner.clients.get(worker)
        return client is None or client.state == MISSING

    def _wait_until(
        self, condition: Callable[[], bool], *, timeout: float, failure: Callable[[], str]
    ) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            self._check_splatter()
            if time.monotonic() > deadline:
                raise LabRunError(failure())
            gevent.sleep(POLL_SECONDS * 20)

    def _write(self, *, started_at: float, error: str | None) -> None:
        """The result file: every request's record in order, and what became of each worker."""
        records = dict(self.records)
        for worker, assignments in self.assigned.items():
            for assignment in assignments:
                if assignment.index not in records:
                    # Held by a worker that was lost: it may or may not have reached the server.
                    records[assignment.index] = unanswered(
                        assignment, worker=worker, reason=self.lost.get(worker)
                    )
        for index in range(self.spec.requests):
            if index not in records:
                # Never handed to a worker: every worker was lost before its turn.
                records[index] = unanswered(
                    Assignment(index=index, burst=-1, username=self.spec.username(index)),
                    worker=None,
                    reason=None,
                )
        # Every worker handed a request, then any lost before it was handed one.
        workers = [
            {
                "id": worker,
                "pid": self.pids.get(worker),
                "requests": len(assignments),
                "answered": sum(
                    1 for a in assignments if self.records.get(a.index, {}).get("worker") == worker
                ),
                "lost": self.lost.get(worker),
            }
            for worker, assignments in [
                *self.assigned.items(),
                *((worker, []) for worker in self.lost if worker not in self.assigned),
            ]
        ]
        document = {
            "error": error,
            "mode": self.spec.mode.value,
            "burst_size": self.spec.concurrency,
            "started_at": started_at,
            "finished_at": time.time(),
            "realtime_release": bool(self.realtime) and all(self.realtime),
            "workers": workers,
            "records": [records[index] for index in sorted(records)],
        }
        write_atomically(self.folder.result(self.number), document)


def unanswered(assignment: Assignment, *, worker: str | None, reason: str | None) -> dict:
    """The record of a request no worker answered for: indeterminate if a worker held it, a
    refusal (never sent) if none did."""
    return {
        "burst": assignment.burst,
        "index": assignment.index,
        "username": assignment.username,
        "outcome": (Outcome.REFUSED if worker is None else Outcome.INDETERMINATE).value,
        "status": None,
        "answer": None,
        "primed_at": None,
        "sent_at": None,
        "received_at": None,
        "error": "never sent: no worker was left" if worker is None else f"worker lost: {reason}",
        "worker": worker,
    }
