"""The race window's barrier in files: for the app servers of one host.

Gunicorn runs several worker processes, so the barrier lives in files: one small state file per
resource, updated under ``flock``, in a private directory named after the database. Threads and
processes on one machine share it alike, whatever the database (SQLite, PostgreSQL, MariaDB);
servers on other machines do not see it (racelab/racewindow/redis_backend.py is for them).

A window's first party watches it, and asks the database every PROBE_SECONDS how many sessions
wait on its locks (racelab/racewindow/lock_waits.py): those cannot reach the park point before it
lets go, so they count as arrived. Once the arrived and the blocked make the parties, the window
closes at once, serialized, and the state carries how many of its parties are still to come:
each of them, when it arrives, goes straight on.
"""

import fcntl
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.db import connection

from racelab.racewindow.window import BarrierStats, Passage, RaceWindow, RaceWindowError

POLL_SECONDS = 0.0005
# Asking the database costs a query: every 5 ms, not at every poll.
PROBE_SECONDS = 0.005
ROOT_DIRECTORY = Path(tempfile.gettempdir()) / "django-race-window"
ARMED_FILE = "armed.json"
RESOURCE_PREFIX = "resource-"


@dataclass(frozen=True)
class FileBackend:
    """The barriers of the database whose private directory is ``directory``."""

    directory: Path

    @contextmanager
    def arm(self, *, window: RaceWindow) -> Iterator[None]:
        armed_file = self.directory / ARMED_FILE
        _claim(armed_file, window=window)
        try:
            yield
        finally:
            armed_file.unlink(missing_ok=True)

    def armed_window(self) -> RaceWindow | None:
        return read_armed_file(self.directory)

    def stats(self) -> BarrierStats:
        states = []
        for path in self.directory.glob(f"{RESOURCE_PREFIX}*"):
            with _StateFile(path) as state_file, state_file.locked(fcntl.LOCK_SH):
                states.append(state_file.read())
        return BarrierStats(
            held=sum(state.held for state in states),
            windows=sum(state.closed for state in states),
            timeouts=sum(state.timeouts for state in states),
            serialized=sum(state.serialized for state in states),
        )

    def hold(self, *, window: RaceWindow, resource: str, blocked: Callable[[], int] | None = None) -> Passage:
        """The first request into a window keeps its gate (an exclusive ``flock``) and watches
        the window; the others block on the gate, costing no CPU, until the first one sees that
        ``parties`` have arrived (or are blocked on its locks, as ``blocked`` says) or that
        ``timeout`` has passed since the last arrival, closes the window and opens the gate. The
        last of the parties goes straight on, and so does a party a serialized window carries.
        """
        name = hashlib.sha256(resource.encode()).hexdigest()[:16]
        with _StateFile(self.directory / f"{RESOURCE_PREFIX}{name}") as state_file:
            with state_file.locked(fcntl.LOCK_EX):
                # Read the clock under the lock, so arrivals are stamped in the order they register.
                started = time.monotonic()
                state = state_file.read()
                if not 0 <= started - state.last_arrival <= window.timeout:
                    # Whoever arrived last gave up long ago (or before a reboot), and the parties a
                    # serialized window waited for never came (refused, rolled back): start afresh.
                    if state.arrived:
                        state.close_window(timed_out=True)
                    state.carry = 0
                if state.carry:
                    # Counted already, while it was blocked on the lock of the window's first party.
                    position = window.parties - state.carry + 1
                    state.carry -= 1
                    state.held += 1
                    state.last_arrival = started
                    state_file.write(state)
                    return Passage(window=state.window - 1, position=position, waited=0.0)
                mine = state.window
                state.arrived += 1
                state.held += 1
                state.last_arrival = started
                position = state.arrived
                if position >= window.parties:
                    state.close_window(timed_out=False)
                state_file.write(state)
                if position >= window.parties:
                    return Passage(window=mine, position=position, waited=0.0)
                gate = _Gate(self.directory / f"gate-{name}-{mine}")
                if position == 1:
                    gate.keep()
            if position == 1:
                try:
                    _watch(state_file, window=window, mine=mine, blocked=blocked)
                finally:
                    # Whatever went wrong asking the database, the others must not wait for ever.
                    gate.open()
            else:
                gate.pass_through()
        return Passage(window=mine, position=position, waited=time.monotonic() - started)


def barrier_directory() -> Path:
    """A private directory for the default database: every process using it finds the same one."""
    database = connection.settings_dict
    identity = "|".join(str(database.get(key) or "") for key in ("ENGINE", "HOST", "PORT", "NAME")).encode()
    directory = ROOT_DIRECTORY / hashlib.sha256(identity).hexdigest()[:16]
    ROOT_DIRECTORY.mkdir(mode=0o700, exist_ok=True)
    directory.mkdir(mode=0o700, exist_ok=True)
    return directory


