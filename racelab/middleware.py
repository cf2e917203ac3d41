"""Deterministic race mode on a server: hold state-changing requests at their park point."""

from django.http import HttpResponse

from racelab.racewindow.barrier import RaceWindowError, active_window, default_park_points, server_mode
from racelab.racewindow.statements import holding

BARRIER_UNAVAILABLE = (
    "The race window's barrier is unavailable ({error}), so this request stopped where it would have "
    "been held. This lab server holds requests on purpose (RACE_WINDOW): bring its Redis back, or "
    "restart the server without RACE_WINDOW.\n"
)

# A request that changes nothing cannot lose an update; holding it would only let it fill a
# window meant for the writers.
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


class RaceWindowMiddleware:
    """Outside the request-timing middleware, so a recorded read is stamped when the statement
    returned, not when the barrier let it go.

    Off (the default), a request pays a method check and, for a POST, one function call that
    finds nothing armed: the settings are read once, here, and were checked at start-up
    (racelab.apps).
    """

    def __init__(self, get_response):
        self.get_response = get_response
        self.mode = server_mode()
        self.default_at = default_park_points()

    def __call__(self, request):
        try:
            window = None if request.method in _SAFE_METHODS else active_window(mode=self.mode)
        except RaceWindowError as error:
            return _unavailable(error)
        if window is None:
            return self.get_response(request)
        with holding(window=window, default_at=self.default_at):
            return self.get_response(request)

    def process_exception(self, request, exception):
        # The barrier's store (Redis) went away mid-request: the request does not go on unheld,
        # and the client is told why rather than shown a bare 500.
        return _unavailable(exception) if isinstance(exception, RaceWindowError) else None


def _unavailable(error: RaceWindowError) -> HttpResponse:
    return HttpResponse(BARRIER_UNAVAILABLE.format(error=error), status=503, content_type="text/plain")
