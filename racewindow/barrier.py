"""The race window's barrier: requests wait at it until K on the same resource have arrived.

When armed, each request that reaches its park point (racewindow/statements.py: by default,
right after its first read of a watched table) waits until ``parties`` requests on the same
resource have reached theirs, or until ``timeout`` seconds pass with no further one arriving;
then they all go on. K concurrent naive withdrawals then lose exactly K-1, every time. A safe
strategy that blocks before its read (``locking`` waits for the row lock, and on SQLite every
transaction waits for the write lock) can never bring K to the barrier, so the timeout lets each
one through in turn: slower, but never a deadlock.

Gunicorn runs several worker processes, so the barrier lives in files: one small state file per
resource, updated under ``flock``, in a private directory named after the database. Threads and
processes on one machine share it alike, whatever the database (SQLite, PostgreSQL, MariaDB).

Two ways to arm it (see docs/race-mode.md):

- in your own code or tests: ``with armed(parties=5): ...`` holds the requests of this process
  that run inside ``racewindow.statements.holding()``, whatever the settings;
- on a server: ``RACE_WINDOW=K`` holds every request, and ``RACE_WINDOW=armed`` holds them
  while some process on the machine has armed the barrier for the same database (as
  ``splatter --race-window`` does). Either is refused with ``DEBUG`` off unless
  ``ALLOW_RACE_WINDOW_WITHOUT_DEBUG`` is set: a production server must never wait on purpose.
"""

import fcntl
import hashlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from racewindow import park_points

OFF = "off"
ARMED = "armed"
DEFAULT_TIMEOUT_SECONDS = 0.5
MAX_TIMEOUT_SECONDS = 10.0
MAX_PARTIES = 1_000
POLL_SECONDS = 0.0005
ROOT_DIRECTORY = Path(tempfile.gettempdir()) / "django-race-window"
ARMED_FILE = "armed.json"
RESOURCE_PREFIX = "resource-"

REFUSED_WITHOUT_DEBUG = (
    "RACE_WINDOW holds requests on purpose and is for the lab only: it is refused with DEBUG "
    "off. Set DJANGO_DEBUG=1, or ALLOW_RACE_WINDOW_WITHOUT_DEBUG=1 if you really mean it."
)


class RaceWindowError(RuntimeError):
    """The barrier cannot be armed; the message says why and what to do."""


@dataclass(frozen=True)
class RaceWindow:
    """Hold each request at its park point until ``parties`` on the same resource have reached it.

    ``at`` names the park points (``table[:read|write|any[:occurrence]]``, comma-separated); None
    leaves them to the server's ``RACE_WINDOW_AT``.
    """

    parties: int
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    at: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.parties <= MAX_PARTIES:
            raise ValueError(f"parties must be from 1 to {MAX_PARTIES}, not {self.parties}")
        if not 0 < self.timeout <= MAX_TIMEOUT_SECONDS:
            raise ValueError(
                f"timeout must be above 0 and at most {MAX_TIMEOUT_SECONDS} s, not {self.timeout}"
            )
        if self.at is not None:
            park_points.parse(self.at)


@dataclass(frozen=True)
class Passage:
    """How one request went through the barrier: its window, its place in it, its wait."""

    window: int
    position: int
    waited: float


@dataclass(frozen=True)
class BarrierStats:
    """What the barriers of a database saw since it was armed, over every resource."""

    held: int
    windows: int
    timeouts: int


@dataclass
class _State:
    window: int = 0
    arrived: int = 0
    last_arrival: float = 0.0
    held: int = 0
    closed: int = 0
    timeouts: int = 0

    def close_window(self, *, timed_out: bool) -> None:
        self.window += 1
        self.arrived = 0
        self.closed += 1
        self.timeouts += timed_out


_local_lock = threading.Lock()
_local_window: RaceWindow | None = None


def active_window(*, mode: RaceWindow | str | None) -> RaceWindow | None:
    """The window in force here: armed in this process, else as the server's ``mode`` (what
    ``server_mode()`` answered at start-up) says."""
    if _local_window is not None:
        return _local_window
    if mode is None or isinstance(mode, RaceWindow):
        return mode
    return _read_armed_file(barrier_directory())


def server_mode() -> RaceWindow | str | None:
    """What ``settings.RACE_WINDOW`` asks of a server: None (off), ARMED, or a fixed window
    (held at ``settings.RACE_WINDOW_AT``).

    Raises ImproperlyConfigured for a value that makes no sense, or with DEBUG off unless
    ``ALLOW_RACE_WINDOW_WITHOUT_DEBUG`` is set.
    """
    value = str(getattr(settings, "RACE_WINDOW", OFF) or OFF).strip().lower()
    if value in (OFF, "0"):
        return None
    if not settings.DEBUG and not getattr(settings, "ALLOW_RACE_WINDOW_WITHOUT_DEBUG", False):
        raise ImproperlyConfigured(REFUSED_WITHOUT_DEBUG)
    try:
        timeout = float(getattr(settings, "RACE_WINDOW_TIMEOUT", DEFAULT_TIMEOUT_SECONDS))
        window = RaceWindow(
            parties=1 if value == ARMED else int(value), timeout=timeout, at=default_park_points()
        )
    except ValueError as error:
        raise ImproperlyConfigured(
            f"RACE_WINDOW must be 'off', 'armed' or a number of requests from 1 to {MAX_PARTIES}, "
            f"RACE_WINDOW_TIMEOUT a number of seconds above 0 and at most {MAX_TIMEOUT_SECONDS}, "
            f"and RACE_WINDOW_AT park points ({error})."
        ) from error
    return ARMED if value == ARMED else window