def read_armed_file(directory: Path) -> RaceWindow | None:
    """The window in ``directory``'s armed file, unless the process that wrote it has exited."""
    document = _read_armed_document(directory / ARMED_FILE)
    if document is None or not process_alive(document.get("pid")):
        return None
    try:
        at = document.get("at")
        return RaceWindow(
            parties=int(document["parties"]),
            timeout=float(document["timeout"]),
            at=None if at is None else str(at),
        )
    except (KeyError, TypeError, ValueError):
        return None


@dataclass
class _State:
    window: int = 0
    arrived: int = 0
    last_arrival: float = 0.0
    held: int = 0
    closed: int = 0
    timeouts: int = 0
    serialized: int = 0
    # The parties of the last window, serialized, still to come: each goes straight on.
    carry: int = 0

    def close_window(self, *, timed_out: bool) -> None:
        self.window += 1
        self.arrived = 0
        self.closed += 1
        self.timeouts += timed_out

    def serialize_window(self, *, parties: int, now: float) -> None:
        """Close the window with the parties it lacks blocked on a lock: they will come one by
        one as the lock passes on, and the carry expires ``timeout`` after the last of them."""
        self.carry = parties - self.arrived
        self.close_window(timed_out=False)
        self.serialized += 1
        self.last_arrival = now


def _watch(
    state_file: "_StateFile", *, window: RaceWindow, mine: int, blocked: Callable[[], int] | None
) -> None:
    """Until window ``mine`` closes: by the last party, or by us when the timeout passes or when
    the sessions ``blocked`` on our locks make up the parties still missing."""
    next_probe = time.monotonic()
    while True:
        time.sleep(POLL_SECONDS)
        with state_file.locked(fcntl.LOCK_SH):
            state = state_file.read()
        if state.window != mine:
            return
        now = time.monotonic()
        if now - state.last_arrival >= window.timeout:
            with state_file.locked(fcntl.LOCK_EX):
                state = state_file.read()
                if state.window == mine:
                    state.close_window(timed_out=True)
                    state_file.write(state)
            return
        if blocked is None or now < next_probe:
            continue
        next_probe = now + PROBE_SECONDS
        # Asked outside the state's lock: a query must not keep arrivals waiting. Those it counts
        # stay blocked while we watch, since we hold their lock.
        waiting = blocked()
        if waiting and state.arrived + waiting >= window.parties:
            with state_file.locked(fcntl.LOCK_EX):
                state = state_file.read()
                if state.window == mine and state.arrived + waiting >= window.parties:
                    state.serialize_window(parties=window.parties, now=time.monotonic())
                    state_file.write(state)
            if state.window != mine:
                return


def _claim(armed_file: Path, *, window: RaceWindow) -> None:
    """Write the armed file, unless a live process has armed this database already."""
    current = _read_armed_document(armed_file)
    if current is not None and process_alive(current.get("pid")):
        raise RaceWindowError(
            f"Process {current.get('pid')} has armed the race window for this database already: "
            "wait for it to finish, or stop it."
        )
    for stale in armed_file.parent.glob(f"{RESOURCE_PREFIX}*"):
        stale.unlink(missing_ok=True)
    document = {"parties": window.parties, "timeout": window.timeout, "at": window.at, "pid": os.getpid()}
    partial = armed_file.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps(document))
    partial.replace(armed_file)


def _read_armed_document(path: Path) -> dict | None:
    try:
        document = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def process_alive(pid: object) -> bool:
    """Whether ``pid`` names a process that still runs on this host."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _StateFile:
    """One resource's barrier state, read and written under ``flock`` (per open file, so threads
    of one process exclude each other as processes do)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> "_StateFile":
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        return self

    def __exit__(self, *exc_info) -> None:
        os.close(self.fd)

    @contextmanager
    def locked(self, operation: int) -> Iterator[None]:
        fcntl.flock(self.fd, operation)
        try:
            yield
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)

    def read(self) -> _State:
        raw = os.pread(self.fd, 256, 0).split()
        try:
            window, arrived, last_arrival, held, closed, timeouts, serialized, carry = raw
            return _State(
                window=int(window),
                arrived=int(arrived),
                last_arrival=float(last_arrival),
                held=int(held),
                closed=int(closed),
                timeouts=int(timeouts),
                serialized=int(serialized),
                carry=int(carry),
            )
        except ValueError:
            # Empty (new), or cut short by a process killed mid-write: start afresh.
            return _State()

    def write(self, state: _State) -> None:
        fields = (
            state.window,
            state.arrived,
            repr(state.last_arrival),
            state.held,
            state.closed,
            state.timeouts,
            state.serialized,
            state.carry,
        )
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, " ".join(map(str, fields)).encode() + b"\n", 0)


class _Gate:
    """The door of one window: the first party holds it shut, the others queue at it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = -1

    def keep(self) -> None:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def open(self) -> None:
        self.path.unlink(missing_ok=True)
        os.close(self.fd)

    def pass_through(self) -> None:
        # If the window has closed already the file is gone or unlocked: this does not wait.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
        finally:
            os.close(fd)
        self.path.unlink(missing_ok=True)
