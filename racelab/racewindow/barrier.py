"""The race window's barrier: requests wait at it until K on the same resource have arrived.

When armed, each request that reaches its park point (racelab/racewindow/statements.py: by default,
right after its first read of a watched table) waits until ``parties`` requests on the same
resource have reached theirs, or until ``timeout`` seconds pass with no further one arriving;
then they all go on. K concurrent naive withdrawals then lose exactly K-1, every time. A safe
strategy that blocks before its read (``locking`` waits for the row lock, and on SQLite every
transaction waits for the write lock) can never bring K to the barrier: the window's first party
counts the requests blocked on its locks as arrived (racelab/racewindow/lock_waits.py), closes
the window at once, serialized, and lets them through as they come. Where the database cannot
tell, the timeout lets each one through in turn: slower, but never a deadlock.

Gunicorn runs several worker processes, so the barrier cannot live in memory. It lives in one of
two backends, as ``RACE_WINDOW_BACKEND`` says: files under the system temp directory for the
servers of one host (racelab/racewindow/file_backend.py, the default), or a Redis that servers on several
hosts share (racelab/racewindow/redis_backend.py). Both hold the same guarantees.

Two ways to arm it (see docs/race-mode.md):

- in your own code or tests: ``with armed(parties=5): ...`` holds the requests of this process
  that run inside ``racelab.racewindow.statements.holding()``, whatever the settings;
- on a server: ``RACE_WINDOW=K`` holds every request, and ``RACE_WINDOW=armed`` holds them
  while some process has armed the barrier for the same database (as ``splatter --race-window``
  does) in the same backend. Either is refused with ``DEBUG`` off unless
  ``ALLOW_RACE_WINDOW_WITHOUT_DEBUG`` is set: a production server must never wait on purpose.
"""

import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from types import ModuleType

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from racelab.conf import setting
from racelab.racewindow import park_points
from racelab.racewindow.file_backend import ARMED_FILE, FileBackend, barrier_directory, read_armed_file
from racelab.racewindow.window import (
    DEFAULT_TIMEOUT_SECONDS,
    MAX_PARTIES,
    MAX_TIMEOUT_SECONDS,
    Backend,
    BarrierStats,
    Passage,
    RaceWindow,
    RaceWindowError,
)

# Callers (experiment/, tests/) import these from here, as before the backends had modules of
# their own.
__all__ = [
    "ARMED",
    "ARMED_FILE",
    "DEFAULT_TIMEOUT_SECONDS",
    "MAX_PARTIES",
    "MAX_TIMEOUT_SECONDS",
    "OFF",
    "ArmedBarrier",
    "BarrierStats",
    "Passage",
    "RaceWindow",
    "RaceWindowError",
    "active_window",
    "armed",
    "backend_url",
    "barrier_directory",
    "check_settings",
    "current_backend",
    "default_park_points",
    "hold",
    "server_mode",
]
_read_armed_file = read_armed_file

OFF = "off"
ARMED = "armed"
FILE_BACKEND = "file"

REFUSED_WITHOUT_DEBUG = (
    "RACE_WINDOW holds requests on purpose and is for a development server only: it is refused "
    "with DEBUG off. Turn DEBUG on for this server, or set ALLOW_RACE_WINDOW_WITHOUT_DEBUG in its "
    "settings if you really mean it."
)
NO_PARK_POINT = (
    "RACE_WINDOW holds every request at a fixed number of arrivals, so it needs RACE_WINDOW_AT: the "
    "table whose first read each request is held after, e.g. RACE_WINDOW_AT=shop_product "
    "(table[:read|write|any[:occurrence]])."
)
UNKNOWN_BACKEND = (
    "RACE_WINDOW_BACKEND must be empty or 'file' (the barrier in files, for the servers of one "
    "host) or a Redis URL, redis://host:port/db or rediss://... (for servers on several hosts), "
    "not {value!r}."
)

_local_lock = threading.Lock()
_local_window: RaceWindow | None = None


def active_window(*, mode: RaceWindow | str | None) -> RaceWindow | None:
    """The window in force here: armed in this process, else as the server's ``mode`` (what
    ``server_mode()`` answered at start-up) says."""
    if _local_window is not None:
        return _local_window
    if mode is None or isinstance(mode, RaceWindow):
        return mode
    return current_backend().armed_window()