def default_park_points() -> str:
    """Where this server holds requests when whoever armed the window did not say."""
    return str(getattr(settings, "RACE_WINDOW_AT", "") or park_points.DEFAULT)


def check_settings() -> None:
    """Fail at start-up, not at the first request, when RACE_WINDOW is set but refused, or when
    RACE_WINDOW_AT names no park point (in-process arming uses it whatever RACE_WINDOW says)."""
    try:
        park_points.parse(default_park_points())
    except ValueError as error:
        raise ImproperlyConfigured(f"RACE_WINDOW_AT must name park points ({error}).") from error
    server_mode()


@contextmanager
def armed(
    *, parties: int, timeout: float = DEFAULT_TIMEOUT_SECONDS, at: str | None = None
) -> Iterator["ArmedBarrier"]:
    """Arm the barrier around a block of code, at the park points ``at`` (None: each server's own).

    Requests in this process (any thread) that run inside ``holding()`` wait whatever the
    settings say; servers on the same database started with ``RACE_WINDOW=armed`` hold theirs
    too. Arming is exclusive per database: a second ``armed`` while one is active raises
    RaceWindowError.
    """
    global _local_window
    window = RaceWindow(parties=parties, timeout=timeout, at=at)
    directory = barrier_directory()
    armed_file = directory / ARMED_FILE
    with _local_lock:
        if _local_window is not None:
            raise RaceWindowError("The race window is already armed in this process; arm it once.")
        _claim(armed_file, window=window)
        _local_window = window
    try:
        yield ArmedBarrier(window=window, directory=directory)
    finally:
        with _local_lock:
            _local_window = None
            armed_file.unlink(missing_ok=True)


@dataclass(frozen=True)
class ArmedBarrier:
    window: RaceWindow
    directory: Path

    def stats(self) -> BarrierStats:
        """Requests held, windows closed, and how many of those the timeout closed."""
        held = windows = timeouts = 0
        for path in self.directory.glob(f"{RESOURCE_PREFIX}*"):
            with _StateFile(path) as state_file, state_file.locked(fcntl.LOCK_SH):
                state = state_file.read()
            held, windows, timeouts = held + state.held, windows + state.closed, timeouts + state.timeouts
        return BarrierStats(held=held, windows=windows, timeouts=timeouts)


def hold(*, window: RaceWindow, resource: str) -> Passage:
    """Wait at the barrier of ``resource`` (any string naming what the requests race for)
    until its window closes.

    The first request into a window keeps its gate (an exclusive ``flock``) and watches
    the window; the others block on the gate, costing no CPU, until the first one sees that
    ``parties`` have arrived or that ``timeout`` has passed since the last arrival, closes
    the window and opens the gate. The last of the parties goes straight on.
    """
    directory = barrier_directory()
    name = hashlib.sha256(resource.encode()).hexdigest()[:16]
    with _StateFile(directory / f"{RESOURCE_PREFIX}{name}") as state_file:
        with state_file.locked(fcntl.LOCK_EX):
            # Read the clock under the lock, so arrivals are stamped in the order they register.
            started = time.monotonic()
            state = state_file.read()
            if state.arrived and not 0 <= started - state.last_arrival <= window.timeout:
                # Whoever arrived last gave up long ago (or before a reboot): start afresh.
                state.close_window(timed_out=True)
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
            gate = _Gate(directory / f"gate-{name}-{mine}")
            if position == 1:
                gate.keep()
        if position == 1:
            _watch(state_file, window=window, mine=mine)
            gate.open()
        else:
            gate.pass_through()
    return Passage(window=mine, position=position, waited=time.monotonic() - started)


def _watch(state_file: "_StateFile", *, window: RaceWindow, mine: int) -> None:
    """Until window ``mine`` closes: by the last party, or by us when the timeout passes."""
    while True:
        time.sleep(POLL_SECONDS)
        with state_file.locked(fcntl.LOCK_SH):
            state = state_file.read()
        if state.window != mine:
            return
        if time.monotonic() - state.last_arrival >= window.timeout:
            with state_file.locked(fcntl.LOCK_EX):
                state = state_file.read()
                if state.window == mine:
                    state.close_window(timed_out=True)
                    state_file.write(state)
            return


def barrier_directory() -> Path:
    """A private directory for the default database: every process using it finds the same one."""
    database = connection.settings_dict
    identity = "|".join(str(database.get(key) or "") for key in ("ENGINE", "HOST", "PORT", "NAME")).encode()
    directory = ROOT_DIRECTORY / hashlib.sha256(identity).hexdigest()[:16]
    ROOT_DIRECTORY.mkdir(mode=0o700, exist_ok=True)
    directory.mkdir(mode=0o700, exist_ok=True)
    return directory


def _claim(armed_file: Path, *, window: RaceWindow) -> None:
    """Write the armed file, unless a live process has armed this database already."""
    current = _read_armed_document(armed_file)
    if current is not None and _process_alive(current.get("pid")):
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


def _read_armed_file(directory: Path) -> RaceWindow | None:
    document = _read_armed_document(directory / ARMED_FILE)
    if document is None or not _process_alive(document.get("pid")):
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


def _read_armed_document(path: Path) -> dict | None:
    try:
        document = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def _process_alive(pid: object) -> bool:
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
            window, arrived, last_arrival, held, closed, timeouts = raw
            return _State(
                int(window), int(arrived), float(last_arrival), int(held), int(closed), int(timeouts)
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
