"""Deterministic race mode on a server: hold state-changing requests at their park point."""

from racewindow.barrier import active_window, default_park_points, server_mode
from racewindow.statements import holding

# A request that changes nothing cannot lose an update; holding it would only let it fill a
# window meant for the writers.
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


class RaceWindowMiddleware:
    """Outside the request-timing middleware, so a recorded read is stamped when the statement
    returned, not when the barrier let it go.

    Off (the default), a request pays a method check and, for a POST, one function call that
    finds nothing armed: the settings are read once, here, and were checked at start-up
    (racewindow.apps).
    """

    def __init__(self, get_response):
        self.get_response = get_response
        self.mode = server_mode()
        self.default_at = default_park_points()

    def __call__(self, request):
        window = None if request.method in _SAFE_METHODS else active_window(mode=self.mode)
        if window is None:
            return self.get_response(request)
        with holding(window=window, default_at=self.default_at):
            return self.get_response(request)
