"""What splatter, the Locust master and its workers tell one another: the session's and each
run's spec, the custom message names and the shapes of their payloads. Plain data, importable
without Locust.

One master serves a whole splatter command (every run of a sweep or a matrix), so workers started
by hand on other machines connect once. splatter and the master share a session folder
(``--lab-session``, ``SessionFolder``): splatter writes each run's ``RunSpec`` there, the master
conducts it and writes its result beside it, until splatter writes the stop file. For each run
the master sends the spec to every worker in a ``RUN`` message (docs/locust.md):

    master -> worker   RUN      the spec              worker logs its users in (once), answers READY
    burst mode, per burst:
    master -> worker   ARM      its share of the burst     worker primes it, answers ARMED
    master -> worker   FIRE     the burst's number and     worker waits for that moment, releases,
                                the moment to release it   collects, answers RECORDS
    steady mode:
    master -> worker   SHARE    its request numbers        worker's users send them, answer RECORDS
                                                            in batches, then DONE
"""

import enum
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from racelab.loadgen.burst import CONNECT_TIMEOUT_SECONDS
from racelab.loadgen.login import DEFAULT_COOKIE_NAMES, DEFAULT_LOGIN_PATH, CookieNames, LoginForm
from racelab.loadgen.target import LoadRequest

# How often a steady worker sends the records it has to the master: what a killed worker takes
# with it is at most this much of its share, counted indeterminate.
BATCH_SECONDS = 0.5
# Beyond the network's own timeouts: what a worker may take to pass a message on.
MESSAGE_SLACK_SECONDS = 10.0
# How far ahead of sending FIRE the master sets the moment of release: every worker has read its
# FIRE by then, on a loaded machine too (a later one releases at once).
FIRE_LEAD_SECONDS = 0.02
# The Locust option that names the session folder (the master's only lab option).
SESSION_OPTION = "--lab-session"


class Message(enum.StrEnum):
    RUN = "lab_run"
    READY = "lab_ready"
    ARM = "lab_arm"
    ARMED = "lab_armed"
    FIRE = "lab_fire"
    SHARE = "lab_share"
    RECORDS = "lab_records"
    DONE = "lab_done"


class LocustMode(enum.StrEnum):
    # -n requests from -c users that each send one after another, as ab does.
    STEADY = "steady"
    # Bursts of -c released together across every worker.
    BURST = "burst"


@dataclass(frozen=True, kw_only=True)
class RunSpec:
    mode: LocustMode
    usernames: list[str]
    # How each worker logs the users in; None: it does not (anonymous, or the session cookie in
    # its environment).
    login: LoginForm | None
    # Request i sends forms[i % len(forms)].
    forms: list[LoadRequest]
    # Base URLs of the app servers: request i goes to targets[i % len(targets)].
    targets: list[str]
    requests: int
    # The burst size, or the number of users in steady mode.
    concurrency: int
    run_token: str | None
    response_timeout: float
    settle: float
    # Seconds to wait for the workers to log in.
    worker_wait: float
    # The project's CSRF and session names; and, for users that do not log in where the project
    # keeps its CSRF secret in the session, the page whose form gives the session's token.
    cookie_names: CookieNames = DEFAULT_COOKIE_NAMES
    token_page: str = DEFAULT_LOGIN_PATH

    def save(self, path: Path) -> None:
        write_atomically(path, asdict(self))

    @classmethod
    def from_document(cls, document: dict) -> "RunSpec":
        return cls(
            **{
                **document,
                "mode": LocustMode(document["mode"]),
                "login": None if document["login"] is None else LoginForm(**document["login"]),
                "forms": [_load_request(form) for form in document["forms"]],
                "cookie_names": CookieNames(**document.get("cookie_names", {})),
            }
        )

    @classmethod
    def load(cls, path: Path) -> "RunSpec":
        return cls.from_document(json.loads(path.read_text()))

    def username(self, slot: int) -> str:
        return self.usernames[slot % len(self.usernames)]

    def form(self, index: int) -> LoadRequest:
        return self.forms[index % len(self.forms)]

    def target(self, index: int) -> str:
        return self.targets[index % len(self.targets)]


def _load_request(document: dict) -> LoadRequest:
    """A LoadRequest read back from JSON, where its tuples of pairs became lists of lists."""
    pairs = ("fields", "query", "headers")
    return LoadRequest(
        **{key: tuple(map(tuple, value)) if key in pairs else value for key, value in document.items()}
    )


@dataclass(frozen=True, kw_only=True)
class Assignment:
    """One request a worker is to send: its number in the run, its burst and its user."""

    index: int
    burst: int
    username: str


def shares(items: list, *, parts: int) -> list[list]:
    """``items`` dealt round-robin into ``parts`` lists, as evenly as they go."""
    return [items[part::parts] for part in range(parts)]


def arming_bound(share: int, *, settle: float) -> float:
    """The longest a healthy worker takes to prime ``share`` requests: it connects one by one."""
    return share * CONNECT_TIMEOUT_SECONDS + settle + MESSAGE_SLACK_SECONDS


def answers_bound(*, response_timeout: float) -> float:
    """The longest a healthy worker takes to release a burst and collect its answers."""
    return FIRE_LEAD_SECONDS + response_timeout + MESSAGE_SLACK_SECONDS


@dataclass(frozen=True, kw_only=True)
class SessionSpec:
    """What the master needs before the first run: how many workers, how long to wait for them."""

    workers: int
    worker_wait: float
    # splatter's process: the master quits when it is gone, whatever became of the stop file.
    parent_pid: int


@dataclass(frozen=True)
class SessionFolder:
    """The files splatter and the master share: the session, each run's spec and result, stop."""

    path: Path

    @property
    def session(self) -> Path:
        return self.path / "session.json"

    @property
    def ready(self) -> Path:
        """Written by the master once every worker has connected, or with why not."""
        return self.path / "ready.json"

    @property
    def stop(self) -> Path:
        return self.path / "stop"

    def spec(self, number: int) -> Path:
        return self.path / f"spec-{number:03d}.json"

    def result(self, number: int) -> Path:
        return self.path / f"result-{number:03d}.json"


def write_atomically(path: Path, document: dict) -> None:
    """Whoever polls for ``path`` sees it whole or not at all."""
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(document, indent=2) + "\n")
    partial.replace(path)
