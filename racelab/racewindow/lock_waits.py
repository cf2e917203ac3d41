"""Who waits on a held request: the sessions its locks block, as the database tells.

A correct strategy (select_for_update, a unique-index insert, a conditional UPDATE on a locked
row; on SQLite, any write while another transaction holds the write lock) lets one request reach
its park point holding a lock, and blocks the others inside the database before they reach
theirs. The window's first party asks, while it watches the window, how many sessions wait on it
(racelab/racewindow/file_backend.py), and counts them as arrived:

- PostgreSQL: the sessions whose chain of lock waits leads to it (``pg_blocking_pids``, as
  PostgreSQL's isolationtester asks; a row lock's queue is a chain, each waiter behind the one
  before it);
- MariaDB: the same, from ``information_schema.INNODB_LOCK_WAITS`` and ``INNODB_TRX``, which
  need the PROCESS privilege (and MySQL 8 no longer has): refused, nothing is counted, and the
  log says so once per process. InnoDB serves these tables from a cache it refreshes only once no
  one has read it for 0.1 s, so they are asked every MARIADB_ASK_SECONDS, and an answer counts
  only if the cache was refreshed for it (below);
- SQLite: it has no lock tables, but a single write lock. A held request holds it once it has
  begun an IMMEDIATE or EXCLUSIVE transaction or written in the one still open; then every other
  request still on its way to its park point that runs a write statement (or such a BEGIN) waits
  for it. Those register while they run one, per process, in a file beside the barrier's.

Asked on the held request's own connection, idle between two of its statements, through the
driver's cursor: Django's execute wrappers, the race window's included, never see the question.
"""

import fcntl
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Protocol

from django.db.backends.base.base import BaseDatabaseWrapper

from racelab.racewindow import park_points
from racelab.racewindow.file_backend import barrier_directory, process_alive

logger = logging.getLogger(__name__)

# Every session whose wait for a lock leads, through the sessions it waits behind, to ours. pg_locks
# rather than pg_stat_activity: the latter is a snapshot kept for the rest of the transaction, and
# would miss a session that connected after the held request's first question.
POSTGRESQL_BLOCKED = """
WITH RECURSIVE waiting AS (
    SELECT DISTINCT pid, pg_blocking_pids(pid) AS blockers FROM pg_locks WHERE NOT granted
), blocked(pid) AS (
    SELECT pid FROM waiting WHERE pg_backend_pid() = ANY(blockers)
    UNION
    SELECT waiting.pid FROM waiting JOIN blocked ON blocked.pid = ANY(waiting.blockers)
)
SELECT count(*) FROM blocked
"""
# The same chain in InnoDB's tables. They come from a cache that InnoDB refreshes only after 0.1 s
# without a read, so one stale since an earlier transaction (whose connection, kept open, may be
# ours) would count waits long over: our own transaction's row names this very question, marked
# with a word of its own, only if the cache was refreshed for it. Stale, nothing is counted.
MARIADB_BLOCKED = """
WITH RECURSIVE waits AS (
    SELECT requesting_trx_id AS waiter, blocking_trx_id AS blocker
    FROM information_schema.INNODB_LOCK_WAITS
), blocked(trx_id) AS (
    SELECT waits.waiter FROM waits
    JOIN information_schema.INNODB_TRX holder ON holder.trx_id = waits.blocker
    WHERE holder.trx_mysql_thread_id = CONNECTION_ID() AND holder.trx_query LIKE '%{mark}%'
    UNION
    SELECT waits.waiter FROM waits JOIN blocked ON blocked.trx_id = waits.blocker
)
SELECT COUNT(*) FROM blocked
"""
# Longer than InnoDB's 0.1 s, so our own questions do not keep its cache from refreshing.
MARIADB_ASK_SECONDS = 0.15
REFUSED = (
    "The race window cannot ask the database which sessions wait on a held request's locks "
    "({error}): a request blocked on a lock is not counted as arrived, and the windows it would "
    "fill close by their timeout. On MariaDB, grant the database user the PROCESS privilege."
)
WRITERS_FILE = "sqlite-writers"
# A refusal is the user's, on one server.
_WHO_ASKS = ("ENGINE", "HOST", "PORT", "USER")
_TAKES_WRITE_LOCK = re.compile(r"\s*BEGIN\s+(?:IMMEDIATE|EXCLUSIVE)\b", re.IGNORECASE)
_BEGINS = re.compile(r"\s*BEGIN\b", re.IGNORECASE)

# The databases, each as a user reaches it, that refused the question: not asked again.
_refused_lock = threading.Lock()
_refused: set[tuple[str, ...]] = set()


