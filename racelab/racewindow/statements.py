"""Hold a request at a SQL statement, so the code under test needs no hook.

``holding()`` installs a ``connection.execute_wrapper`` on this thread's connection: once a
statement a park point names has run (``shop_product``: the first read of that table), the
request waits at the barrier of what that statement touched. For a read, that is the table and
the statement's parameters, so requests that read the same row race each other and no one else;
for a write, whose parameters carry the values written, the table alone. A request is held
once, at the first point it reaches. A read of a table the request has written already (a
read-back after a conditional UPDATE) decides nothing and is not counted.

Until then, the wrapper also tells the barrier what it needs to count the requests blocked on a
held one's lock as arrived (racelab/racewindow/lock_waits.py).
"""

import hashlib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection

from racelab.racewindow import lock_waits, park_points
from racelab.racewindow.barrier import Passage, RaceWindow, default_park_points, hold
from racelab.racewindow.park_points import ParkPoint


class StatementHold:
    """The execute wrapper: counts the statements each park point names, and holds at the first
    point whose occurrence is reached."""

    def __init__(
        self, *, window: RaceWindow, points: tuple[ParkPoint, ...], locks: lock_waits.LockWaits
    ) -> None:
        self.window = window
        self.points = points
        self.locks = locks
        self.seen: Counter[ParkPoint] = Counter()
        self.written: set[str] = set()
        self.passage: Passage | None = None

    def __call__(self, execute, sql, params, many, context):
        if self.passage is not None:
            return execute(sql, params, many, context)
        with self.locks.executing(sql):
            result = execute(sql, params, many, context)
        kind = park_points.statement_kind(sql)
        point = self._reached(sql, kind=kind, vendor=context["connection"].vendor)
        if point is not None:
            key = params if kind == park_points.READ else None
            self.passage = hold(
                window=self.window, resource=resource(point=point, params=key), blocked=self.locks.blocked
            )
        return result

    def _reached(self, sql: str, *, kind: str, vendor: str) -> ParkPoint | None:
        reached = None
        for point in self.points:
            if not point.matches(sql=sql, kind=kind, vendor=vendor):
                continue
            if kind == park_points.READ and point.table in self.written:
                continue
            self.seen[point] += 1
            if reached is None and self.seen[point] == point.occurrence:
                reached = point
        if kind == park_points.WRITE:
            self.written.update(point.table for point in self.points if point.names_table(sql, vendor=vendor))
        return reached


def resource(*, point: ParkPoint, params: object) -> str:
    """What a held statement races for: its table, and for a read its parameters (the row it picks)."""
    return f"{point.table}|{hashlib.sha256(repr(params).encode()).hexdigest()}"


@contextmanager
def holding(*, window: RaceWindow | None, default_at: str | None = None) -> Iterator[StatementHold | None]:
    """Hold this thread's statements in ``window`` (None: do nothing) at its park points, or at
    ``default_at`` when the window names none (None: the project's ``RACE_WINDOW_AT``; neither
    names any: nothing is held)."""
    at = window and (window.at or (default_park_points() if default_at is None else default_at))
    if not at:
        yield None
        return
    statement_hold = StatementHold(
        window=window, points=park_points.parse(at), locks=lock_waits.for_connection(connection=connection)
    )
    with connection.execute_wrapper(statement_hold):
        yield statement_hold
