"""SERIALIZABLE transactions on every database, and what to do when the database refuses one:
retry it after a random pause. Shared by every strategy that lets the database serialize it."""

import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from django.db import DatabaseError, connection, transaction

from races.refusals import Refused

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Retried attempts compete with fresh requests that never sleep, so the budget must outlast a
# queue of them: 20 attempts, each but the last followed by a random pause of 0 to
# step * min(2**attempt, 32), the step being how long the refused attempt took (2 ms to 50 ms).
# Contenders that retry within less than their own duration of each other collide again, so
# the pause scales with the attempt: on a fast machine (2 ms attempts) it spans up to 64 ms, on
# a loaded one proportionally more.
MAX_ATTEMPTS = 20
RETRY_MIN_STEP_SECONDS = 0.002
RETRY_MAX_STEP_SECONDS = 0.05
RETRY_MAX_DOUBLINGS = 5

# SQLSTATE 40001 (serialization failure) and 40P01 (deadlock) on PostgreSQL; MySQL error
# codes 1213 (deadlock) and 1205 (lock wait timeout) on MariaDB.
_RETRYABLE_SQLSTATES = {"40001", "40P01"}
_RETRYABLE_MYSQL_CODES = {1213, 1205}


@contextmanager
def serializable_transaction() -> Iterator[None]:
    """A durable ``transaction.atomic()`` at SERIALIZABLE isolation.

    SQLite's IMMEDIATE transactions (settings.py) take the write lock at BEGIN, so they are
    serial already.
    """
    if connection.vendor == "postgresql":
        # psycopg opens the transaction with BEGIN ISOLATION LEVEL SERIALIZABLE at the first
        # statement: the isolation costs no statement of its own. Set inside the atomic block,
        # whose set_autocommit() has run the health check, so it is set on the connection the
        # transaction will use; the connection is persistent, so put it back after.
        from psycopg import IsolationLevel

        driver = previous = None
        try:
            with transaction.atomic(durable=True):
                driver = connection.connection
                previous = driver.isolation_level
                driver.isolation_level = IsolationLevel.SERIALIZABLE
                yield
        finally:
            if driver is not None and not driver.closed:
                driver.isolation_level = previous
        return
    with transaction.atomic(durable=True):
        if connection.vendor == "mysql":
            # Applies to the transaction that the next statement starts implicitly.
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
        yield


def is_serialization_failure(error: DatabaseError) -> bool:
    """Whether the database refused the transaction only to keep it serial: safe to retry whole."""
    cause = error.__cause__
    if getattr(cause, "sqlstate", None) in _RETRYABLE_SQLSTATES:
        return True
    args = getattr(cause, "args", ())
    return bool(args) and args[0] in _RETRYABLE_MYSQL_CODES


def retry_span(*, attempt: int, lasted: float) -> float:
    """The longest pause before the attempt after ``attempt``, which took ``lasted`` seconds."""
    step = min(max(lasted, RETRY_MIN_STEP_SECONDS), RETRY_MAX_STEP_SECONDS)
    return step * 2 ** min(attempt, RETRY_MAX_DOUBLINGS)


def back_off(*, attempt: int, lasted: float) -> None:
    # Full jitter: spreading the retries apart is what lets one of them win next time.
    time.sleep(random.uniform(0, retry_span(attempt=attempt, lasted=lasted)))


def retried(attempt: Callable[[], T], *, what: str, gave_up: str) -> T:
    """``attempt()`` again, after a random pause, each time the database refuses it to keep
    transactions serial (a serialization failure or a deadlock), ``what`` naming it in the log;
    after MAX_ATTEMPTS refusals, ``Refused(gave_up)``, the reason the client is told. ``attempt``
    must run in a transaction of its own, so that a refusal rolls all of it back and the retry
    starts afresh."""
    for number in range(1, MAX_ATTEMPTS + 1):
        started = time.monotonic()
        try:
            return attempt()
        except DatabaseError as error:
            if not is_serialization_failure(error):
                raise
            logger.info("%s retried after: %s", what, error)
            if number < MAX_ATTEMPTS:
                back_off(attempt=number, lasted=time.monotonic() - started)
    raise Refused(gave_up)