def server_mode() -> RaceWindow | str | None:
    """What ``RACE_WINDOW`` (racelab.conf) asks of a server: None (off), ARMED, or a fixed window
    (held at ``RACE_WINDOW_AT``).

    Raises ImproperlyConfigured for a value that makes no sense, or with DEBUG off unless
    ``ALLOW_RACE_WINDOW_WITHOUT_DEBUG`` is set.
    """
    value = (setting("RACE_WINDOW", OFF) or OFF).strip().lower()
    if value in (OFF, "0"):
        return None
    if not settings.DEBUG and not getattr(settings, "ALLOW_RACE_WINDOW_WITHOUT_DEBUG", False):
        raise ImproperlyConfigured(REFUSED_WITHOUT_DEBUG)
    timeout = setting("RACE_WINDOW_TIMEOUT", str(DEFAULT_TIMEOUT_SECONDS))
    try:
        # int() and float() read any script's digits ('٣' as 3): numbers are written in ASCII here.
        if not (value.isascii() and timeout.isascii()):
            raise ValueError("numbers are written in ASCII digits")
        parties = 1 if value == ARMED else int(value)
        window = RaceWindow(parties=parties, timeout=float(timeout), at=default_park_points() or None)
    except ValueError as error:
        raise ImproperlyConfigured(
            f"RACE_WINDOW must be 'off', 'armed' or a number of requests from 1 to {MAX_PARTIES}, "
            f"RACE_WINDOW_TIMEOUT a number of seconds above 0 and at most {MAX_TIMEOUT_SECONDS}, "
            f"and RACE_WINDOW_AT park points ({error})."
        ) from error
    if value != ARMED and not window.at:
        raise ImproperlyConfigured(NO_PARK_POINT)
    return ARMED if value == ARMED else window


def default_park_points() -> str:
    """Where this server holds requests when whoever armed the window did not say ("": nowhere)."""
    return setting("RACE_WINDOW_AT").strip()


def backend_url() -> str | None:
    """The Redis URL ``settings.RACE_WINDOW_BACKEND`` names, or None for the file backend.

    Raises ImproperlyConfigured for anything else.
    """
    value = setting("RACE_WINDOW_BACKEND").strip()
    if value.lower() in ("", FILE_BACKEND):
        return None
    redis_backend = _redis_backend()
    if not redis_backend.is_redis_url(value):
        raise ImproperlyConfigured(UNKNOWN_BACKEND.format(value=redis_backend.describe(value)))
    return value


def current_backend() -> Backend:
    """Where the barriers of the default database live, as the settings say: every process on
    that database with the same settings (servers, splatter, tests) finds the same ones."""
    url = backend_url()
    if url is None:
        return FileBackend(directory=barrier_directory())
    redis_backend = _redis_backend()
    return redis_backend.RedisBackend(url=url, prefix=redis_backend.namespace(connection.settings_dict))


def _redis_backend() -> ModuleType:
    """racelab.racewindow.redis_backend, imported only once a Redis URL is configured: importing redis-py
    costs every process a fifth of a second at start-up, and the file backend has no use for it."""
    from racelab.racewindow import redis_backend

    return redis_backend


def check_settings() -> None:
    """Fail at start-up, not at the first request, when RACE_WINDOW is set but refused, when
    RACE_WINDOW_AT names no park point (in-process arming uses it whatever RACE_WINDOW says), or
    when RACE_WINDOW_BACKEND names no backend or a Redis that does not answer."""
    try:
        if default_park_points():
            park_points.parse(default_park_points())
    except ValueError as error:
        raise ImproperlyConfigured(f"RACE_WINDOW_AT must name park points ({error}).") from error
    server_mode()
    url = backend_url()
    if url is not None:
        try:
            _redis_backend().ping(url)
        except RaceWindowError as error:
            raise ImproperlyConfigured(str(error)) from error


@contextmanager
def armed(
    *, parties: int, timeout: float = DEFAULT_TIMEOUT_SECONDS, at: str | None = None
) -> Iterator["ArmedBarrier"]:
    """Arm the barrier around a block of code, at the park points ``at`` (None: each server's own).

    Requests in this process (any thread) that run inside ``holding()`` wait whatever the
    settings say; servers on the same database and backend started with ``RACE_WINDOW=armed``
    hold theirs too. Arming is exclusive per database: a second ``armed`` while one is active
    (here, or in any process that shares the backend) raises RaceWindowError.
    """
    global _local_window
    window = RaceWindow(parties=parties, timeout=timeout, at=at)
    backend = current_backend()
    with ExitStack() as published:
        with _local_lock:
            if _local_window is not None:
                raise RaceWindowError("The race window is already armed in this process; arm it once.")
            published.enter_context(backend.arm(window=window))
            _local_window = window
        try:
            yield ArmedBarrier(window=window, backend=backend)
        finally:
            with _local_lock:
                _local_window = None
                published.close()


@dataclass(frozen=True)
class ArmedBarrier:
    window: RaceWindow
    backend: Backend

    def stats(self) -> BarrierStats:
        """Requests held, windows closed, how many of those the timeout closed, and how many
        closed at once because the parties still missing were blocked on a held request's lock."""
        return self.backend.stats()


def hold(*, window: RaceWindow, resource: str, blocked: Callable[[], int] | None = None) -> Passage:
    """Wait at the barrier of ``resource`` (any string naming what the requests race for)
    until its window closes: ``parties`` have arrived (those ``blocked`` on this request's locks
    counted), or ``timeout`` has passed since the last arrival. The last of the parties goes
    straight on."""
    return current_backend().hold(window=window, resource=resource, blocked=blocked)
