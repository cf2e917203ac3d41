"""A Locust run as splatter sees it: the master's result file read back into a ``LocustRun``,
which offers what the burst driver's ``BurstRun`` offers, plus what became of each worker."""

import json
from dataclasses import dataclass, field
from pathlib import Path

from racelab.loadgen.burst import BurstRun, RequestRecord, history_document
from racelab.loadgen.errors import LoadError
from racelab.loadgen.locust.protocol import LocustMode
from racelab.loadgen.outcomes import Outcome
from racelab.loadgen.target import LoadRequest, Target


@dataclass(frozen=True, kw_only=True)
class WorkerFacts:
    id: str
    pid: int | None
    # Requests the master handed it, and how many it answered for.
    requests: int
    answered: int
    # Why the master gave up on it, or None when it answered for all its requests.
    lost: str | None

    @property
    def unanswered(self) -> int:
        return self.requests - self.answered


@dataclass(frozen=True, kw_only=True)
class LocustRun(BurstRun):
    mode: LocustMode
    workers: list[WorkerFacts]
    # Which worker sent request i (None: no worker was left to send it).
    worker_of: dict[int, str | None] = field(default_factory=dict)
    # Where Locust's CSV, JSON and HTML reports and the master's log are, if kept.
    output: Path | None = None

    @property
    def lost_workers(self) -> list[WorkerFacts]:
        return [worker for worker in self.workers if worker.lost is not None]

    @property
    def release_spreads(self) -> list[float]:
        # Steady mode sends one request after another: no burst to measure.
        return super().release_spreads if self.mode is LocustMode.BURST else []


def read_result(path: Path, *, posts: tuple[LoadRequest, ...], output: Path | None) -> LocustRun:
    """The master's result file as a ``LocustRun``; a run the master gave up on is a LoadError."""
    document = json.loads(path.read_text())
    if document["error"] is not None:
        raise LoadError(f"The Locust run failed: {document['error']}.")
    records = [
        RequestRecord(
            **{key: value for key, value in entry.items() if key not in ("worker", "outcome")},
            # JSON gives the outcome back as a plain string.
            outcome=Outcome(entry["outcome"]),
        )
        for entry in document["records"]
    ]
    return LocustRun(
        posts=posts,
        burst_size=document["burst_size"],
        records=records,
        started_at=document["started_at"],
        finished_at=document["finished_at"],
        realtime_release=document["realtime_release"],
        mode=LocustMode(document["mode"]),
        workers=[WorkerFacts(**worker) for worker in document["workers"]],
        worker_of={entry["index"]: entry["worker"] for entry in document["records"]},
        output=output,
    )


def locust_history_document(run: LocustRun, *, targets: list[Target]) -> dict:
    """The burst driver's history document, with the Locust driver's own: the mode, every app
    server, each worker's facts and which worker sent each request."""
    document = history_document(run, target=targets[0])
    return {
        **document,
        "driver": "locust",
        "mode": run.mode.value,
        "targets": [target.base_url for target in targets],
        "workers": [
            {
                "id": worker.id,
                "pid": worker.pid,
                "requests": worker.requests,
                "answered": worker.answered,
                "lost": worker.lost,
            }
            for worker in run.workers
        ],
        "history": [{**entry, "worker": run.worker_of.get(entry["index"])} for entry in document["history"]],
    }