class LockWaits(Protocol):
    """What the execute wrapper of one held request tells, and asks, of the locks it holds."""

    def executing(self, sql: str) -> AbstractContextManager[None]:
        """Around each statement the request runs before its park point."""

    def blocked(self) -> int:
        """How many sessions wait on this request's locks now."""


def for_connection(*, connection: BaseDatabaseWrapper) -> LockWaits:
    """How to count the sessions that ``connection``'s database blocks on a lock of ours."""
    if connection.vendor == "postgresql":
        return _Asked(connection=connection, query=lambda: POSTGRESQL_BLOCKED, every=0.0)
    if connection.vendor == "mysql":
        return _Asked(
            connection=connection,
            query=lambda: MARIADB_BLOCKED.format(mark=f"racelab-{uuid.uuid4().hex}"),
            every=MARIADB_ASK_SECONDS,
        )
    if connection.vendor == "sqlite":
        return _SqliteWriteLock(
            connection=connection, writers=Writers(path=barrier_directory() / WRITERS_FILE)
        )
    return _Unasked()


class _Asked:
    """A database that keeps its lock waits in tables: ask them ``query()``, at most ``every``
    seconds, and in between answer as last time (no one it counted can leave while we hold the
    lock it waits for)."""

    def __init__(self, *, connection: BaseDatabaseWrapper, query: Callable[[], str], every: float) -> None:
        self.connection = connection
        self.query = query
        self.every = every
        self.answer = 0
        self.next_question = 0.0

    def executing(self, sql: str) -> AbstractContextManager[None]:
        return nullcontext()

    def blocked(self) -> int:
        database = tuple(str(self.connection.settings_dict.get(key) or "") for key in _WHO_ASKS)
        now = time.monotonic()
        if database in _refused or now < self.next_question:
            return self.answer
        self.next_question = now + self.every
        try:
            with self.connection.connection.cursor() as cursor:
                cursor.execute(self.query())
                (self.answer,) = cursor.fetchone()
        except self.connection.Database.Error as error:
            # Only MariaDB refuses (PostgreSQL's views are open to every role), and it fails the
            # statement, not the transaction: the held request goes on unharmed.
            with _refused_lock:
                if database not in _refused:
                    _refused.add(database)
                    logger.warning(REFUSED.format(error=error))
        return self.answer


class _SqliteWriteLock:
    """SQLite's one write lock: ours if we took it in the transaction still open, and then every
    request in the registry is waiting for it."""

    def __init__(self, *, connection: BaseDatabaseWrapper, writers: "Writers") -> None:
        self.connection = connection
        self.writers = writers
        # Taken since the last BEGIN: Django commits through the driver, unseen by an execute
        # wrapper, so whether the transaction is still open is asked of the driver.
        self.took_write_lock = False

    @contextmanager
    def executing(self, sql: str) -> Iterator[None]:
        if _BEGINS.match(sql):
            self.took_write_lock = False
        if not (_TAKES_WRITE_LOCK.match(sql) or park_points.statement_kind(sql) == park_points.WRITE):
            yield
            return
        with self.writers.waiting():
            yield
        self.took_write_lock = True

    def blocked(self) -> int:
        if not (self.took_write_lock and self.connection.connection.in_transaction):
            return 0
        return self.writers.count()


class _Unasked:
    """A database the race window does not know how to ask: nothing is counted."""

    def executing(self, sql: str) -> AbstractContextManager[None]:
        return nullcontext()

    def blocked(self) -> int:
        return 0


class Writers:
    """How many requests, per process, are running a statement that needs SQLite's write lock:
    a line ``pid count`` each, under ``flock``. A process killed mid-statement stops counting."""

    def __init__(self, *, path: Path) -> None:
        self.path = path

    @contextmanager
    def waiting(self) -> Iterator[None]:
        self._add(1)
        try:
            yield
        finally:
            self._add(-1)

    def count(self) -> int:
        with self._locked(fcntl.LOCK_SH) as fd:
            return sum(self._read(fd).values())

    def _add(self, step: int) -> None:
        with self._locked(fcntl.LOCK_EX) as fd:
            counts = self._read(fd)
            counts[os.getpid()] = counts.get(os.getpid(), 0) + step
            lines = "".join(f"{pid} {count}\n" for pid, count in counts.items() if count > 0)
            os.ftruncate(fd, 0)
            os.pwrite(fd, lines.encode(), 0)

    @contextmanager
    def _locked(self, operation: int) -> Iterator[int]:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, operation)
            yield fd
        finally:
            os.close(fd)

    @staticmethod
    def _read(fd: int) -> dict[int, int]:
        counts = {}
        for line in os.pread(fd, os.fstat(fd).st_size, 0).decode(errors="replace").splitlines():
            try:
                pid, count = (int(field) for field in line.split())
            except ValueError:
                continue  # cut short by a process killed mid-write
            if process_alive(pid):
                counts[pid] = count
        return counts
