"""Stamp the requests of a lab run on the server's clock: arrived, read, wrote, answered.

Only requests that carry ``X-Lab-Run`` (splatter sends it) are stamped: every other request pays
one dictionary look-up, so the benchmarks' throughput does not move. A stamped request pays a
check of each SQL statement it sends and one INSERT after its answer is ready, before Gunicorn
sends it, so the row is committed by the time the client has the answer.
"""

import logging
import os
import re

from django.db import DatabaseError, connection
from django.http import HttpResponseBadRequest
from django.utils import timezone

from accounts.models import Account
from labreport.models import RecordedRequest
from racelab.racewindow.park_points import ANY, WRITE, ParkPoint, statement_kind

logger = logging.getLogger(__name__)

RUN_HEADER = "HTTP_X_LAB_RUN"
RUN_TOKEN = re.compile(r"[A-Za-z0-9_-]{8,64}")
BAD_RUN_TOKEN = (
    "X-Lab-Run must be 8 to 64 letters, digits, '-' or '_' (splatter makes one per run); nothing was done.\n"
)


class StatementMarks:
    """A ``connection.execute_wrapper`` that notes when a request read and wrote one table.

    The read is the last read of the table before the first write to it (a retried attempt reads
    again), or the last read when nothing was written; a conditional UPDATE, which reads as it
    writes, is both. A read-back after the write does not move the read.
    """

    def __init__(self, *, table: str) -> None:
        # Statements are told apart as the race window tells them (racelab.racewindow.park_points).
        self.table = ParkPoint(table=table, kind=ANY)
        self.read_at = None
        self.written_at = None
        self._pending_read = None

    def __call__(self, execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if self.table.names_table(sql, vendor=context["connection"].vendor):
            now = timezone.now()
            if statement_kind(sql) == WRITE:
                self.read_at = self._pending_read or now
                self.written_at = now
                self._pending_read = None
            else:
                self._pending_read = now
        return result

    def marks(self, *, wrote: bool) -> tuple:
        """(read_at, written_at) of a request; a refused one wrote nothing, whatever it tried."""
        if self.written_at is None:
            return self._pending_read, None
        return self.read_at, self.written_at if wrote else None


class RequestTimingMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = request.META.get(RUN_HEADER)
        if token is None:
            return self.get_response(request)
        if not RUN_TOKEN.fullmatch(token):
            return HttpResponseBadRequest(BAD_RUN_TOKEN, content_type="text/plain")
        marks = StatementMarks(table=Account._meta.db_table)
        with connection.execute_wrapper(marks):
            response = self.get_response(request)
        answered_at = timezone.now()
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and hasattr(request, "started_at"):
            read_at, written_at = marks.marks(wrote=not 400 <= response.status_code < 500)
            try:
                RecordedRequest.objects.create(
                    run_token=token,
                    user_id=user.pk,
                    worker=os.getpid(),
                    method=request.method[:10],
                    path=request.path[:200],
                    status=response.status_code,
                    arrived_at=request.started_at,
                    read_at=read_at,
                    written_at=written_at,
                    answered_at=answered_at,
                )
            except DatabaseError:
                # The answer stands; the run's timeline will lack this request, not the client its answer.
                logger.warning(
                    "Could not record the timings of %s %s", request.method, request.path, exc_info=True
                )
        return response
